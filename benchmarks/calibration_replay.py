#!/usr/bin/env python3
"""Replay the confidence calibration's online learning on stored rows.

The placement benchmark's ``--rows`` file holds, per request in arrival
order, ``confidence: [stated, top host right, raw, share]`` (``share``:
the candidates' allocated RAM share, in rows written since the map is
read at it; older rows lack it, and the replay stands in the cluster's:
its RAM allocated at the start plus what the arm placed and still runs,
over its RAM).  The calibration
learner only knows a ranking's outcome once the VM's first day (or its
life, when shorter) is over, and refits at most hourly on the twin's
clock.  This script replays that: at each request, a map fitted only on
the outcomes known by then (``placed at + min(day, lifetime)`` at or
before the request's arrival), refitted at most every
``REFIT_S`` seconds and ``REFIT_REQUESTS`` requests, applied to the
request's raw confidence.  The arrival times and lifetimes come from the
benchmark's own ``make_requests`` (same seed, count and mode).  Every
method is scored on the same replay: the ECE (the benchmark's bins), the
Brier score and the log loss (proper scores: a method that only squeezes
every confidence toward the mean accuracy lowers the binned ECE but not
these).

Usage::

    python benchmarks/calibration_replay.py \\
        ROWS.arrivals.json:arrivals:SEED:REQUESTS [...] [--json OUT]

The replay of the method in use reproduces the runs' own stated ECE to
within about 0.01 in ``arrivals`` and 0.015 in ``fill`` (the learner's
refits are counted in uses, not requests).
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

WINDOW_S = 86400.0
REFIT_S = 3600.0
REFIT_REQUESTS = 7
MIN_PAIRS = 20


class _Drawn(Exception):
    pass


def request_times(mode, seed, count):
    """``([(arrival offset s, lifetime s or None)], cluster)`` of the
    benchmark's requests (its twin is built to size the arrival rate);
    ``cluster``: ``(RAM MB allocated at the start, RAM MB)``."""
    import placement_quality as pq
    drawn = {}
    original, original_free = pq.make_requests, pq.free_ram_mb

    def free(driver, hosts):
        drawn['total'] = float(sum(driver.nova_view(h)['memory_mb']
                                   for h in hosts))
        return original_free(driver, hosts)

    def grab(count, seed, start, mode='independent', free_ram_mb=None):
        requests = original(count, seed, start, mode=mode,
                            free_ram_mb=free_ram_mb)
        drawn['times'] = [(r['arrival'] - start, r.get('lifetime_s'))
                          for r in requests]
        drawn['used'] = drawn['total'] - free_ram_mb
        raise _Drawn()

    pq.make_requests, pq.free_ram_mb = grab, free
    try:
        pq.main(['--mode', mode, '--seed', str(seed), '--requests',
                 str(count), '--policies', 'nova', '--out', os.devnull])
    except _Drawn:
        pass
    finally:
        pq.make_requests, pq.free_ram_mb = original, original_free
    return drawn['times'], (drawn['used'], drawn['total'])


def cluster_shares(rows, times, cluster):
    """``{request: allocated RAM share of the cluster}`` when each was
    ranked: the start's allocation plus the arm's VMs still running."""
    import placement_quality as pq
    ram = {f['name']: f['ram_mb'] for f in pq.FLAVORS}
    used, total = cluster
    running, shares = [], {}
    for row in rows:
        arrival, lifetime = times[row['request']]
        running = [(end, mb) for end, mb in running if end > arrival]
        shares[row['request']] = (used + sum(mb for _e, mb in running)) \
            / total
        running.append((arrival + lifetime if lifetime else np.inf,
                         ram[row['flavor']]))
    return shares


def _logit(p):
    p = np.clip(p, 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p))


def _platt(x, y, prior, beta=False):
    """Logistic map on logit(raw) (or beta calibration's log(c),
    -log(1-c)), with a Gaussian prior of ``prior`` pseudo-pairs toward
    the identity."""
    def feats(c):
        c = np.clip(np.asarray(c, float), 1e-3, 1 - 1e-3)
        if beta:
            return np.stack([np.ones_like(c), np.log(c), -np.log(1 - c)], 1)
        return np.stack([np.ones_like(c), _logit(c)], 1)
    features, y = feats(x), np.asarray(y, float)
    center = np.array([0.0, 1.0, 1.0] if beta else [0.0, 1.0])
    theta, ridge = center.copy(), max(prior * 0.25, 1e-3)
    for _ in range(50):
        p = 1 / (1 + np.exp(-features @ theta))
        grad = features.T @ (p - y) + ridge * (theta - center)
        hess = ((features * (p * (1 - p))[:, None]).T @ features
                + ridge * np.eye(len(theta)))
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return lambda c: float(1 / (1 + np.exp(-(feats([c]) @ theta)[0])))


def methods():
    """``{name: (fit(confidences, outcomes, shares) -> map(raw, share),
    replay options)}``."""
    def binned(**kw):
        return lambda x, y, _s: cal.CalibrationMap(**kw).fit(x, y)

    def at_shares(**kw):
        return lambda x, y, s: cal.CalibrationMap(**kw).fit(x, y, s)
    found = {'raw (no map)': (None, {}),
             'identity tails, any share': (binned(tails='identity'), {}),
             'flat tails, any share (before)': (binned(), {}),
             'flat tails, covered shares (default)': (at_shares(), {})}
    for margin in (0.0, 0.01, 0.05):
        found['covered shares, margin %g' % margin] = (
            at_shares(share_margin=margin), {})
    for prior in (0, 2, 10, 20):
        found['flat tails, prior_pairs %g' % prior] = (
            binned(prior_pairs=prior), {})
    found['flat tails, bins 5'] = (binned(bins=5), {})
    found['flat tails, min_pairs 10'] = (binned(min_pairs=10),
                                         {'min_pairs': 10})
    found['flat tails, newest 40 outcomes'] = (binned(), {'recent': 40})
    for prior in (2, 5):
        found['Platt on logit(raw), prior %g' % prior] = (
            lambda x, y, _s, p=prior: _platt(x, y, p), {})
    found['beta calibration, prior 5'] = (
        lambda x, y, _s: _platt(x, y, 5, beta=True), {})
    found['mean accuracy so far'] = (
        lambda x, y, _s: (lambda a: (lambda c: a))(
            (np.sum(y) + 5 * 0.75) / (len(y) + 5)), {})
    return found


def _stated(mapping, raw, share):
    if isinstance(mapping, cal.CalibrationMap):
        return mapping(raw, share)
    return mapping(raw)


def replay(rows, times, fit, *, min_pairs=MIN_PAIRS, recent=None,
           cluster=None):
    """``(stated, outcomes)`` arrays of the online replay of ``fit``;
    ``cluster`` (see :func:`request_times`) stands in the cluster's
    share for rows without one."""
    shares = cluster_shares(rows, times, cluster) if cluster else {}
    pairs = []
    for row in rows:
        if not row.get('confidence'):
            continue
        arrival, lifetime = times[row['request']]
        known = arrival + min(WINDOW_S, lifetime or WINDOW_S)
        share = (row['confidence'][3] if len(row['confidence']) > 3
                 else shares.get(row['request']))
        pairs.append((known, row['confidence'][2],
                      float(row['confidence'][1]), arrival, share))
    stated, mapping = [], None
    fitted_at, fitted_n = -np.inf, -REFIT_REQUESTS
    for n, (_known, raw, _right, now, share) in enumerate(pairs):
        if fit is not None and now - fitted_at >= REFIT_S \
                and n - fitted_n >= REFIT_REQUESTS:
            seen = [(c, y, s) for k, c, y, _a, s in pairs[:n] if k <= now]
            if recent:
                seen = seen[-recent:]
            fitted_at, fitted_n = now, n
            mapping = (fit(*zip(*seen)) if len(seen) >= max(min_pairs, 1)
                       else None)
        stated.append(_stated(mapping, raw, share) if mapping is not None
                      else raw)
    return (np.clip(np.array(stated), 1e-4, 1 - 1e-4),
            np.array([p[2] for p in pairs]))


def scores(stated, outcomes):
    return {'ece': cal.reliability(stated, outcomes)['ece'],
            'brier': round(float(np.mean((stated - outcomes) ** 2)), 4),
            'log_loss': round(float(-np.mean(
                outcomes * np.log(stated)
                + (1 - outcomes) * np.log(1 - stated))), 4),
            'pairs': int(stated.size)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('rows', nargs='+',
                        help='ROWS_FILE:MODE:SEED:REQUESTS')
    parser.add_argument('--json', help='also write the table here')
    args = parser.parse_args(argv)
    files = []
    for spec in args.rows:
        path, mode, seed, count = spec.rsplit(':', 3)
        with open(path) as handle:
            rows = json.load(handle)
        times, cluster = request_times(mode, int(seed), int(count))
        files.append((os.path.basename(path), rows, times, cluster))
    table = {}
    print('%-34s %s | pooled ECE  Brier  log loss' % (
        'method', ' '.join('%6s' % ('f%d' % i) for i in range(len(files)))))
    for name, (fit, options) in methods().items():
        per_file, all_s, all_y = {}, [], []
        for label, rows, times, cluster in files:
            stated, outcomes = replay(rows, times, fit, cluster=cluster,
                                      **options)
            per_file[label] = scores(stated, outcomes)
            all_s.append(stated)
            all_y.append(outcomes)
        pooled = scores(np.concatenate(all_s), np.concatenate(all_y))
        table[name] = {'files': per_file, 'pooled': pooled}
        print('%-34s %s | %.4f  %.4f  %.4f' % (
            name, ' '.join('%6.3f' % per_file[f[0]]['ece'] for f in files),
            pooled['ece'], pooled['brier'], pooled['log_loss']), flush=True)
    for i, (label, *_rest) in enumerate(files):
        print('f%d = %s' % (i, label))
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(table, handle, indent=1, sort_keys=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
