"""Options of the ``[openstack]`` group: the ``openstack`` cloud driver.

The driver boots shadows on a real cloud through openstacksdk.  Its
credentials come from ``clouds.yaml`` (``cloud``) or from keystoneauth
options in this group (``auth_type``, ``auth_url``, ``username``... as
every OpenStack service reads them); everything else here says where and
how shadows run.  See ``doc/source/openstack.rst``.
"""

import copy

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from shadow_service.conf import utils as conf_utils

openstack_group = cfg.OptGroup(
    name='openstack',
    title='OpenStack cloud driver options',
    help="""
Options of the ``openstack`` cloud driver (``[shadow] cloud_driver =
openstack``): the cloud shadows run on, the shadow project's credentials,
and how shadows are booted, watched and deleted.

Credentials: either ``cloud`` names an entry of ``clouds.yaml``, or the
keystoneauth options of this group (``auth_type = password``,
``auth_url``, ``username``, ``password``, ``project_name``,
``user_domain_name``, ``project_domain_name``...) describe them, as in
the ``[keystone_authtoken]``-style sections of other services.  The
credentials must be scoped to the dedicated shadow project and carry the
``admin`` role (pinning a server to a host, reading hypervisors and
acting on tenants' VMs are admin operations).  ``shadow-watcher`` boots a
VM's siblings with the same user's credentials scoped to the VM's
project (``sibling_project``), where the user needs a role.
""")

