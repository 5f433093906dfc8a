"""Who tells the watcher which host a migrating VM should go to.

A ranker is a callable ``ranker(instance, profile, hosts) -> {host:
score}`` (0-100, higher is better) asking the shadow service the same
question the Nova weigher asks, with the same request schema
(``doc/source/contributor/contracts.rst``):

* :class:`ManagerRanker`: the assembled service's manager in-process
  (``[watcher] ranker = history``): a move, answered from the history
  prior without shadows (the watcher boots none: shadows, their collector
  and their clean-up belong to ``shadow-service``);
* :class:`RpcRanker`: ``rank_hosts`` of a running ``shadow-service``
  over RPC (``[watcher] ranker = rpc``).
"""

import logging

LOG = logging.getLogger(__name__)


def ranking_request(instance, profile):
    """The RPC request describing ``instance`` (its flavor and
    profile)."""
    flavor = {k: int(instance.flavor[k]) for k in ('vcpus', 'ram_mb',
                                                   'disk_gb')
              if instance.flavor.get(k) is not None}
    flavor.setdefault('ram_mb', 512)
    if instance.flavor.get('name'):
        flavor['name'] = str(instance.flavor['name'])
    request = {'flavor': flavor, 'profile': profile,
               'instance_uuid': instance.instance_id}
    if instance.project_id:
        request['project_id'] = instance.project_id
    return request


def _scores(ranking):
    return {entry['host']: float(entry['score'])
            for entry in ranking.get('hosts', [])
            if entry.get('score') is not None}


class ManagerRanker:
    """Ranks through an in-process ``ShadowManager``."""

    def __init__(self, manager, budget_s=1.0):
        self.manager = manager
        self.budget_s = budget_s

    def __call__(self, instance, profile, hosts):
        request = dict(ranking_request(instance, profile),
                       purpose='live-migrate')
        ranking = self.manager.rank_hosts(
            None, request, [{'host': h.host} for h in hosts], self.budget_s)
        return _scores(ranking)


class RpcRanker:
    """Ranks through ``rank_hosts`` of a running ``shadow-service``."""

    def __init__(self, conf, budget_s=10.0):
        from shadow_service import rpcapi

        self.client = rpcapi.ShadowAPI(conf, topic=conf.shadow.topic)
        self.budget_s = budget_s

    def __call__(self, instance, profile, hosts):
        ranking = self.client.rank_hosts(
            {}, ranking_request(instance, profile),
            [{'host': h.host} for h in hosts], self.budget_s,
            timeout=self.budget_s + 10.0)
        return _scores(ranking)
