"""Which hosts may take a VM, what each costs, and the operator's trade-off.

The evaluation applies this to every ranking the service returns, and the
watcher to the hosts a migrating VM may go to
(:mod:`shadow_service.watcher.selection`).  Pure: no I/O.

Availability
    A host that is down, disabled (in maintenance) or in another
    availability zone than the one the request names may not take the VM
    (:func:`unavailable`).
Cost
    A cost per hour per host (any unit, the same for every host): what
    the scheduler sends for the host (the weigher reads the
    ``shadow_host_cost`` aggregate metadata), else ``[shadow] host_costs``;
    a host with neither has no cost.
Trade-off (``[shadow] cost_policy``)
    ``none``
        costs are reported in the ranking, scores are unchanged;
    ``cap``
        hosts costing more than ``max_host_cost`` may not take the VM
        (:func:`over_cap`; a host without a cost passes);
    ``per_cost``
        each score is divided by the host's cost relative to the cheapest
        candidate (a host without a cost counts ``default_host_cost``): a
        host twice as expensive needs twice the score to rank level.

A host that may not take the VM stays in the ranking with score 0,
confidence 1 and the reason first, so the weigher gives it the least
weight; its measured score is kept as ``performance_score``.
"""

import dataclasses
import math

from shadow_service import logsafe

POLICIES = ('none', 'cap', 'per_cost')


def unavailable(info, availability_zone=None):
    """Why the host ``info`` (a ``HostInfo``) may not take a new VM, or
    None.  A host in no zone passes any zone."""
    if not info.up:
        return 'is down'
    if info.disabled:
        return 'is disabled (maintenance)'
    if availability_zone and info.availability_zone not in (
            None, availability_zone):
        return 'is in zone %s, not %s' % (info.availability_zone,
                                          availability_zone)
    return None


def over_cap(cost, max_cost):
    """Why a host costing ``cost`` breaks the cap ``max_cost``, or None
    (None when either is unknown)."""
    if max_cost is not None and cost is not None and cost > max_cost:
        return 'costs %g > %g' % (cost, max_cost)
    return None


def parse_costs(costs, option='host_costs'):
    """``{host: cost}`` from an operator's ``host:cost`` mapping (strings
    from a ``DictOpt``), or ValueError naming ``option`` and the host whose
    cost is not a finite number of at least 0."""
    parsed = {}
    for host, cost in (costs or {}).items():
        try:
            value = float(cost)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError('%s: the cost of %s, %s, is not a finite number'
                             % (option, logsafe.clip(host),
                                logsafe.clip(cost)))
        if value < 0:
            raise ValueError('%s: the cost of %s is negative'
                             % (option, logsafe.clip(host)))
        parsed[str(host)] = value
    return parsed


@dataclasses.dataclass
class CostPolicy:
    """The operator's trade-off between score and cost."""

    policy: str = 'none'
    max_cost: float = None
    host_costs: dict = dataclasses.field(default_factory=dict)
    default_cost: float = 1.0

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError('cost policy must be one of %s, not %r'
                             % (', '.join(POLICIES), self.policy))
        if self.policy == 'cap' and self.max_cost is None:
            raise ValueError('cost policy cap needs max_host_cost')
        if self.default_cost <= 0:
            raise ValueError('default_host_cost must be positive')
        self.host_costs = parse_costs(self.host_costs,
                                      '[shadow] host_costs')

    @classmethod
    def from_conf(cls, conf):
        """The policy ``[shadow]`` describes."""
        opts = conf.shadow
        return cls(policy=opts.cost_policy, max_cost=opts.max_host_cost,
                   host_costs=opts.host_costs,
                   default_cost=opts.default_host_cost)

    def costs(self, hosts):
        """``{host: cost}`` of the RPC ``hosts`` entries that have one:
        the entry's ``cost``, else the configured one."""
        found = {}
        for entry in hosts:
            cost = entry.get('cost')
            if cost is None:
                cost = self.host_costs.get(entry['host'])
            if cost is not None:
                found[entry['host']] = float(cost)
        return found

    def exclusions(self, host_names, costs, infos,
                   availability_zone=None):
        """``{host: why it may not take the VM}`` among ``host_names``;
        ``infos`` is ``{host: HostInfo}`` (a host the cloud does not list
        counts as available)."""
        excluded = {}
        for host in host_names:
            info = infos.get(host)
            reason = (unavailable(info, availability_zone)
                      if info is not None else None)
            if reason is None and self.policy == 'cap':
                reason = over_cap(costs.get(host), self.max_cost)
            if reason is not None:
                excluded[host] = reason
        return excluded

    def factors(self, host_names, costs):
        """``{host: cheapest cost / host's cost}`` under ``per_cost``
        (empty otherwise): what a score is multiplied by."""
        if self.policy != 'per_cost' or not host_names:
            return {}
        priced = {h: max(costs.get(h, self.default_cost), 1e-9)
                  for h in host_names}
        cheapest = min(priced.values())
        return {h: cheapest / c for h, c in priced.items()}

    def apply(self, result, costs, excluded):
        """Apply the policy to a ranking dict in place: costs noted,
        excluded hosts to score 0, scores per cost under ``per_cost``,
        hosts re-sorted best first."""
        hosts = result.get('hosts', [])
        eligible = [e['host'] for e in hosts if e['host'] not in excluded]
        factors = self.factors(eligible, costs)
        for entry in hosts:
            host = entry['host']
            if host in costs:
                entry['cost'] = costs[host]
            if host in excluded:
                entry['performance_score'] = entry['score']
                entry['score'] = 0.0
                entry['confidence'] = 1.0
                # The first reason says why; the evaluator's "not
                # measured ...; neutral score" no longer holds at score 0.
                entry['reasons'] = (['may not take the VM: %s'
                                     % excluded[host]]
                                    + [r for r in entry.get('reasons', [])
                                       if not r.startswith(
                                           'not measured: may not take')])
            elif host in factors and entry.get('predicted'):
                factor = factors[host]
                entry['performance_score'] = entry['score']
                entry['score'] = round(entry['score'] * factor, 2)
                if factor < 1.0:
                    entry['reasons'] = (
                        ['cost %g: score %.1f per cost is %.1f (x%.2f, '
                         'the cheapest candidate costs %g)' % (
                             costs.get(host, self.default_cost),
                             entry['performance_score'], entry['score'],
                             factor, min(costs.get(h, self.default_cost)
                                         for h in factors))]
                        + list(entry.get('reasons', [])))
        hosts.sort(key=lambda e: -e['score'])
        if self.policy != 'none' or excluded:
            result['cost_policy'] = self.policy
        return result
