"""Where a migrating VM goes: the best-scoring host that meets the limits.

:func:`find_best_server` takes the candidate hosts (``HostInfo``), the
scores the shadow service (or the history prior) gave them, and what is
known of their cost and headroom, and returns the best host that

* is up, not disabled (maintenance) and in the wanted availability zone,
* has the vCPUs and RAM the VM needs free (when the host's facts say),
* costs no more than ``max_cost`` (per-host cost from configuration),

or None with the reason each host was left out.  Availability and the
cost cap are the same rules the evaluation applies to its rankings
(:mod:`shadow_service.hostchoice`).  Pure: no I/O.
"""

import dataclasses

from shadow_service import hostchoice
from shadow_service import hostfacts


@dataclasses.dataclass
class Choice:
    """The chosen host (or None) and why every other one was not."""

    host: str
    score: float
    rejected: dict

    def describe(self):
        if self.host is None:
            return 'no host qualifies: ' + '; '.join(
                '%s %s' % item for item in sorted(self.rejected.items()))
        return 'chose %s (score %.1f)' % (self.host, self.score)


def headroom(facts, flavor):
    """``(free_vcpus, free_ram_mb)`` after placing ``flavor`` on a host
    with ``facts`` (``hostfacts`` names); None where unknown."""
    cores = facts.get(hostfacts.CORES)
    used = facts.get(hostfacts.VCPUS_USED)
    memory = facts.get(hostfacts.MEMORY_MB)
    ram_used = facts.get(hostfacts.MEMORY_MB_USED)
    free_vcpus = (None if cores is None or used is None
                  else float(cores) - float(used) - flavor.get('vcpus', 0))
    free_ram = (None if memory is None or ram_used is None
                else float(memory) - float(ram_used)
                - flavor.get('ram_mb', 0))
    return free_vcpus, free_ram


def find_best_server(hosts, scores, *, flavor, current_host=None,
                     facts=None, costs=None, max_cost=None,
                     availability_zone=None, vcpu_overcommit=1.0):
    """The best host for a VM of ``flavor`` leaving ``current_host``.

    Parameters
    ----------
    hosts : list of shadow_service.clouds.base.HostInfo
    scores : dict
        ``{host: score}``, higher is better (hosts without a score are
        left out).
    flavor : dict
    facts : dict, optional
        ``{host: {hostfact: value}}``.
    costs : dict, optional
        ``{host: cost per hour}``; a host without a cost passes.
    max_cost : float, optional
    availability_zone : str, optional
        Only hosts of this zone (the VM's own zone).
    vcpu_overcommit : float
        vCPUs a host may allocate per core.

    Returns
    -------
    Choice
    """
    facts = facts or {}
    costs = costs or {}
    rejected = {}
    best = None
    for info in hosts:
        name = info.host
        if name == current_host:
            continue
        reason = hostchoice.unavailable(info, availability_zone)
        if reason is not None:
            rejected[name] = reason
            continue
        if name not in scores:
            rejected[name] = 'has no score'
            continue
        reason = hostchoice.over_cap(costs.get(name), max_cost)
        if reason is not None:
            rejected[name] = reason
            continue
        host_facts = dict(facts.get(name) or {})
        if vcpu_overcommit != 1.0 and hostfacts.CORES in host_facts:
            host_facts[hostfacts.CORES] = (host_facts[hostfacts.CORES]
                                           * vcpu_overcommit)
        free_vcpus, free_ram = headroom(host_facts, flavor)
        if free_vcpus is not None and free_vcpus < 0:
            rejected[name] = 'lacks %.0f vCPUs' % -free_vcpus
            continue
        if free_ram is not None and free_ram < 0:
            rejected[name] = 'lacks %.0f MB RAM' % -free_ram
            continue
        score = float(scores[name])
        if best is None or (score, name) > (best[0], best[1]):
            best = (score, name)
    if best is None:
        return Choice(None, 0.0, rejected)
    return Choice(best[1], best[0], rejected)
