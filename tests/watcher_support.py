"""Building watchers over a small twin for the watcher's tests.

The twin is real (``clouds/sim``), so is the history store (SQLite in
memory) and the assembly (``service.build_watcher``); a test only chooses
the cluster, the VMs' demand and the options.
"""

import textwrap

from oslo_config import cfg

from loadgen import profiles as loadgen_profiles
from shadow_service import conf as shadow_conf
from shadow_service import service
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import sqlite as sqlite_store

LADDER = ['small:2:2048:20', 'medium:4:4096:20', 'large:8:8192:20',
          'xlarge:16:16384:20']
STEP_S = 300.0


def cluster_file(tmp_path, cores=64, hosts=3):
    """A cluster of ``hosts`` identical hosts without tenants."""
    path = tmp_path / 'cluster.yaml'
    lines = ''.join('  - {name: host-%d, class: plain, tenants: []}\n' % i
                    for i in range(1, hosts + 1))
    path.write_text(textwrap.dedent("""\
        classes:
          plain:
            cores: %d
            clock_ghz: 2.5
            memory_mb: 524288
            disk_gb: 4000
            mem_bandwidth_gbps: 200
            mem_idle_latency_ns: 90
            disk_iops: 100000
            disk_service_ms: 0.1
            nic_mbps: 3125
            net_base_rtt_ms: 0.05
        hosts:
        """ % cores) + lines)
    return str(path)


def make_conf(tmp_path, cores=64, hosts=3, **groups):
    """A ConfigOpts with every option registered, the twin on a small
    cluster, 300 s samples and the ladder above; ``groups`` are
    ``{group: {option: value}}`` overrides."""
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-test')
    overrides = {
        'sim': {'cluster_file': cluster_file(tmp_path, cores, hosts),
                'noise_pct': 0.0, 'sample_interval': STEP_S,
                'host_metric_interval': STEP_S, 'backfill_hours': 0,
                'resize_duration': 240.0, 'resize_downtime': 60.0,
                'boot_duration': 45.0},
        'watcher': {'flavor_ladder': LADDER, 'interval': STEP_S,
                    'resize_duration': 240.0, 'step': STEP_S,
                    'ranker': 'none', 'min_errors': 4},
        'shadow': {'cleanup_on_start': False},
    }
    for group, values in groups.items():
        overrides.setdefault(group, {}).update(values)
    for group, values in overrides.items():
        for name, value in values.items():
            conf.set_override(name, value, group=group)
    return conf


def demand_profile(values, name='batch-cpu', step_s=STEP_S):
    """A loadgen profile whose busy vCPUs follow ``values`` (one per
    ``step_s``, the last one held... the trace wraps around)."""
    return loadgen_profiles.load_profile({
        'name': name, 'duration_s': 30 * 86400.0,
        'components': {'cpu': {'workers': 1, 'duty_cycle': 1.0, 'pattern': {
            'type': 'trace', 'values': [float(v) for v in values],
            'step_s': step_s, 'normalise': 'none'}}}})


def twin(conf):
    """``(driver, history)``: a twin writing to an in-memory SQLite
    store."""
    history = sqlite_store.SQLiteStore(path=':memory:')
    return sim_driver.SimDriver(conf, history), history


def place(driver, instance_id, values, flavor='small', host='host-1',
          metadata=None, group=None, disk_gb=20, volume_backed=False,
          volume_made_from=None):
    vcpus = {'small': 2, 'medium': 4, 'large': 8, 'xlarge': 16}[flavor]
    watched = {'nova_shadow_watch': 'true'}
    watched.update(metadata or {})
    return driver.place_vm(
        {'flavor': {'name': flavor, 'vcpus': vcpus, 'ram_mb': vcpus * 1024,
                    'disk_gb': disk_gb}},
        host, instance_id=instance_id, profile=demand_profile(values),
        metadata=watched, server_group=group, volume_backed=volume_backed,
        volume_made_from=volume_made_from)


def build(conf, driver, history, **kwargs):
    """The watcher as the daemon assembles it."""
    return service.build_watcher(conf, history=history, driver=driver,
                                 **kwargs)


def run(assembled, driver, runs, step_s=STEP_S):
    """``runs`` watcher runs, ``step_s`` of twin time apart; returns every
    step."""
    steps = []
    for _ in range(runs):
        steps.extend(assembled.watcher.run_once(driver.now()))
        driver.fast_forward(step_s)
    return steps
