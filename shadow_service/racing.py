"""Which hosts could still change a ranking, and when it is settled.

The evaluation's ``racing`` schedule (``[shadow] evaluation_schedule``)
asks one question of a ranking before and during the measurements: how
much score could the scheduler lose by taking the ranking's top host (the
incumbent) now?  Drawing every host's metric estimates from their normal
uncertainties (the same draws the analyzer's confidence uses: the
host-specific part, not the scale-up every host shares) and rescoring each
draw gives, in score points:

* per host, its expected improvement over the incumbent beyond an
  indifference zone ``d``, ``E[max(S_host - S_top - d, 0)]``: a host
  whose improvement is below the elimination margin cannot change the
  ranking enough to matter and gets no (more) shadow time;
* overall, the expected opportunity cost of stopping now,
  ``E[max(max_j S_j - S_top - d, 0)]``: once it is below
  ``settle_margin`` the ranking is settled, with or without shadows.

The draws take only the part of each estimate's uncertainty a shadow can
narrow (the samples' own and their age: the ranking's
``measurable_sds``), not what the models add on top (the contention
model, the host's load forecast over the VM's life, peak headroom): no
measurement makes those smaller, so a loss that comes from them is not a
reason to boot a shadow, and a race kept going for it would spend its
budget without settling.  The ranking's confidence still counts all of
it.

The evaluation takes ``d`` to be the analyzer's ``tie_margin``: hosts
within it count as equally good (the weigher gives them the same weight),
so a loss smaller than that is no loss.

This is the expected-opportunity-cost rule of ranking and selection (Chick
and Inoue, "New two-stage and sequential procedures for selecting the best
simulated system", Operations Research 49(5), 2001) used as a racing
schedule: hosts leave the race as soon as their share of the possible loss
is negligible, and the race ends when the loss left is.  Pure: no I/O.
"""

import dataclasses

import numpy as np

from shadow_service.analysis import confidence as confidence_lib
from shadow_service.analysis import score as score_lib

#: Monte Carlo draws per assessment.
DRAWS = 400


@dataclasses.dataclass
class Assessment:
    """What a ranking leaves open.

    ``incumbent`` is the top host, ``opportunity_cost`` the expected
    score lost by choosing it now, ``gains`` each other host's expected
    improvement over it (``{host: score points}``).
    """

    incumbent: str
    opportunity_cost: float
    gains: dict

    def contenders(self, margin):
        """Hosts other than the incumbent whose expected improvement is at
        least ``margin`` score points, largest first."""
        return sorted((h for h, g in self.gains.items() if g >= margin),
                      key=lambda h: (-self.gains[h], h))


