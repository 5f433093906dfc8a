"""``openstack shadow evaluate --wait`` when its looks go unanswered."""

import io
import logging

import pytest

from shadow_service.cmd import cli
from shadow_service.osc import client as client_lib
from shadow_service.osc.v1 import evaluation
from tests import service_support


def test_looks_refused_at_once_are_paced_by_the_wait(rabbit_url,
                                                     monkeypatch, caplog):
    # Before, every refused look was asked again at once: a busy loop
    # that wrote tens of thousands of warnings until the wait's end.
    monkeypatch.setattr(evaluation, 'WAIT_SLACK_S', 2.0)
    client = client_lib.ShadowClient(
        transport_url=rabbit_url, topic=service_support.unique_topic(),
        timeout=0.5)
    bar = cli.ProgressBar(io.StringIO(), False)
    with service_support.calls_refused_at_once(), \
            caplog.at_level(logging.WARNING, logger=evaluation.LOG.name):
        with pytest.raises(client_lib.NoAnswer):
            evaluation.wait_for(
                client, 'b0f4c1d2-0000-4000-8000-000000000000', 0.0, bar)
    warnings = [r for r in caplog.records if 'asking again' in r.message]
    # One look per 0.5 s wait over the 2 s the wait lasts.
    assert 1 <= len(warnings) <= 6, len(warnings)
