"""The client behind ``openstack shadow ...``: the RPC API of
``shadow-service`` with a configuration of its own.

It reads the same configuration file as the service (for the broker's
``transport_url`` and the ``[shadow] topic``) into a private
``ConfigOpts``, registers the option groups oslo.messaging keeps on the
global configuration only (:func:`shadow_service.rpc.register_opts`),
and turns the service's typed errors into osc-lib's ``CommandError`` so
the ``openstack`` command prints one line and exits 1; a
``--os-shadow-*`` value it cannot use is :class:`BadArgument`, which the
plugin turns into a usage error (exit 2).
"""

import warnings

# oslo libraries import eventlet, which warns about itself on import; the
# client never uses it and an operator should not see that warning.
warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

from osc_lib import exceptions as osc_exceptions  # noqa: E402
from oslo_config import cfg  # noqa: E402

from shadow_service import conf as shadow_conf  # noqa: E402
from shadow_service import rpc  # noqa: E402
from shadow_service import rpcapi  # noqa: E402
from shadow_service import rpcwait  # noqa: E402

#: Seconds past the RPC timeout before the client stops waiting itself.
DEADLINE_SLACK_S = rpcwait.DEADLINE_SLACK_S


#: How the option that gives the broker's URL is named in errors.
TRANSPORT_URL_OPTION = '--os-shadow-transport-url (OS_SHADOW_TRANSPORT_URL)'


class BadArgument(osc_exceptions.CommandError):
    """A ``--os-shadow-*`` value the client cannot use: a usage error
    (the ``openstack`` command exits 2), unlike a bad configuration
    file's.  Its text begins with the option."""


class NoAnswer(osc_exceptions.CommandError):
    """The service did not answer a call within the client's timeout
    (stopped, restarting, or the broker unreachable)."""


class ShadowClient:
    """``shadow-service`` over oslo.messaging.

    :param config_files: nova-shadow configuration files to read.
    :param transport_url: the broker URL (``None``: the files').
    :param topic: the service's RPC topic (``None``: the files').
    :param timeout: seconds to wait for each answer.
    """

    def __init__(self, config_files=(), transport_url=None, topic=None,
                 timeout=30.0):
        conf = cfg.ConfigOpts()
        shadow_conf.register_opts(conf)
        rpc.register_opts(conf)
        try:
            conf([], project='nova-shadow',
                 default_config_files=list(config_files))
        except (cfg.ConfigFilesNotFoundError, cfg.Error) as e:
            raise osc_exceptions.CommandError(
                'cannot read the nova-shadow configuration: %s' % e)
        self.conf = conf
        self.timeout = timeout
        self.topic = topic or conf.shadow.topic
        # A URL no driver can use, named by where it came from, before
        # oslo.messaging's own one-liner ("No scheme specified").
        try:
            rpc.check_transport_url(
                conf, transport_url,
                # argparse's form: "argument <flag>: <why>".
                TRANSPORT_URL_OPTION + ':' if transport_url else None)
        except rpc.BadTransportURL as e:
            if transport_url:
                raise BadArgument(str(e)) from None
            raise osc_exceptions.CommandError(str(e))
        # Building the API registers transport_url (oslo.messaging's).
        self.api = rpcapi.ShadowAPI(conf, topic=self.topic,
                                    transport_url=transport_url)
        # oslo.messaging's default ("rabbit://", a guest on localhost) is
        # never the broker an operator means.
        if not transport_url and conf.transport_url in (None, '',
                                                        'rabbit://'):
            raise osc_exceptions.CommandError(
                'no message broker: set --os-shadow-transport-url '
                '(OS_SHADOW_TRANSPORT_URL) or --os-shadow-config-file '
                '(OS_SHADOW_CONFIG_FILE) to a file with transport_url')

    def call(self, method, *args, **kwargs):
        """``method`` of the RPC API with this client's timeout; the
        service's typed errors and a timeout become ``CommandError``."""
        from oslo_messaging import exceptions as messaging_exceptions

        from nova_shadow_filter import breaker
        from shadow_service import exception

        bound = getattr(self.api, method)
        try:
            # A call whose broker is down never returns by itself: the
            # same hard deadline the weigher puts around its calls.
            return breaker.call_with_deadline(
                lambda: bound({}, *args, timeout=self.timeout, **kwargs),
                self.timeout + DEADLINE_SLACK_S)
        except breaker.DeadlineExceeded:
            raise NoAnswer(
                'no answer from shadow-service within %.0f s: is the '
                'message broker reachable?' % self.timeout)
        except exception.ShadowException as e:
            # A remote error's text carries the service's traceback after
            # its message: the operator reads the message.
            raise osc_exceptions.CommandError(str(e).split('\n')[0])
        except messaging_exceptions.MessagingTimeout:
            raise NoAnswer(
                'shadow-service did not answer within %.0f s on topic %s '
                '(is it running, on this broker?)'
                % (self.timeout, self.topic))
        except messaging_exceptions.MessagingException as e:
            raise osc_exceptions.CommandError(
                'cannot reach shadow-service: %s' % e)
