"""Client side of the shadow service RPC API.

nova-scheduler imports this module (through the weigher): it must import
nothing heavier than oslo.messaging.

API version history:

* 1.0 - Initial version: ``rank_hosts``, ``start_evaluation``,
        ``get_evaluation``, ``cancel_evaluation``.

A caller that waits at most ``timeout`` seconds for ``rank_hosts`` says so
in the request context (``shadow_sent_at``, its wall clock when sending,
and ``shadow_wait_s``): the service then ends the evaluation by the time
the caller stops waiting instead of running it for nobody (this needs no
new version: older services ignore the context).

Every argument and result is JSON-serialisable; see
``doc/source/contributor/contracts.rst`` for the ``request``, ``hosts`` and
ranking formats.
"""

import time

import oslo_messaging as messaging

from shadow_service import rpc

RPC_API_VERSION = '1.0'

# Our own exchange: nova-scheduler changes the default control exchange to
# "nova" (nova.rpc calls set_transport_defaults) while a plain service keeps
# "openstack"; naming it on both sides keeps the weigher and the service on
# the same exchange whatever process they run in.
EXCHANGE = 'nova_shadow'


def with_deadline(ctxt, timeout):
    """``ctxt`` (a dict) plus when the caller stops waiting."""
    ctxt = dict(ctxt or {})
    if timeout is not None:
        ctxt['shadow_sent_at'] = time.time()
        ctxt['shadow_wait_s'] = float(timeout)
    return ctxt


class ShadowAPI:
    """Talks to ``shadow-service`` on ``topic``.

    :param conf: a ``ConfigOpts`` holding the messaging options.
    :param topic: the RPC topic of the service.
    :param transport_url: a broker URL; ``None`` uses ``conf.transport_url``.
    """

    def __init__(self, conf, topic='shadow', transport_url=None,
                 version_cap=None):
        self.topic = topic
        target = messaging.Target(exchange=EXCHANGE, topic=topic,
                                  version=RPC_API_VERSION)
        transport = rpc.get_transport(conf, transport_url)
        self.client = messaging.get_rpc_client(
            transport, target, version_cap=version_cap)

    def rank_hosts(self, ctxt, request, hosts, budget_s, timeout=None):
        """Rank ``hosts`` for ``request``; may run shadows for up to
        ``budget_s`` seconds.  Returns a ranking dict."""
        cctxt = self.client.prepare(version='1.0', timeout=timeout)
        return cctxt.call(with_deadline(ctxt, timeout), 'rank_hosts',
                          request=request, hosts=hosts, budget_s=budget_s)

    def start_evaluation(self, ctxt, request, hosts, budget_s,
                         timeout=None):
        """Start an evaluation in the background; returns its id."""
        cctxt = self.client.prepare(version='1.0', timeout=timeout)
        return cctxt.call(ctxt, 'start_evaluation', request=request,
                          hosts=hosts, budget_s=budget_s)

    def get_evaluation(self, ctxt, evaluation_id, timeout=None):
        """Status, progress and (when finished) ranking of an evaluation."""
        cctxt = self.client.prepare(version='1.0', timeout=timeout)
        return cctxt.call(ctxt, 'get_evaluation',
                          evaluation_id=evaluation_id)

    def cancel_evaluation(self, ctxt, evaluation_id):
        """Ask the service to stop an evaluation and delete its shadows."""
        cctxt = self.client.prepare(version='1.0')
        cctxt.cast(ctxt, 'cancel_evaluation', evaluation_id=evaluation_id)
