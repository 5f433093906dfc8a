"""Run a profile: start components, sample, emit, stop cleanly, summarise.

``Runner(profile, sinks, tags).run()`` is the whole life of a loadgen run:

1. ``prepare`` every component (create its nameless file, check its
   peer); any failure stops here, nothing is left.
2. fork the workers; every ``CONTROL_S`` set each component's level from
   ``profile.intensity``; every ``interval_s`` snapshot the counters and
   ``/proc/stat`` and emit one point per metric (skipped while warming up).
3. on ``duration_s``, SIGTERM/SIGINT (``request_stop``) stop the workers,
   close the components' files, close the sinks and return the summary
   (totals over the post-warm-up run, per-sink sent/dropped counts).

System metrics (``cpu_util_pct``, ``cpu_steal_pct`` from ``/proc/stat``)
are emitted even for a profile with no components (``idle``).
"""

import logging
import signal
import socket
import tempfile
import threading
import time

from loadgen import components as component_classes
from loadgen import machine
from loadgen import stats
from loadgen.components import base

LOG = logging.getLogger(__name__)
CONTROL_S = 0.1
MEASUREMENT = 'shadow_sample'


def default_tags(profile, tags=None):
    """The contract's tag set, filled with defaults where not given."""
    hostname = socket.gethostname()
    merged = {'evaluation': 'none', 'shadow': hostname, 'host': hostname,
              'profile': profile.name}
    merged.update({k: str(v) for k, v in (tags or {}).items()})
    return merged


