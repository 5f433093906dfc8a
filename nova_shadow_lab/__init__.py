"""The nova-shadow lab: real Nova whose instances are confined processes.

A test and demo rig, never part of what operators deploy into Nova. It
has three layers:

- :mod:`nova_shadow_lab.driver` -- ``LabDriver``, a Nova virt driver
  (a ``nova.virt.fake`` subclass) that runs each instance's user-data the
  way cloud-init would, inside bubblewrap, in per-host cgroup v1 groups
  whose limits are the host's *share* of this machine
  (:mod:`nova_shadow_lab.config`).
- :mod:`nova_shadow_lab.cloud` -- ``LabCloud``, a ``fixtures.Fixture`` that
  starts Nova in-process (API, conductor, scheduler, Placement, one
  nova-compute per lab host) and serves the compute and Placement APIs on
  localhost ports with a ``clouds.yaml`` for openstacksdk.
- :mod:`nova_shadow_lab.cgroups`, :mod:`nova_shadow_lab.runtime` and
  :mod:`nova_shadow_lab.reaper` -- the cgroup plumbing, the long-lived
  launcher thread and the reaper process that removes every lab process
  and cgroup even when the process running the lab is SIGKILLed.

This ``__init__`` must stay free of imports: the reaper and the in-sandbox
init import modules of this package with the standard library only.
The package is not in the wheel; it is importable from a source checkout
whose root is on ``sys.path``. See ``doc/source/lab.rst``.
"""
