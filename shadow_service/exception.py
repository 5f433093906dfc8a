"""Typed errors the shadow service returns over RPC.

The client allows this module in ``allowed_remote_exmods`` so that callers
receive these classes, not a generic ``RemoteError``.  Keep this module free
of heavy imports: nova-scheduler imports it.
"""


class ShadowException(Exception):
    """Base of every error the service sends back to a caller."""

    msg_fmt = 'An unknown shadow service error occurred.'

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError):
                message = self.msg_fmt
        super().__init__(message)


class InvalidRequest(ShadowException):
    msg_fmt = 'Invalid evaluation request: %(reason)s'


class EvaluationNotFound(ShadowException):
    msg_fmt = 'Evaluation %(evaluation_id)s was not found.'


class HistoryUnavailable(ShadowException):
    """The history store could not be read (or written) for a call that
    needs it: the evaluation or listing asked for may exist."""

    msg_fmt = 'The history store cannot be used now: %(reason)s'


class ServiceBusy(ShadowException):
    msg_fmt = ('The shadow service is running %(running)d evaluations, its '
               'limit; try again later.')


class ServiceStopping(ServiceBusy):
    """The service is stopping (its manager was shut down): it starts no
    more evaluations.  A ``ServiceBusy``, so callers that fall back on a
    busy service fall back alike."""

    msg_fmt = ('The shadow service is stopping; it starts no new '
               'evaluations.')


class ProfileNotFound(InvalidRequest):
    msg_fmt = 'Unknown workload profile %(profile)s.'
