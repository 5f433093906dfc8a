#!/usr/bin/env python3
"""The expected calibration error a perfectly calibrated confidence shows.

The placement benchmark's ``confidence_calibration`` bins a run's
(confidence, top host right) pairs and reports the expected calibration
error (ECE). With a few hundred pairs the ECE is not zero even when every
stated confidence is exactly the probability of being right: each bin's
observed share scatters around its confidence. This script takes the
stated confidences of a run (a ``--rows`` file of
``placement_quality.py``), draws the outcomes a perfectly calibrated
confidence would have (right with probability equal to the confidence),
bins them with the benchmark's bins and reports the ECE's distribution,
next to the run's own ECE. A run whose ECE lies within that distribution
cannot be told apart from a calibrated one by its ECE.

Usage::

    python benchmarks/ece_floor.py ROWS.arrivals.json [ROWS ...] \
        [--draws 2000] [--seed 0] [--target 0.05]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from shadow_service.analysis import calibration  # noqa: E402


def floor(rows, *, draws=2000, seed=0, target=0.05):
    """The ECE distribution of a calibrated confidence with the stated
    confidences of ``rows`` (placement benchmark rows)."""
    pairs = [r['confidence'] for r in rows if r.get('confidence')]
    stated = np.array([p[0] for p in pairs], dtype=float)
    right = np.array([p[1] for p in pairs], dtype=float)
    rng = np.random.default_rng(seed)
    eces = np.array([calibration.reliability(
        stated, rng.random(stated.size) < stated)['ece']
        for _ in range(draws)])
    measured = calibration.reliability(stated, right)['ece']
    return {'pairs': int(stated.size), 'measured_ece': measured,
            'calibrated_ece_mean': round(float(np.mean(eces)), 4),
            'calibrated_ece_p10': round(float(np.percentile(eces, 10)), 4),
            'calibrated_ece_p90': round(float(np.percentile(eces, 90)), 4),
            'share_of_calibrated_at_or_below_%.2f' % target:
                round(float(np.mean(eces <= target)), 3),
            'share_of_calibrated_at_or_above_measured':
                round(float(np.mean(eces >= measured)), 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('rows', nargs='+')
    parser.add_argument('--draws', type=int, default=2000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--target', type=float, default=0.05)
    args = parser.parse_args(argv)
    for path in args.rows:
        with open(path) as handle:
            rows = json.load(handle)
        print(os.path.basename(path), json.dumps(floor(
            rows, draws=args.draws, seed=args.seed, target=args.target)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