driver_opts = [
    cfg.StrOpt(
        'cloud',
        help="""
Name of the cloud in ``clouds.yaml`` whose credentials the driver uses.

Possible values:

* Unset: use the keystoneauth options of this group (``auth_type`` and the
  plugin's own options).
* A cloud name; ``clouds.yaml`` is looked for where openstacksdk looks
  (``OS_CLIENT_CONFIG_FILE``, ``./clouds.yaml``,
  ``~/.config/openstack/clouds.yaml``, ``/etc/openstack/clouds.yaml``).
"""),
    cfg.StrOpt(
        'region_name',
        help="""
Region of the cloud's endpoints (unset: the only region, or the one
``clouds.yaml`` names).
"""),
    cfg.StrOpt(
        'interface',
        choices=[('public', 'the public endpoints'),
                 ('internal', 'the endpoints on the internal network'),
                 ('admin', 'the admin endpoints')],
        help="""
Which endpoint of each service the driver calls (unset: ``public``, or
what ``clouds.yaml`` says).
"""),
    cfg.FloatOpt(
        'api_timeout',
        default=10.0,
        min=0.5,
        max=300.0,
        help="""
Seconds one API call may take before it fails (and the host it concerned
stays unmeasured).  The keystoneauth ``timeout`` option, when set, takes
precedence for credentials given in this group.
"""),
    cfg.StrOpt(
        'image',
        help="""
Image shadows boot from (name or id).

Possible values:

* Unset: the image of the request (``image_id``, which the weigher sends).
  A request without one gets no shadows.
* An image with ``python3`` (and cloud-init) in it; with
  ``loadgen_preinstalled`` it must also hold loadgen.

Related options:

* ``prefer_requested_image``, ``loadgen_preinstalled``
"""),
    cfg.BoolOpt(
        'prefer_requested_image',
        default=False,
        help="""
Boot shadows from the request's image when it names one, and from
``image`` only otherwise.  Off: ``image``, when set, is always used (a
tenant's image may lack python3 or cloud-init).
"""),
    cfg.BoolOpt(
        'loadgen_preinstalled',
        default=False,
        help="""
The shadow image already holds loadgen at ``/opt/shadow-loadgen/
loadgen.pyz``: the user-data then carries only the profile, the token and
the command (a few hundred bytes) instead of the zipapp.
"""),
    cfg.StrOpt(
        'network',
        help="""
Network shadows are attached to (name or id).

Possible values:

* Unset: no network (``networks=none``).  Samples then come back only
  through the console log.
* ``auto``: Nova's auto-allocated network.
* A network name or id.  The guests must be able to reach the collector
  (``[collector] advertised_url``) from it.

Related options:

* ``[collector]`` options; ``console_samples``; ``config_drive``.
"""),
    cfg.StrOpt(
        'config_drive',
        default='auto',
        choices=[
            ('auto', 'a config drive when shadows have no network (no '
                     'metadata service can give them their user-data)'),
            ('true', 'always a config drive'),
            ('false', 'never: the user-data comes from the metadata '
                      'service')],
        help="""
Whether shadows boot with a config drive, where cloud-init finds the
user-data that starts loadgen.  A shadow without a network cannot reach
the metadata service, so without a config drive it never runs loadgen
and sends nothing.

Related options:

* ``network``.
"""),
    cfg.StrOpt(
        'flavor_prefix',
        default='nova-shadow',
        help="""
Prefix of the names of the private flavors the driver creates for shadow
sizes, e.g. ``nova-shadow-1c-2048m-10g-3f2a9c1b`` (vCPUs, RAM, disk and a
hash of the extra specs).  A flavor is created once per size and reused.
"""),
    cfg.StrOpt(
        'pin_method',
        default='auto',
        choices=[
            ('auto', 'host= when the compute API offers microversion '
                     '2.74, the availability zone otherwise'),
            ('host', 'the host= field of server create (microversion '
                     '>= 2.74): the scheduler still checks the host'),
            ('zone', 'availability_zone=<zone>:<host> (forced host: '
                     'filters are skipped)'),
        ],
        help="""
How a shadow is pinned to the candidate host it measures.  Both need the
admin role.
"""),
    cfg.IntOpt(
        'boot_concurrency',
        default=8,
        min=1,
        max=64,
        help="""
Server create calls one evaluation sends at the same time.
"""),
    cfg.IntOpt(
        'max_shadows_per_host',
        default=2,
        min=1,
        max=64,
        help="""
Most shadows on one host at the same time, over all evaluations.  A host
that already has this many stays unmeasured in a further evaluation
(shadows of concurrent evaluations on one host disturb each other's
figures).
"""),
    cfg.FloatOpt(
        'poll_interval',
        default=0.3,
        min=0.05,
        max=5.0,
        help="""
Seconds between two status polls while waiting for shadows to become
active or to be gone (one list call per poll for all shadows).
"""),
    cfg.FloatOpt(
        'delete_timeout',
        default=60.0,
        min=1.0,
        max=3600.0,
        help="""
Seconds to wait for deleted shadows to be gone (their Placement
allocations released).  Shadows still there are left to the garbage
collector, which lets a deletion under way finish for twice this time
(counted from when it was asked) before it asks Nova again.
"""),
    cfg.FloatOpt(
        'cleanup_reserve',
        default=3.0,
        min=0.0,
        max=600.0,
        help="""
Seconds of every evaluation's budget kept back for deleting its shadows,
so the ranking still arrives within the budget.  Set it to what deleting
a server takes on the cloud.

Related options:

* ``delete_timeout``
"""),
    cfg.FloatOpt(
        'sample_lag',
        default=3.0,
        min=0.0,
        max=120.0,
        help="""
Seconds the driver's clock runs behind the wall clock, so that samples the
guests send in batches (loadgen sends one per second) have arrived before
an evaluation reads up to that time.
"""),
    cfg.StrOpt(
        'service_id',
        sample_default='<host name>',
        help="""
Identity of this shadow-service, written into every shadow's metadata.
Shadows carrying this identity that the running service did not boot are
left-overs of an earlier run and are deleted by the garbage collector.

Possible values:

* Unset: the host name.
* Any string; give each shadow-service sharing a shadow project its own.
"""),
    cfg.FloatOpt(
        'expiry_margin',
        default=300.0,
        min=0.0,
        help="""
Seconds beyond ``[shadow] max_budget`` a shadow may live.  After that any
shadow-service's garbage collector deletes it, whichever service booted it.
"""),
    cfg.FloatOpt(
        'gc_interval',
        default=60.0,
        min=0.0,
        max=86400.0,
        help="""
Seconds between two garbage collection passes (left-over and expired
shadows, found by their tag).  0 disables the periodic pass; the pass at
start-up is ``[shadow] cleanup_on_start``.
"""),
    cfg.BoolOpt(
        'console_samples',
        default=True,
        help="""
Have loadgen also write its samples to the guest console, and read them
from the console log of shadows that sent nothing to the collector.  This
works without any network between guests and the service.

Related options:

* ``console_poll_interval``
"""),
    cfg.FloatOpt(
        'console_poll_interval',
        default=5.0,
        min=0.5,
        max=600.0,
        help="""
Seconds between two reads of the console log of a shadow that sent no
samples to the collector.
"""),
    cfg.StrOpt(
        'sibling_project',
        default='owner',
        choices=[
            ('owner', 'the project of the VM the sibling is booted for: '
                      'the same user\'s credentials scoped to it (the '
                      'user needs a role there)'),
            ('service', 'the credentials\' own project (the shadow '
                        'project), as an admin')],
        help="""
Project ``shadow-watcher`` boots a VM's siblings in (horizontal scaling).

With ``owner`` the sibling is the tenant's: it shows in the tenant's
server list, counts against the tenant's quota, and Nova checks its
image, networks and server group as for the tenant's own boots.  The
driver's user must hold a role (``member``) in every project whose VMs
the watcher scales out; without one the scale-out is suppressed and its
record names the project and the ``openstack role add`` that grants it.

With ``service`` the sibling lands in the credentials' own project: the
tenant can neither see nor delete it, it counts against that project's
quota, and booting it on the tenant's networks relies on the ``admin``
role.

Related options:

* ``[watcher] projects``, ``[watcher] watch_metadata_key`` (which
  projects' VMs are scaled).
"""),
    cfg.IntOpt(
        'console_lines',
        default=2000,
        min=10,
        max=100000,
        help="""
Last lines of the console log read per poll.
"""),
]


def auth_opts():
    """keystoneauth's session and auth selection options (the auth
    plugin's own options are registered when it is loaded)."""
    return (ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options())


def all_opts():
    return driver_opts + auth_opts()


def sample_opts():
    """:func:`all_opts` and the ``password`` auth plugin's options, for
    the sample config (keystoneauth registers the options of the chosen
    ``auth_type`` itself when the driver loads the credentials).  Their
    help says which plugin they belong to."""
    known = {opt.dest for opt in all_opts()}
    listed = []
    for opt in ks_loading.get_auth_plugin_conf_options('password'):
        if opt.dest in known:
            continue
        opt = copy.copy(opt)
        opt.help = ('With auth_type = password: %s (the shadow project\'s '
                    'credentials).' % (opt.help or opt.name).rstrip('.'))
        listed.append(opt)
    return all_opts() + listed


def register_opts(conf):
    conf_utils.register_group_opts(conf, openstack_group, all_opts())


def list_opts():
    return {openstack_group: sample_opts()}
