#!/usr/bin/env python3
"""Fit the confidence calibration's prior map from stored rankings.

A ranking's outcome is known only once its VM's first day (or its life,
when shorter) is over, so the calibration learner has nothing to learn
from over a cloud's first day.  ``[analysis] calibration_prior_map`` is
the logistic map it states then, and the prior it learns from as
outcomes come: this script fits that map, ``a + b * logit(raw)`` on the
log-odds of the share right, on every ranking of the placement
benchmark's ``--rows`` files given (their raw confidence against whether
the top host really was best over the VM's first day), with a Gaussian
prior at the identity worth ``--prior-pairs`` outcomes, and writes it
as the JSON file the option reads.

The bundled map (``shadow_service/learners/data/calibration_prior.json``)
was fitted on the twin's ``arrivals`` seeds 5-6 and ``fill`` seeds 5-8;
the seeds the placement benchmark measures the calibration on (1-4) are
refused (``--held-out-seeds``), so that no measurement is made on the
rankings the map was fitted on.

``--cross-validate`` also replays, leaving out one file at a time, the
map fitted on the others against the learned map without a prior (the
learner's day-late outcomes and hourly refits, as
``calibration_replay.py``), at each ``--map-pairs``.

Usage::

    python benchmarks/calibration_prior.py \\
        ROWS.arrivals.json:arrivals:SEED:REQUESTS [...] \\
        [--out FILE] [--cross-validate] [--map-pairs 5 10 20]
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from shadow_service.analysis import calibration as cal  # noqa: E402
from shadow_service.learners import calibration as learning  # noqa: E402

#: The seeds the placement benchmark's calibration is measured on.
HELD_OUT_SEEDS = '1,2,3,4'


def pairs_of(rows):
    """``(raw confidences, 0/1 outcomes)`` of every ranked row."""
    ranked = [r for r in rows if r.get('confidence')]
    return (np.array([r['confidence'][2] for r in ranked], float),
            np.array([float(r['confidence'][1]) for r in ranked]))


def fit_prior(raw, right, prior_pairs=5.0):
    """``(a, b)``: the logistic map of ``right`` on ``raw``'s log-odds,
    a Gaussian prior at the identity worth ``prior_pairs`` outcomes."""
    mapping = cal.LogisticCalibrationMap(
        prior_pairs=prior_pairs, min_pairs=1).fit(raw, right)
    return mapping.coefficients


def replay_scores(rows, times, prior, map_pairs):
    """The replayed scores of the learned map with ``prior`` (None: the
    default without one) on one run's rows."""
    import calibration_replay as replay_lib
    def fit(confidences, outcomes, shares):
        return cal.LogisticCalibrationMap(
            prior=prior, prior_map_pairs=map_pairs or 0.0).fit(
                confidences, outcomes, shares)
    # With a prior map the map is read from the first ranking on.
    stated, outcomes = replay_lib.replay(
        rows, times, fit, min_pairs=replay_lib.MIN_PAIRS if prior is None
        else 0)
    return replay_lib.scores(stated, outcomes)


def cross_validate(files, map_pairs, prior_pairs):
    """Lines of the leave-one-file-out replay."""
    import calibration_replay as replay_lib
    runs = []
    for label, mode, seed, count, rows in files:
        times, _cluster = replay_lib.request_times(mode, seed, count)
        runs.append((label, rows, times))
    table = {'no prior map (default before)': []}
    table.update({'prior map, worth %g' % p: [] for p in map_pairs})
    for i, (_label, rows, times) in enumerate(runs):
        rest = [pairs_of(r) for j, (_l, r, _t) in enumerate(runs) if j != i]
        prior = fit_prior(np.concatenate([r for r, _y in rest]),
                          np.concatenate([y for _r, y in rest]),
                          prior_pairs)
        table['no prior map (default before)'].append(
            replay_scores(rows, times, None, None))
        for p in map_pairs:
            table['prior map, worth %g' % p].append(
                replay_scores(rows, times, prior, p))
    lines = ['%-32s %s | mean ECE  Brier  log loss' % (
        'left-out file replayed', ' '.join('%6s' % ('f%d' % i)
                                            for i in range(len(runs))))]
    for name, scores in table.items():
        lines.append('%-32s %s | %.4f    %.4f %.4f' % (
            name, ' '.join('%6.3f' % s['ece'] for s in scores),
            np.mean([s['ece'] for s in scores]),
            np.mean([s['brier'] for s in scores]),
            np.mean([s['log_loss'] for s in scores])))
    lines += ['f%d = %s' % (i, label) for i, (label, _r, _t)
              in enumerate(runs)]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('rows', nargs='+',
                        help='ROWS_FILE:MODE:SEED:REQUESTS')
    parser.add_argument('--out', help='write the prior map here (JSON, '
                        'as [analysis] calibration_prior_map reads it)')
    parser.add_argument('--prior-pairs', type=float, default=5.0,
                        help='outcomes the identity is worth in the fit '
                        '(default 5)')
    parser.add_argument('--held-out-seeds', default=HELD_OUT_SEEDS,
                        help='comma-separated seeds refused: those the '
                        'calibration is measured on (default %s)'
                        % HELD_OUT_SEEDS)
    parser.add_argument('--cross-validate', action='store_true',
                        help='also replay each file against the map fitted '
                        'on the others')
    parser.add_argument('--map-pairs', type=float, nargs='+',
                        default=[5.0, 10.0, 20.0],
                        help='[analysis] calibration_prior_map_pairs '
                        'replayed by --cross-validate')
    args = parser.parse_args(argv)
    held_out = {int(s) for s in args.held_out_seeds.split(',') if s}
    files = []
    for spec in args.rows:
        path, mode, seed, count = spec.rsplit(':', 3)
        if int(seed) in held_out:
            parser.error('%s: seed %s is held out for measuring the '
                         'calibration (--held-out-seeds)' % (path, seed))
        with open(path) as handle:
            rows = json.load(handle)
        files.append((os.path.basename(path), mode, int(seed), int(count),
                      rows))
    raw = np.concatenate([pairs_of(f[4])[0] for f in files])
    right = np.concatenate([pairs_of(f[4])[1] for f in files])
    a, b = fit_prior(raw, right, args.prior_pairs)
    found = {
        'method': 'logistic',
        'coefficients': [round(a, 4), round(b, 4)],
        'rankings': int(raw.size),
        'share_right': round(float(right.mean()), 4),
        'mean_raw_confidence': round(float(raw.mean()), 4),
        'identity_worth': args.prior_pairs,
        'fitted_on': ['%s:%s:%d:%d' % f[:4] for f in files],
        'note': 'stated log-odds a + b * logit(raw); fitted by '
                'benchmarks/calibration_prior.py',
    }
    print(json.dumps(found, indent=1))
    print('stated at raw 0.5 / 0.7 / 0.8 / 0.9: %s' % ' / '.join(
        '%.3f' % cal.LogisticCalibrationMap(prior=(a, b))(c)
        for c in (0.5, 0.7, 0.8, 0.9)))
    if args.out:
        with open(args.out, 'w') as handle:
            json.dump(found, handle, indent=1)
            handle.write('\n')
        learning.load_prior_map(args.out)
    if args.cross_validate:
        print('\n'.join(cross_validate(files, args.map_pairs,
                                       args.prior_pairs)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
