"""Options of the ``[watcher]`` group: the ``shadow-watcher`` daemon.

Which VMs it watches, how often, which policy decides, what it may do
(the flavor ladder, group sizes, quotas), the safety limits between a
decision and an act, and leader election among several watchers.  The
policies' own options are in their groups (``[watcher_policy_<name>]``).
See ``doc/source/watcher.rst``.
"""

from oslo_config import cfg

from shadow_service.conf import utils as conf_utils

watcher_group = cfg.OptGroup(
    name='watcher',
    title='Proactive scaling watcher options',
    help="""
Options of ``shadow-watcher``: the daemon that forecasts each watched VM
and resizes, live-migrates or scales it out before it runs short.
""")

watcher_opts = [
    cfg.BoolOpt('dry_run', default=True, help="""
Record what the watcher would do without doing it.

In dry-run (the default) every decision is written to the history as a
``scaling_decision`` record with outcome ``dry_run`` and no call that
changes the cloud is made.  Turn it off only once the records look right.
"""),
    cfg.FloatOpt('interval', default=300.0, min=1.0, max=86400.0, help="""
Seconds between two runs of the loop (each run looks at every watched VM
once).

Related options:

* ``resize_duration``: together they make the lead time a resize needs.
"""),
    cfg.StrOpt('policy', default='forecast', help="""
The scaling policy plugin (``nova_shadow.policies``).

Possible values:

* ``reactive``: a threshold on the current utilisation.
* ``forecast``: act when the forecast's upper bound would exceed the
  flavor within the action's lead time.
* ``rl``: a value table trained in the twin (``[watcher_policy_rl]
  model_file``).
* ``oracle``: benchmarks over the twin only; never acts on a real cloud.
"""),
    cfg.ListOpt('instances', default=[], help="""
Instance UUIDs to watch, whatever their metadata.

Related options:

* ``watch_metadata_key``, ``projects``: the other ways to opt a VM in.
"""),
    cfg.ListOpt('projects', default=[], help="""
Project IDs all of whose VMs are watched.
"""),
    cfg.StrOpt('watch_metadata_key', default='nova_shadow_watch', help="""
Server metadata key that opts a VM in: a VM whose metadata has this key
set to ``true`` (``openstack server set --property
nova_shadow_watch=true``; or ``yes``, ``on``, ``1``, in any case, as
oslo.config reads a boolean) is watched.  Any value but those and
``false``, ``no``, ``off``, ``0`` is logged once, naming the key.  The
same VM's ``nova_shadow_profile`` metadata names its workload profile
(for its QoS targets) and ``nova_shadow_scaling`` (``vertical`` or
``horizontal``) how it scales.
"""),
    cfg.StrOpt('default_profile', default='batch-cpu', help="""
Workload profile of a watched VM whose metadata names none (its QoS
targets come from it, ``shadow_service/workloads/qos.py``).
"""),
    cfg.ListOpt('flavor_ladder', default=[], help="""
The flavors a VM may be resized between, smallest first, each
``name:vcpus:ram_mb[:disk_gb]``; the flavors must exist in Nova.

Possible values:

* Empty: no resizes (live migration and scale-out only).
* For example ``w.small:1:2048:40,w.medium:2:4096:40,w.large:4:8192:40``.

A VM whose flavor is not on the ladder (neither a rung's name nor exactly
a rung's vCPUs and RAM) is never resized.  The vCPUs must
grow along the ladder and the RAM must not fall.  Nova refuses to shrink
the root disk of a VM booted from an image, so the watcher shrinks such a
VM only to rungs whose disk holds its own (a VM booted from a volume to
any rung); give every rung the same root disk to let every VM shrink (the
watcher warns at start when the disks differ).
"""),
    cfg.IntOpt('quota_vcpus', default=0, min=0, help="""
Most vCPUs the watched VMs of one project may hold together after a
growth (resize up or a new sibling), counting a resize under way at the
larger of its two flavors and siblings still booting; 0: Nova's own
quota is the only limit.
"""),
    cfg.FloatOpt('target_utilisation', default=1.0, min=0.1, max=1.0,
                 help="""
Share of a flavor's vCPUs a VM's forecast demand may use before the
watcher grows it (1.0: all of it).
"""),
    cfg.IntOpt('min_count', default=1, min=1, help="""
Fewest members of a horizontally scaled group (its original VM included).
"""),
    cfg.IntOpt('max_count', default=4, min=1, help="""
Most members of a horizontally scaled group.
"""),
    cfg.URIOpt('scale_webhook', help="""
When set, a horizontal scale action POSTs ``{"instance", "action",
"target_count", "group_size", "reason"}`` as JSON to this URL instead of
booting or deleting a sibling (for groups an orchestrator such as Heat
owns).  A 2xx answer whose JSON object has ``"group_size": <members>``
tells the watcher the group's size; without it, the watcher takes the
group to have the size it asked for.
"""),
    cfg.FloatOpt('resize_duration', default=300.0, min=0.0, help="""
Seconds a resize takes on this cloud (scheduling, disk copy, reboot).  The
lead time of a resize is ``interval + resize_duration``: the forecast must
look that far ahead.
"""),
    cfg.FloatOpt('migration_duration', default=120.0, min=0.0, help="""
Seconds a live migration takes on this cloud (lead time: ``interval +
migration_duration``).
"""),
    cfg.FloatOpt('boot_duration', default=120.0, min=0.0, help="""
Seconds until a new sibling serves load (lead time: ``interval +
boot_duration``).
"""),
    cfg.FloatOpt('hold_window', default=10800.0, min=0.0, help="""
Seconds back over which the largest demand seen (``recent_peak``) is
offered to the policy: ``forecast`` does not shrink a VM below it. A VM
with less history than this is never shrunk (growth is never delayed),
nor is one before any forecast error of it or its flavor is known (a
watcher that just started).

Related options:

* ``history_window``: at most that long (a longer hold window, which no
  VM's history read could ever show, stops the watcher at start).
* ``group_hold_window``: the shorter hold of horizontally scaled groups.
"""),
    cfg.FloatOpt('group_hold_window', default=2400.0, min=0.0, help="""
Seconds back over which the largest demand and the largest growth bound
are held for a horizontally scaled group (at most ``hold_window``): a
group grows by a sibling's boot, not a reboot, and the ``forecast``
policy grows a group back within the cooldown of a scale-in only for
demand it shows (``[watcher_policy_forecast] regrow_on_shown_demand``),
so it need not be held as long as a resized VM.  2400 s is the
cooldown and a scale-out's lead, the time a scale-in must hold anyway.

Related options:

* ``hold_window``: the hold of resized VMs, and the most this may be.
"""),
    cfg.FloatOpt('ceiling_window', default=86400.0, min=0.0, help="""
Seconds of a VM's history read when the watcher first sees it to learn
its demand ceiling: the largest demand (busy vCPUs) it has shown, kept up
to date on every run afterwards (the largest median of ``ceiling_steps``
steps, or a single burst above it by more than ``ceiling_noise``).  While
the VM is not saturated, ``forecast`` and ``rl`` never size it above that
ceiling times ``1 + ceiling_margin`` (or above the extrapolation of a
rising demand over the lead time, when that is higher): a forecast bound
or an error margin above anything the VM ever used buys vCPUs it will not
use.  A saturated VM hides its demand, so the ceiling does not limit its
growth (see ``ceiling_saturation_steps``), and once a VM was saturated
the ceiling is at least what the policy then sized it for (its vCPUs
times ``[watcher_policy_forecast] saturation_factor``): a saturated
sample shows the capacity, not the demand.  The ceiling never lowers the
shrink bound below itself plus ``down_margin``, nor below the largest
demand and growth bound of the ``hold_window``.  0 turns the ceiling off.

Related options:

* ``hold_window``: the ceiling applies once this much history is known.
"""),
    cfg.IntOpt('ceiling_steps', default=3, min=1, max=288, help="""
Steps whose median makes one value of the demand ceiling's *sustained*
peak (the largest such median), so that the highest of many noisy
samples of a steady demand does not set the ceiling.

Related options:

* ``ceiling_noise``: when a single sample is above the sustained peak by
  more than this share, it is a burst and it sets the ceiling.
"""),
    cfg.FloatOpt('ceiling_noise', default=0.25, min=0.0, max=4.0,
                 help="""
Share by which the largest single sample may exceed the sustained peak
(see ``ceiling_steps``) and still be taken for measurement noise; a
sample further above is a burst, and the ceiling is that sample.
"""),
    cfg.FloatOpt('ceiling_margin', default=0.05, min=0.0, max=4.0, help="""
Share above the largest demand a VM has shown that it may be sized for
while it is not saturated (see ``ceiling_window``).
"""),
    cfg.IntOpt('ceiling_saturation_steps', default=2, min=1, max=12,
               help="""
Consecutive samples at or above ``saturation_pct`` a VM that holds at
least the most it has shown (its demand ceiling without
``ceiling_margin``), and whose previous sample was already within
``ceiling_noise`` of ``saturation_pct``, needs before it counts as
saturated (one noisy
sample of a VM running near its ceiling would otherwise grow it by the
saturation factor, and a regrowth soon after a shrink is a flap).  A VM
below its ceiling counts as saturated at its first such sample.
"""),
    cfg.IntOpt('cap_steps', default=6, min=0, max=288, help="""
Samples a resized VM must show, on a flavor larger than one it sat at
saturated (the median of ``ceiling_steps`` samples in a row there at
``saturation_pct`` or more), at that flavor's vCPUs less
``ceiling_noise`` or more, before the watcher takes that flavor's vCPUs
for the most its demand can be (its *demand cap*): the median of those
samples no more than ``ceiling_margin`` above it, and its sustained peak
(see ``ceiling_steps``) no more than ``ceiling_noise`` above it.  Such a
VM wants what it had and no more (a workload of so many threads): grown
past the flavor it filled, its demand stays there.  ``forecast`` and
``rl`` then size it for at most the cap, down margin and error margins
included, and a VM on a flavor of at least the cap that reads saturated
is at its cap, not hiding demand.  The cap is kept while the VM sits
on it, until it reads saturated a ``ceiling_window`` after the samples
last showed the cap (then it is sized as before: grown, it shows its
demand again); a sustained peak further above it on a larger flavor
drops it at once.  0 turns it off.  Horizontally scaled groups have no
cap.

Related options:

* ``history_window``: the samples are those of the history each run
  reads.
"""),
    cfg.FloatOpt('history_window', default=21600.0, min=3600.0, help="""
Seconds of a VM's history each run reads and forecasts from (the same
window one day earlier is read as well, for the daily peak).

Related options:

* ``hold_window``: at most this long.
"""),
    cfg.IntOpt('recurring_days', default=0, min=0, max=28, help="""
Days of a VM's history looked back for a demand that recurs at the same
time of day (0: off).  Each run reads, on each of these earlier days,
the VM's largest demand from ``recurring_window`` before this time of day
to the lead time of a growth (and, for the shrink bound, the time a
shrink must hold) plus ``recurring_window`` after; a sample at or above
``saturation_pct`` counts as its vCPUs times ``[watcher_policy_forecast]
saturation_factor`` when that day's window also shows the VM quiet
(under ``near_saturation_pct`` less ``ceiling_noise``: a burst from idle
hid its size), as what it shows otherwise (a VM running near its
capacity hides nothing).  The level reached
on at least ``recurring_min_days`` of those days is the recurring peak:
``forecast`` grows the VM to hold it ahead of the hour it usually comes
(by the lead time, even above the demand ceiling) and does not shrink it
below it before that hour has passed; it never shrinks the VM for it (the
usual shrink rules apply once the hour has passed).  A VM with fewer days
of history than ``recurring_min_days`` has no recurring peak.  ``rl``'s
bounds meet it as ``forecast``'s do (train its model with the look-back
on).  Off by default: over one twelve-hour replay of real VMs, with a
week of history, it cut ``forecast``'s violation minutes resizing from
121 to 91 and ``rl``'s from 135 to 102 (scaling out from 79 to 10 for
both), over another it cut resizing only from 519 to 507, for more
resizes and vCPU-hours (see the watcher documentation).

Related options:

* ``recurring_min_days``, ``recurring_window``.
"""),
    cfg.IntOpt('recurring_min_days', default=4, min=1, max=28, help="""
On how many of the last ``recurring_days`` days a demand must have come
at this time of day to count as recurring (see ``recurring_days``): 1
takes the largest of them, ``recurring_days`` the smallest.  More than
``recurring_days`` (when the look-back is on) stops the watcher at
start: no demand could recur on more days than are looked back.
"""),
    cfg.FloatOpt('recurring_window', default=3600.0, min=0.0,
                 max=43200.0, help="""
Seconds either side of the same time of day that count as "the same
time" when looking back for a recurring demand (see ``recurring_days``):
a daily burst seldom starts at the same minute.  Wider finds more days
that agree, and holds a VM grown for them longer.
"""),
    cfg.FloatOpt('step', default=300.0, min=1.0, help="""
Seconds per step of the series the forecasts are made on (samples are
averaged into steps).
"""),
    cfg.StrOpt('forecaster', default='naive', help="""
Forecaster plugin (``nova_shadow.forecasters``) of the demand forecast.
``naive`` (last value with empirical h-step-change intervals) costs ~4 ms
a VM; ``ses`` ~150 ms; the watcher's error margins correct either.
"""),
    cfg.IntOpt('trend_steps', default=6, min=0, max=288, help="""
Recent steps whose least-squares slope, when rising, is extrapolated over
the lead time and added to the forecast's upper bound (0: off).  When the
newest sample is a burst past the VM's demand ceiling (by more than
``ceiling_noise``), its own rise from the sample before is extrapolated
instead, when larger: the slope of the quiet steps before a burst says
little of how far it goes.
"""),
    cfg.FloatOpt('error_quantile', default=0.99, min=0.5, max=0.999,
                 help="""
Quantile of a VM's past forecast errors added to its forecast as a margin
(per instance once it has ``min_errors``, else per flavor).  Higher: fewer
shortfalls, more vCPUs held.
"""),
    cfg.IntOpt('min_errors', default=24, min=1, help="""
Errors an instance needs before its own margin replaces its flavor's.
"""),
    cfg.IntOpt('error_window', default=864, min=10, help="""
Recent errors kept per instance and per flavor (864: three days of
5-minute runs).
"""),
    cfg.FloatOpt('saturation_pct', default=95.0, min=50.0, max=100.0,
                 help="""
CPU utilisation at or above which a VM counts as saturated (its real
demand is hidden above its flavor).
"""),
    cfg.FloatOpt('near_saturation_pct', default=85.0, min=0.0, max=100.0,
                 help="""
CPU utilisation within measurement noise of ``saturation_pct``: a sample
at or above it (and below ``saturation_pct``) counts as saturated when it
is a burst, a jump from below this level (by more than
``ceiling_noise``) either past the most the VM has shown (by more than
``ceiling_noise``) or onto a flavor it has filled before (its demand
ceiling at ``saturation_pct`` of the flavor or more: the demand it showed
there was its capacity, not what it wanted).  Samples are noisy, so a
burst that meets a VM's capacity reads some percent low as often as high;
taken at its word it is grown only as far as it reads, one resize (one
reboot) at a time while it goes on.  A VM that runs near its capacity
without such a jump is not affected.  ``saturation_pct`` or more turns it
off.
"""),
    cfg.FloatOpt('immunity_window', default=600.0, min=0.0, help="""
Seconds after an action on a VM during which no further action is taken
on it.
"""),
    cfg.FloatOpt('cooldown', default=1800.0, min=0.0, help="""
Seconds after a scaling action on a VM during which it is not shrunk
(growths are never delayed by it).
"""),
    cfg.IntOpt('hysteresis_runs', default=2, min=1, help="""
Consecutive runs that must propose a shrink before it is done.
"""),
    cfg.IntOpt('max_actions_per_hour', default=60, min=1, help="""
Most actions, over all watched VMs, in any hour (the global rate limit).
"""),
    cfg.IntOpt('max_concurrent_actions', default=10, min=1, help="""
Most actions under way at once.
"""),
    cfg.FloatOpt('cycle_window', default=21600.0, min=0.0, help="""
Seconds the cycle breaker looks back: no migration back to a host the VM
left within it, no shrink that would be the ``max_reversals``-th change
of direction within it.
"""),
    cfg.IntOpt('max_reversals', default=2, min=1, help="""
The cycle breaker's limit on a VM's changes of direction (a growth after
a shrink, or a shrink after a growth) within ``cycle_window``: a shrink
that would be the ``max_reversals``-th of them is refused (a growth never
is).  With 2, a VM shrunk and then grown again is not shrunk again within
the window; with 1, a VM grown within the window is not shrunk.
"""),
    cfg.FloatOpt('steal_threshold_pct', default=10.0, min=0.0, max=100.0,
                 help="""
CPU steal (percent) above which the steal detector counts a sample.

Related options:

* ``steal_window``: over how long.
"""),
    cfg.FloatOpt('steal_window', default=900.0, min=0.0, help="""
Seconds of samples the steal detector looks at; when 80 % of them are
above ``steal_threshold_pct`` it proposes a live migration.  0 turns the
detector off.
"""),
    cfg.StrOpt('ranker', default='history', choices=['history', 'rpc',
                                                     'none'], help="""
Who ranks the hosts a migrating VM may go to.

Possible values:

* ``history``: the shadow service assembled in-process, answering as it
  answers a live migration: from the history prior alone, without
  shadows (the watcher boots none).
* ``rpc``: ``rank_hosts`` of a running ``shadow-service`` over RPC
  (``[shadow] topic`` on ``transport_url``, which is checked at start:
  one no RPC driver can use stops the watcher with a line naming it),
  which boots shadows on the candidates when its prior is not confident
  enough, within ``ranking_budget``.
* ``none``: no ranking; migrations are left to Nova's scheduler.
"""),
    cfg.FloatOpt('ranking_budget', default=10.0, min=0.1, max=600.0,
                 help="""
Seconds the shadow service may take to rank the hosts a migrating VM may
go to (with ``ranker = rpc`` it may boot shadows on them meanwhile).

Related options:

* ``ranker``.
"""),
    cfg.DictOpt('host_costs', default={}, help="""
Cost per hour of each host (``host:cost``), for the migration target's
cost limit: a finite number of at least 0 (anything else stops the
watcher at start).
"""),
    cfg.FloatOpt('max_host_cost', help="""
Most a migration target may cost per hour (``host_costs``); unset: no
limit.
"""),
    cfg.StrOpt('coordination_url', help="""
tooz backend URL for leader election among several watchers, e.g.
``redis://127.0.0.1:6379``.  Unset: this watcher acts alone.
"""),
    cfg.StrOpt('coordination_group', default='nova-shadow-watcher',
               help="""
Name of the leader lock the watchers share (give each deployment its own).
"""),
    cfg.FloatOpt('leader_timeout', default=30.0, min=1.0, max=600.0,
                 help="""
Seconds after which a leader that stopped heart-beating loses the lock and
another watcher takes over.

Related options:

* ``coordination_timeout``: at most a quarter of this.
"""),
    cfg.FloatOpt('coordination_timeout', min=0.1, max=60.0, help="""
Seconds one call to a Redis coordination backend may take: its socket
and connect timeout, and redis-py does not retry, so a backend that
refuses connections or does not answer means "not leading" within about
this long, and the watcher tries again at its next renewal.  A
``socket_timeout`` or ``socket_connect_timeout`` in ``coordination_url``
wins over it.  Unset: a quarter of ``leader_timeout``, at most 5 s.
Through Redis Sentinel (``?sentinel=<master>`` in the URL) it is shared
among the sentinels and the master, which one call may each ask.

Possible values:

* 0.1 to 60, at most a quarter of ``leader_timeout`` (a renewal of the
  lock makes up to four calls, and the lock must outlive them; anything
  longer stops the watcher at start).  Redis backends only: another
  tooz backend keeps its own time-outs.

Related options:

* ``leader_timeout``.
"""),
]


def register_opts(conf):
    conf_utils.register_group_opts(conf, watcher_group, watcher_opts)


def list_opts():
    return {watcher_group: watcher_opts}
