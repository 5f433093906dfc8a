"""The oslo.service launcher's options the daemons read, for the sample
config (``tox -e genconfig``, namespace ``nova_shadow.launcher``).

Both daemons run under oslo.service's launcher, which registers
``[DEFAULT] graceful_shutdown_timeout`` and ``log_options`` itself (they
are not registered by :func:`shadow_service.conf.register_opts`).
oslo.service lists them together with the eventlet backdoor's
``backdoor_port`` and ``backdoor_socket``, deprecated for removal and never
read on the threading backend the daemons run on; :func:`list_opts` leaves
out every option oslo.service marks deprecated for removal.

Importing ``oslo_service.service`` selects oslo.service's backend, the
eventlet one unless a backend was chosen before, so this module imports it
only in :func:`list_opts`, after choosing the daemons' threading backend
when none was chosen yet.
"""


def list_opts():
    """``[(None, opts)]``: oslo.service's launcher options, without those
    deprecated for removal."""
    from oslo_service import backend

    if backend.get_backend_type() is None:
        backend.init_backend(backend.BackendType.THREADING)
    from oslo_service import service

    return [(group, [opt for opt in opts if not opt.deprecated_for_removal])
            for group, opts in service.list_opts()]
