#!/usr/bin/env python3
"""Rolling-origin forecast accuracy of every forecaster on real traces.

Usage::

    nice -n 5 python benchmarks/forecast_accuracy.py \
        --traces /work/shared/traces --dataset auto --horizon-min 60 \
        --out benchmarks/results/forecast_accuracy.json

Data sets (formats in ../shared/traces/README.md; quirks handled here, the
files are never modified):

* ``bitbrains``: ``*/N.csv.gz``; ';'+tab separated, timestamps in Unix
  seconds despite the "[ms]" header, duplicates and gaps. CPU utilisation
  is derived as usage MHz / provisioned MHz * 100, clipped to [0, 100]
  (the "CPU usage [%]" column exceeds 100 on some rows and is not used).
  Samples are averaged onto a 300 s grid; gaps are filled by
  ``analysis.series.clean`` for fitting, and origins whose horizon holds a
  filled (originally missing) value are not scored.
* ``planetlab``: ``<date>/<vm>`` files, one CPU % per line, 288 lines;
  file names may hold spaces. Each file is its own series (dates are not
  contiguous).

For each series the test window is the last 7 days (at most the second
half of the series); forecasts are made from origins every
``--origin-step-min`` minutes inside it, using only earlier data. The
statsmodels forecasters (``--heavy``) cost 0.1-1 s per fit and run on the
first ``--heavy-series`` series of the sample from every
``--heavy-origin-every``-th origin. Every forecaster's ``relative_mase``
is computed against the baseline (seasonal naive with a one-day season
when the history holds two days, else last-value naive) on exactly the
same series and origins. The series used are listed in the JSON, with
the parameters of the run and, per forecaster, how its 90 % interval is
made (``interval``). Each worker process uses one BLAS thread.

The script also times ``refresh_seconds_1000``: 1,000 sequential fits +
forecasts of the ``auto`` forecaster on 7-day (or whole) histories, and
measures the analyzer's confidence calibration on trace-driven ranking
cases (a reliability table).
"""

import argparse
import glob
import json
import logging
import multiprocessing
import os
import platform
import sys
import time

# One BLAS thread per process: the pool already uses every core, and
# OpenBLAS threads spinning against each other slowed statsmodels fits by
# an order of magnitude. Must be set before numpy is imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                  "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from shadow_service.analysis import calibration  # noqa: E402
from shadow_service.analysis import forecasters  # noqa: E402
from shadow_service.analysis import series as series_lib  # noqa: E402

LOG = logging.getLogger("forecast_accuracy")

STEP_S = 300.0
CAPACITY = 100.0
BOUNDS = (0.0, 100.0)
TEST_S = 7 * 86400.0
BASELINE = "seasonal_naive"
CHEAP = ("auto", "naive", "ses")
HEAVY = ("holt_winters", "arima", "stl_arima")


def load_bitbrains(root):
    """Yield (series id, values, filled mask) for each Bitbrains VM."""
    paths = sorted(glob.glob(os.path.join(root, "**", "*.csv.gz"),
                             recursive=True)
                   + glob.glob(os.path.join(root, "**", "*.csv"),
                               recursive=True))
    for path in paths:
        frame = pd.read_csv(path, sep=";", skipinitialspace=True)
        frame.columns = [c.strip() for c in frame.columns]
        capacity = frame["CPU capacity provisioned [MHZ]"].to_numpy(float)
        usage = frame["CPU usage [MHZ]"].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            util = np.where(capacity > 0, usage / capacity * 100.0, np.nan)
        util = np.clip(util, *BOUNDS)
        times = frame["Timestamp [ms]"].to_numpy(float)
        _, grid, _stats = series_lib.regularise(times, util, step_s=STEP_S)
        missing = ~np.isfinite(grid)
        cleaned = series_lib.clean(grid, bounds=BOUNDS, season=288)
        if cleaned.values.size != grid.size:
            first = int(np.flatnonzero(~missing)[0])
            missing = missing[first:first + cleaned.values.size]
        yield os.path.relpath(path, root), cleaned.values, missing


def load_planetlab(root):
    """Yield (series id, values, filled mask) for each PlanetLab file."""
    paths = sorted(p for p in glob.glob(os.path.join(root, "*", "*"))
                   if os.path.isfile(p))
    for path in paths:
        with open(path) as handle:
            raw = [line.strip() for line in handle if line.strip()]
        values = np.array([float(v) for v in raw])
        yield (os.path.relpath(path, root), np.clip(values, *BOUNDS),
               np.zeros(values.size, dtype=bool))


def find_datasets(traces, dataset):
    """Return {name: directory} of the data sets to run."""
    found = {}
    for name in ("bitbrains", "planetlab"):
        if dataset not in ("auto", name):
            continue
        candidates = [os.path.join(traces, d) for d in os.listdir(traces)
                      if d.startswith(name)]
        if os.path.basename(os.path.normpath(traces)).startswith(name):
            candidates.append(traces)
        for candidate in candidates:
            if os.path.isdir(candidate):
                found[name] = candidate
                break
    return found


