"""Learning how far the prior's expected loss can be trusted, per profile.

The ``racing`` schedule answers from history alone when the prior's
expected loss (the score points the scheduler could lose by taking the
prior's top host, :mod:`shadow_service.racing`) is at most
``prior_settle_margin``.  That figure comes from the estimates' stated
uncertainty (their samples' and their age at the learned drift), and
whether that uncertainty is too wide or too narrow differs from one
workload to the next.  Every race that did boot shadows tells: after it,
the expected loss of the *prior's* top host is asked again of the
race's final ranking (``history_verdict.loss_after``).  Were the prior's
uncertainty stated right, that figure would on average equal the
prior's expected loss (the final ranking knows what the prior knew and
more); its ratio to the prior's figure, over a profile's races, is how
much of the prior's stated loss was real.

:class:`PriorTrustLearner` fits that ratio per profile, from the races
whose prior expected loss lay where the ratio could change the decision
(above the margin, at most the margin over :data:`MIN_TRUST`), shrunk
toward 1 by :data:`PRIOR_OUTCOMES` pseudo-races, and bounded to
[:data:`MIN_TRUST`, :data:`MAX_TRUST`]; the evaluator multiplies the
prior's expected loss by it before comparing it with the margin.  A
profile with fewer than ``min_outcomes`` such races keeps a ratio of 1
(the prior's figure as stated).  The ratio is learnt from the races the
decision leaves, which are the requests it is asked about, so a profile
answered more often from history goes on being checked by those it still
races.  Refits are throttled like the other learners' and never raise.
Configure it in the ``[shadow]`` group (``prior_trust_*`` options).
"""

import collections
import dataclasses
import logging
import math
import time

from shadow_service.learners import base

LOG = logging.getLogger(__name__)

#: Lowest ratio stated: the prior's expected loss is never taken for less
#: than a quarter of itself.
MIN_TRUST = 0.25
#: Highest ratio stated.
MAX_TRUST = 4.0
#: Pseudo-races at a ratio of 1 a profile's ratio is shrunk toward.
PRIOR_OUTCOMES = 5.0


@dataclasses.dataclass
class PriorTrust:
    """Learned ratios ``{profile: ratio}`` (profiles without enough races
    are left out: their ratio is 1) and ``outcomes`` ``{profile: races
    used}``."""

    by_profile: dict = dataclasses.field(default_factory=dict)
    outcomes: dict = dataclasses.field(default_factory=dict)

    def factor(self, profile):
        """The ratio the prior's expected loss of ``profile`` is
        multiplied by (1 without a learned one)."""
        return self.by_profile.get(profile, 1.0)

    def to_dict(self):
        return {'by_profile': {p: round(v, 4)
                               for p, v in sorted(self.by_profile.items())},
                'outcomes': dict(sorted(self.outcomes.items()))}


def race_outcome(record):
    """``(profile, prior expected loss, loss after, margin)`` of one
    evaluation record, or None when it is not a race that can tell (an
    answer from history, another schedule, a record from before the
    figure was kept, or one without a finite figure)."""
    verdict = record.get('history_verdict') or {}
    if record.get('source') != 'shadows' or verdict.get('decides'):
        return None
    figures = (verdict.get('expected_loss'), verdict.get('loss_after'),
               verdict.get('prior_settle_margin'))
    if any(not isinstance(f, (int, float)) or isinstance(f, bool)
           or not math.isfinite(f) for f in figures):
        return None
    request = record.get('request') or {}
    profile = request.get('profile')
    if not isinstance(profile, str):
        profile = (profile or {}).get('name')
    if not profile:
        return None
    return (str(profile),) + tuple(float(f) for f in figures)


def fit(outcomes, *, min_outcomes, prior_outcomes=PRIOR_OUTCOMES):
    """:class:`PriorTrust` of ``outcomes`` (``(profile, prior expected
    loss, loss after, margin)``): per profile, over the outcomes whose
    prior loss was above the margin and at most the margin over
    :data:`MIN_TRUST`, ``(sum after + k * mean before) / (sum before + k *
    mean before)`` with ``k = prior_outcomes``, bounded to
    [:data:`MIN_TRUST`, :data:`MAX_TRUST`]; profiles with fewer than
    ``min_outcomes`` such outcomes are left out."""
    grouped = collections.defaultdict(list)
    for profile, before, after, margin in outcomes:
        if margin <= 0 or not margin < before <= margin / MIN_TRUST:
            continue
        grouped[profile].append((before, max(after, 0.0)))
    state = PriorTrust()
    for profile, pairs in grouped.items():
        if len(pairs) < max(1, min_outcomes):
            continue
        before = sum(b for b, _a in pairs)
        after = sum(a for _b, a in pairs)
        pseudo = prior_outcomes * before / len(pairs)
        ratio = (after + pseudo) / (before + pseudo)
        state.by_profile[profile] = min(MAX_TRUST, max(MIN_TRUST, ratio))
        state.outcomes[profile] = len(pairs)
    return state


class PriorTrustLearner(base.HistoryLearner):
    """Fits :class:`PriorTrust` on the races in the history's evaluation
    records.

    Parameters (besides those of
    :class:`~shadow_service.learners.base.HistoryLearner`)
    ------------------------------------------------------
    min_outcomes : int
        Races a profile needs before its ratio is learned.
    prior_outcomes : float
        Pseudo-races at a ratio of 1 each profile's ratio is shrunk
        toward.
    """

    what = 'the prior trust'

    def __init__(self, history, *, lookback_s=7 * 86400.0, min_outcomes=10,
                 prior_outcomes=PRIOR_OUTCOMES, refit_every=10,
                 refit_interval_s=3600.0, max_evaluations=500,
                 clock=time.time, monotonic=None):
        if min_outcomes < 1 or prior_outcomes < 0:
            raise ValueError('min_outcomes must be at least 1 and '
                             'prior_outcomes not negative')
        super().__init__(
            history, lookback_s=lookback_s, refit_every=refit_every,
            refit_interval_s=refit_interval_s,
            max_evaluations=max_evaluations, initial=PriorTrust(),
            clock=clock, monotonic=monotonic)
        self.min_outcomes = int(min_outcomes)
        self.prior_outcomes = float(prior_outcomes)

    @classmethod
    def from_conf(cls, conf, history, clock=time.time):
        """Build from ``[shadow] prior_trust_*``."""
        opts = conf.shadow
        return cls(history, lookback_s=opts.prior_trust_lookback,
                   min_outcomes=opts.prior_trust_min_outcomes, clock=clock)

    def prior_trust(self):
        """The current :class:`PriorTrust`; counts one use and refits when
        due; never raises."""
        return self._use_or_last()

    def current(self):
        """The ratios in use, without counting a use or refitting."""
        return self._state

    def _fit(self):
        outcomes = [o for o in (race_outcome(record)
                                for _id, record in self.records())
                    if o is not None]
        state = fit(outcomes, min_outcomes=self.min_outcomes,
                    prior_outcomes=self.prior_outcomes)
        return state, len(outcomes)

    def _describe(self, state):
        return str(state.to_dict())
