"""One lab cloud for the lab's tests: real Nova from its functional
harness, lab computes whose instances are real processes confined by
bubblewrap in cgroup v1 groups (config: ``tests.lab_support.LAB_CONFIG``).
"""

import pytest

from tests import lab_support


@pytest.fixture(scope='package')
def lab_cloud(tmp_path_factory):
    lab_support.require_lab()
    from nova_shadow_lab import cloud

    # Nova's database fixtures point tempfile at a directory they remove at
    # clean-up; pytest's base temp dir must exist before that.
    tmp_path_factory.getbasetemp()

    lab = cloud.LabCloud(lab_support.LAB_CONFIG,
                         weight_classes=lab_support.WEIGHERS,
                         flags=lab_support.EXTRA_FLAGS)
    lab.setUp()
    try:
        yield lab
    finally:
        lab.cleanUp()