def origins_for(n, horizon, origin_step):
    start = max(n - int(TEST_S / STEP_S), n // 2)
    return list(range(start - 1, n - horizon, origin_step))


def evaluate_series(job):
    """Score the forecasters on one series; return per-forecaster rows."""
    series_id, values, missing, names, horizon, origins = job
    rows = {}
    for name in names + [BASELINE]:
        rows[name] = []
    for origin in origins:
        actual = values[origin + 1:origin + 1 + horizon]
        if missing[origin + 1:origin + 1 + horizon].any():
            continue
        history = values[:origin + 1]
        scale = float(np.mean(np.abs(np.diff(history))))
        for name in names + [BASELINE]:
            forecaster = forecasters.load(name, bounds=BOUNDS,
                                          **_options(name, horizon))
            started = time.perf_counter()
            forecast = forecaster.fit(history, step_s=STEP_S).forecast(
                horizon)
            elapsed = time.perf_counter() - started
            rows[name].append(_origin_scores(actual, forecast, scale,
                                             elapsed))
    return series_id, rows


def _options(name, horizon):
    return {"horizon_steps": horizon} if name == "auto" else {}


def _origin_scores(actual, forecast, scale, elapsed):
    error = actual - forecast.mean
    denominator = np.abs(actual) + np.abs(forecast.mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        smape = np.where(denominator > 0,
                         200.0 * np.abs(error) / denominator, 0.0)
    return {
        "mase": float(np.mean(np.abs(error)) / scale) if scale > 0
        else None,
        "smape": float(np.mean(smape)),
        "covered": float(np.mean((actual >= forecast.lower)
                                 & (actual <= forecast.upper))),
        "under": float(np.mean(error > 0.1 * CAPACITY)),
        "seconds": elapsed,
    }


def summarise(results, names):
    """Aggregate per-series rows into the benchmark figures."""
    summary = {}
    for name in names:
        per_series_relative, per_series_mase = [], []
        smape, covered, under, seconds, origins = [], [], [], [], 0
        for _series_id, rows in results:
            own, base = rows.get(name, []), rows[BASELINE]
            pairs = [(o, b) for o, b in zip(own, base)
                     if o["mase"] is not None]
            for row in own:
                smape.append(row["smape"])
                covered.append(row["covered"])
                under.append(row["under"])
                seconds.append(row["seconds"])
            origins += len(own)
            if not pairs:
                continue
            own_mase = np.mean([o["mase"] for o, _ in pairs])
            base_mase = np.mean([b["mase"] for _, b in pairs])
            per_series_mase.append(own_mase)
            if base_mase > 0:
                per_series_relative.append(own_mase / base_mase)
        if not origins:
            continue
        summary[name] = {
            "series": len(per_series_mase),
            "origins": origins,
            "mase": _mean(per_series_mase),
            "relative_mase": _mean(per_series_relative),
            "relative_mase_median": (float(np.median(per_series_relative))
                                     if per_series_relative else None),
            "smape": _mean(smape),
            "coverage_90": _mean(covered),
            "under_forecast_rate": _mean(under),
            "fit_seconds_per_series": _mean(seconds),
        }
    return summary


def _mean(values):
    return float(np.mean(values)) if len(values) else None


def run_dataset(name, directory, args):
    loader = load_bitbrains if name == "bitbrains" else load_planetlab
    loaded = list(loader(directory))
    rng = np.random.default_rng(args.seed)
    limit = args.max_series.get(name)
    if limit and len(loaded) > limit:
        chosen = sorted(rng.choice(len(loaded), size=limit, replace=False))
        loaded = [loaded[i] for i in chosen]
    horizon = max(int(round(args.horizon_min * 60 / STEP_S)), 1)
    origin_step = max(int(round(args.origin_step_min * 60 / STEP_S)), 1)
    jobs = []
    heavy = [h for h in args.forecasters if h in HEAVY]
    cheap = [c for c in args.forecasters if c not in HEAVY]
    for index, (series_id, values, missing) in enumerate(loaded):
        origins = origins_for(values.size, horizon, origin_step)
        if not origins:
            continue
        jobs.append((series_id, values, missing, cheap, horizon, origins))
        if heavy and index < args.heavy_series:
            jobs.append((series_id, values, missing, heavy, horizon,
                         origins[::args.heavy_origin_every]))
    started = time.time()
    with multiprocessing.Pool(args.jobs) as pool:
        outputs = pool.map(evaluate_series, jobs, chunksize=1)
    LOG.info("%s: %d jobs in %.0f s", name, len(jobs), time.time() - started)
    cheap_results = [(s, r) for (s, r), j in zip(outputs, jobs)
                     if j[3] is cheap]
    heavy_results = [(s, r) for (s, r), j in zip(outputs, jobs)
                     if j[3] is heavy]
    summary = summarise(cheap_results, cheap + [BASELINE])
    if heavy_results:
        heavy_summary = summarise(heavy_results, heavy)
        for key, figures in heavy_summary.items():
            figures["note"] = ("%d series, every %d-th origin; relative "
                               "to the baseline on the same origins"
                               % (len(heavy_results),
                                  args.heavy_origin_every))
            summary[key] = figures
    for key, figures in summary.items():
        figures["interval"] = _interval_method(key)
    return {
        "series_used": [s for s, _v, _m in loaded],
        "heavy_series_used": [s for s, _r in heavy_results],
        "horizon_steps": horizon,
        "origin_step_steps": origin_step,
        "forecasters": summary,
    }, loaded


def _interval_method(name):
    """How the forecaster's interval is made, as the plugin states it."""
    return (getattr(forecasters.forecaster_class(name), "interval_method",
                    None) or "not stated by the plugin")


def time_refresh(loaded, count=1000, horizon=12):
    """Time ``count`` sequential auto fits+forecasts on real histories."""
    week = int(TEST_S / STEP_S)
    histories = []
    offset = 0
    while len(histories) < count:
        added = 0
        for _series_id, values, _missing in loaded:
            end = values.size - offset * horizon
            if end < 50:
                continue
            histories.append(values[max(end - week, 0):end])
            added += 1
            if len(histories) == count:
                break
        if not added:
            break
        offset += 1
    forecaster = forecasters.load("auto", bounds=BOUNDS,
                                  horizon_steps=horizon)
    started = time.perf_counter()
    for history in histories:
        forecaster.fit(history, step_s=STEP_S).forecast(horizon)
    elapsed = time.perf_counter() - started
    return {"refresh_seconds_1000": elapsed * 1000.0 / len(histories),
            "series_timed": len(histories),
            "mean_history_points": float(np.mean([h.size
                                                  for h in histories]))}


def print_table(name, summary):
    print("\n%s (horizon %d steps)" % (name, summary["horizon_steps"]))
    header = ("forecaster", "series", "origins", "mase", "rel_mean",
              "rel_median", "smape", "cov90", "under", "fit_s")
    print("%-15s %6s %7s %7s %8s %10s %7s %6s %6s %7s" % header)
    for forecaster, figures in sorted(summary["forecasters"].items()):
        print("%-15s %6d %7d %7.3f %8.3f %10.3f %7.2f %6.3f %6.3f %7.4f" % (
            forecaster, figures["series"], figures["origins"],
            figures["mase"] or 0, figures["relative_mase"] or 0,
            figures["relative_mase_median"] or 0, figures["smape"] or 0,
            figures["coverage_90"] or 0, figures["under_forecast_rate"] or 0,
            figures["fit_seconds_per_series"] or 0))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", required=True)
    parser.add_argument("--dataset", default="auto",
                        choices=("auto", "bitbrains", "planetlab"))
    parser.add_argument("--horizon-min", type=float, default=60.0)
    parser.add_argument("--origin-step-min", type=float, default=120.0)
    parser.add_argument("--out", default="benchmarks/results/"
                        "forecast_accuracy.json")
    parser.add_argument("--forecasters", default=",".join(CHEAP + HEAVY))
    parser.add_argument("--bitbrains-max-series", type=int, default=0,
                        help="0 = all")
    parser.add_argument("--planetlab-max-series", type=int, default=400)
    parser.add_argument("--heavy-series", type=int, default=8)
    parser.add_argument("--heavy-origin-every", type=int, default=3)
    parser.add_argument("--calibration-cases", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.forecasters = [f for f in args.forecasters.split(",") if f]
    args.max_series = {"bitbrains": args.bitbrains_max_series,
                       "planetlab": args.planetlab_max_series}
    return args


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    datasets = find_datasets(args.traces, args.dataset)
    if not datasets:
        print("no bitbrains* or planetlab* data under %s" % args.traces)
        return 1
    report = {"horizon_min": args.horizon_min, "baseline": BASELINE,
              "machine": {"cpus": os.cpu_count(),
                          "python": platform.python_version()},
              "parameters": {key: value for key, value in vars(args).items()
                             if key not in ("out", "traces")},
              "datasets": {}}
    refresh_source = None
    all_loaded = {}
    for name, directory in sorted(datasets.items()):
        summary, loaded = run_dataset(name, directory, args)
        all_loaded[name] = loaded
        report["datasets"][name] = summary
        print_table(name, summary)
        if refresh_source is None or name == "bitbrains":
            refresh_source = (name, loaded)
    refresh = time_refresh(refresh_source[1])
    refresh["dataset"] = refresh_source[0]
    report["refresh"] = refresh
    print("\nrefresh_seconds_1000 = %.1f (%s, %d series, mean %d points)"
          % (refresh["refresh_seconds_1000"], refresh["dataset"],
             refresh["series_timed"], refresh["mean_history_points"]))
    # Written now and again after the calibration step, so the forecast
    # figures survive if that step fails.
    _write(report, args.out)
    if args.calibration_cases:
        series_pool = [v for loaded in all_loaded.values()
                       for _s, v, _m in loaded]
        table = calibration.trace_driven_reliability(
            series_pool, cases=args.calibration_cases, seed=args.seed)
        report["calibration"] = table
        calibration.print_table(table)
    _write(report, args.out)
    print("\nwrote %s" % args.out)
    return 0


def _write(report, path):
    with open(path, "w") as handle:
        json.dump(report, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
