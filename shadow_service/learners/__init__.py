"""Learners: models fitted on the history of evaluations and placed VMs.

* :class:`~.contention.ContentionLearner`: how each host's load degrades a
  workload's performance (contention regression);
* :class:`~.scaleup.ScaleUpLearner`: how a shadow's figures scale up to the
  full flavor;
* :class:`~.calibration.CalibrationLearner`: how often a ranking's top host
  really was best, per stated confidence;
* :class:`~.drift.AgeDriftLearner`: how fast hosts' measurements go stale;
* :class:`~.priortrust.PriorTrustLearner`: how much of the prior's
  expected loss races confirmed, per profile.

:func:`build` makes the learners ``[shadow]`` switches on; the evaluator and
the watcher both call it, so both learn from the same records the same way.
"""

import dataclasses

from shadow_service.learners import calibration as calibration_mod
from shadow_service.learners import contention as contention_mod
from shadow_service.learners import drift as drift_mod
from shadow_service.learners import priortrust as priortrust_mod
from shadow_service.learners import scaleup as scaleup_mod


@dataclasses.dataclass
class Learners:
    """The learners in use; ``None`` where switched off."""

    contention: contention_mod.ContentionLearner = None
    scaleup: scaleup_mod.ScaleUpLearner = None
    calibration: calibration_mod.CalibrationLearner = None
    age_drift: drift_mod.AgeDriftLearner = None
    prior_trust: priortrust_mod.PriorTrustLearner = None


def build(conf, history, clock):
    """The learners ``conf`` switches on, reading ``history``.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts
        ``[shadow] contention_*`` and ``scaleup_*`` options, ``[analysis]
        confidence_calibration``, ``calibration_*`` and ``age_drift_*``;
        ``[shadow] prior_trust_*``.
    history : shadow_service.history.base.HistoryStore
    clock : callable
        Now in the time base of the history's records: the cloud driver's
        clock (virtual in the twin).  Lookbacks and refit intervals run on
        it.
    """
    opts = conf.shadow
    return Learners(
        contention=(contention_mod.ContentionLearner.from_conf(
            conf, history, clock=clock) if opts.contention_learning
            else None),
        scaleup=(scaleup_mod.ScaleUpLearner.from_conf(
            conf, history, clock=clock) if opts.scaleup_learning else None),
        calibration=(calibration_mod.CalibrationLearner.from_conf(
            conf, history, clock=clock)
            if conf.analysis.confidence_calibration else None),
        age_drift=(drift_mod.AgeDriftLearner.from_conf(
            conf, history, clock=clock)
            if conf.analysis.age_drift_learning else None),
        prior_trust=(priortrust_mod.PriorTrustLearner.from_conf(
            conf, history, clock=clock)
            if opts.prior_trust_learning else None))