def assess(ranking, *, weights=None, cost_factors=None, exclude=(),
           indifference=0.0, draws=DRAWS, seed=0, unknown=(),
           incumbent=None):
    """The :class:`Assessment` of ``ranking`` (an analyzer ``Ranking``).

    Only hosts with predictions and not in ``exclude`` (hosts that may
    not take the VM) take part; ``cost_factors`` (``{host: factor}``)
    multiplies each drawn score (the ``per_cost`` trade-off compares
    scores per unit of cost); improvements of at most ``indifference``
    score points count as none.  None when no host has a prediction.

    Every positive metric other than a percentage is drawn from the
    lognormal with its estimate's mean and sd
    (:func:`~shadow_service.analysis.confidence.draw` with ``relative``):
    the age drift is relative, and a wide latency estimate drawn from the
    normal would fall to 0 (an unbounded goodness) in a share of the
    draws and make its host the best in each of them.

    ``unknown``: hosts that may take the VM but have no prediction (no
    history of the workload); each takes part with draws of a known host
    picked at random (:func:`_population`), so the verdict says whether
    a host like the others could still change the ranking.

    ``incumbent``: the host whose expected loss is asked for (the
    ranking's top host when None); None when it takes no part.
    """
    excluded = set(exclude)
    hosts = [h for h in ranking.hosts
             if h.predicted and h.host not in excluded]
    if not hosts:
        return None
    weights = dict(weights or ranking.weights or {})
    found = _arrays(ranking, hosts, weights)
    if found is not None:
        metrics, values, sds, measurable = found
    else:
        metrics = sorted(m for m in weights
                         if any(m in h.predicted for h in hosts))
        values = np.array([[h.predicted.get(m, np.nan) for m in metrics]
                           for h in hosts], dtype=float)
        sds = np.array([[h.uncertainty.get(m, 0.0) if m in h.predicted
                         else np.nan for m in metrics] for h in hosts],
                       dtype=float)
        measurable = None
    if not metrics:
        return None
    if measurable is not None:
        sds = measurable
    draws = confidence_lib.bounded_draws(draws, len(hosts))
    drawn = confidence_lib.draw(metrics, values, sds, draws, seed,
                                relative=True)
    names = [h.host for h in hosts]
    unknown = [h for h in unknown if h not in excluded and h not in names]
    if unknown:
        drawn = np.concatenate(
            [drawn, _population(drawn, len(unknown), seed)])
    scores = np.nan_to_num(score_lib.scores(metrics, weights, drawn))
    point = np.nan_to_num(score_lib.scores(metrics, weights, values))
    if cost_factors:
        factors = np.array([float(cost_factors.get(h, 1.0))
                            for h in names + unknown])
        scores = scores * factors[:, None]
        point = point * factors[:len(names)]
    if incumbent is None:
        top = int(np.argmax(point))
    elif incumbent in names:
        top = names.index(incumbent)
    else:
        return None
    lead = scores - scores[top] - float(indifference)
    gains = np.mean(np.maximum(lead, 0.0), axis=1)
    cost = float(np.mean(np.maximum(np.max(lead, axis=0), 0.0)))
    return Assessment(
        incumbent=names[top], opportunity_cost=cost,
        gains={h: float(g) for i, (h, g) in enumerate(zip(names + unknown,
                                                           gains))
               if i != top})


def _population(drawn, count, seed):
    """``count`` hosts' drawn metric values (count, metrics, draws) for
    hosts history knows nothing about: in each draw, the values of a
    known host picked at random in a draw picked at random (so
    independent of the known hosts' values in the same draw), scored with
    the known hosts' draws: an unknown host is taken to be like a
    candidate picked at random among the known ones."""
    rng = np.random.default_rng(seed + 1)
    hosts, _metrics, draws = drawn.shape
    picked = drawn[rng.integers(0, hosts, size=(count, draws)), :,
                   rng.integers(0, draws, size=(count, draws))]
    return np.transpose(picked, (0, 2, 1))


def _rows(names, hosts):
    """The index in ``names`` of each of ``hosts``, or None when one is
    not there."""
    row = {host: index for index, host in enumerate(names)}
    try:
        return [row[h.host] for h in hosts]
    except KeyError:
        return None


def _arrays(ranking, hosts, weights):
    """``(metrics, values, sds, measurable sds or None)`` of ``hosts``
    from the arrays the ranking was made from (the same figures its host
    entries hold), or None when it has none or they may not match."""
    arrays = getattr(ranking, 'arrays', None)
    if arrays is None:
        return None
    entries, count, measured, metrics, values, sds = arrays
    if (entries is not ranking.hosts or len(entries) != count
            or sorted(weights) != list(metrics)):
        return None
    rows = _rows(measured, hosts)
    if rows is None:
        return None
    measurable = getattr(ranking, 'measurable_sds', None)
    if measurable is not None and measurable.shape != sds.shape:
        measurable = None
    values, sds = values[rows], sds[rows]
    present = ~np.all(np.isnan(values), axis=0)
    columns = [c for c in range(len(metrics)) if present[c]]
    if measurable is not None:
        measurable = measurable[rows][:, columns]
    return ([metrics[c] for c in columns], values[:, columns],
            sds[:, columns], measurable)