class Runner:
    """One run of ``profile`` writing to ``sinks`` with ``tags``."""

    def __init__(self, profile, sinks, tags=None, workdir=None, plan=None):
        self.profile = profile
        self.plan = plan
        self.sinks = list(sinks)
        for sink in self.sinks:
            # A sink that learns the run is no longer wanted (the
            # collector's 410) stops it cleanly.
            if hasattr(sink, 'on_finished'):
                sink.on_finished = self.request_stop
        self.tags = default_tags(profile, tags)
        self._parent_dir = workdir
        self._stop = threading.Event()
        self.stop_reason = None
        self.components = {}
        self.workdir = None
        self._emitted = 0
        self._metric_sums = {}

    def request_stop(self, reason='stopped'):
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    def install_signal_handlers(self):
        def handler(signum, frame):
            self.request_stop(signal.Signals(signum).name)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- life cycle -----------------------------------------------------
    def prepare(self):
        """Create every component; raises on failure (nothing is left).

        No temporary directory is made: the disk component's file has no
        name (see ``components.disk``), so even a SIGKILLed run leaves
        nothing behind. ``workdir`` is only where such files are created.
        Components run with the parameters of the machine plan (worker
        counts bounded by the CPUs, see ``loadgen.machine``), made here
        unless the runner was given one.
        """
        self.workdir = self._parent_dir or tempfile.gettempdir()
        if self.plan is None:
            self.plan = machine.plan(self.profile, self.workdir)
        try:
            for name, params in self.plan.components.items():
                component = component_classes.COMPONENT_CLASSES[name](
                    params, self.workdir)
                self.components[name] = component
                component.prepare()
        except BaseException:
            self._cleanup()
            raise

    def run(self):
        """Run to the end; returns the summary dict."""
        if self.workdir is None:
            self.prepare()
        started_wall = time.time()
        totals = None
        try:
            # Every level is 0 until all workers are forked (idle workers
            # do not slow the forking), then follows the profile.
            for component in self.components.values():
                component.start()
            self._set_levels(0.0)
            totals = self._sample_loop()
        finally:
            # All components' workers stop together, within one deadline.
            base.stop_all(list(self.components.values()))
            self._cleanup()
            if totals is None:
                # Failed: still send what the sinks hold.
                for sink in self.sinks:
                    sink.close()
        dead = [n for c in self.components.values()
                for n in c.dead_workers()]
        summary = self._summary(totals, time.time() - started_wall, dead)
        for sink in self.sinks:
            sink.close()
        summary['sinks'] = [sink.stats() for sink in self.sinks]
        summary['points_dropped'] = sum(s.get('dropped', 0)
                                        for s in summary['sinks'])
        return summary

    def _cleanup(self):
        removed = True
        for component in self.components.values():
            try:
                component.cleanup()
            except OSError as exc:
                removed = False
                LOG.warning('cleanup of %s failed: %s', component.name, exc)
        self.temp_removed = removed

    # -- sampling -------------------------------------------------------
    def _set_levels(self, elapsed_s):
        for name, component in self.components.items():
            component.set_intensity(self.profile.intensity(name, elapsed_s))

    def _snapshot(self):
        return {'cpu': stats.read_cpu_times(),
                'components': {name: c.snapshot()
                               for name, c in self.components.items()},
                'at': time.monotonic()}

    def _sample_loop(self):
        start = time.monotonic()
        end = start + self.profile.duration_s
        interval = self.profile.interval_s
        previous = self._snapshot()
        warm = None
        next_sample = start + interval
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= end:
                self.request_stop('completed')
                break
            if now >= next_sample:
                current = self._snapshot()
                if previous['at'] - start >= self.profile.warmup_s - 0.05:
                    warm = warm or previous
                    self._emit_interval(current, previous)
                previous = current
                next_sample += interval
                if next_sample < now:
                    next_sample = now + interval
            wake = min(next_sample, end)
            if self.components:
                self._set_levels(now - start)
                wake = min(wake, now + CONTROL_S)
            self._stop.wait(max(0.0, wake - time.monotonic()))
        final = self._snapshot()
        # The interval that ends the run (the one due at its end, or the
        # rest after the last sample) is emitted too: a run whose loop is
        # reached late (a busy machine, many workers to snapshot) or whose
        # duration is one interval still emits its samples.  A short tail
        # after a sample (a stop just after it) is left out, as a rate
        # over a few milliseconds says nothing, unless it is all the run
        # measured.
        if (previous['at'] - start >= self.profile.warmup_s - 0.05
                and final['at'] > previous['at']
                and (final['at'] - previous['at'] >= interval / 2.0
                     or not self._emitted)):
            warm = warm or previous
            self._emit_interval(final, previous)
        return (warm or previous), final

    def _interval_metrics(self, current, previous):
        elapsed = current['at'] - previous['at']
        busy, steal = stats.cpu_percentages(current['cpu'], previous['cpu'])
        metrics = {}
        if busy is not None:
            metrics['cpu_util_pct'] = busy
            metrics['cpu_steal_pct'] = steal
        for name, component in self.components.items():
            delta = component.delta(current['components'][name],
                                    previous['components'][name])
            metrics.update(component.metrics(delta, elapsed))
        return metrics

    def _emit_interval(self, current, previous):
        timestamp = time.time()
        for metric, value in sorted(
                self._interval_metrics(current, previous).items()):
            point = {'measurement': MEASUREMENT, 'time': timestamp,
                     'tags': dict(self.tags, metric=metric),
                     'fields': {'value': float(value)}}
            for sink in self.sinks:
                sink.emit(point)
            self._emitted += 1
            total, count = self._metric_sums.get(metric, (0.0, 0))
            self._metric_sums[metric] = (total + value, count + 1)
        for sink in self.sinks:
            sink.flush()

    def _summary(self, totals, wall_s, dead_workers):
        warm, final = totals
        overall = self._interval_metrics(final, warm)
        components = {}
        for name, component in self.components.items():
            delta = component.delta(final['components'][name],
                                    warm['components'][name])
            components[name] = {
                'workers': component.worker_count(),
                'workers_requested': self.profile.components[name].get(
                    'workers', component.worker_count()),
                'ops': int(delta['counters']['ops']),
                'errors': int(delta['counters']['errors']),
                'cpu_s': round(delta['cpu_s'], 3),
            }
            if name == 'disk':
                components[name]['direct'] = component.direct
                components[name]['engine'] = component.engine
        return {
            'profile': self.profile.name,
            'status': self.stop_reason or 'completed',
            'wall_s': round(wall_s, 3),
            'measured_s': round(final['at'] - warm['at'], 3),
            'samples_emitted': self._emitted,
            'interval_means': {m: total / count for m, (total, count)
                               in sorted(self._metric_sums.items())},
            'overall': overall,
            'components': components,
            'dead_workers': dead_workers,
            'temp_files_removed': getattr(self, 'temp_removed', True),
            'machine': self.plan.to_dict(),
            'tags': self.tags,
        }
