"""The CloudDriver interface: where shadows run and how VMs are acted on.

Drivers are stevedore plugins in the ``nova_shadow.clouds`` namespace,
chosen with ``[shadow] cloud_driver``: ``sim`` (the twin, the default) and
``openstack`` (a real cloud through openstacksdk).  Nothing outside
``shadow_service/clouds/`` sees a driver's own types: shadows, instances
and hosts cross the boundary as the records below, measurements as history
points, host facts under the names of :mod:`shadow_service.hostfacts`.

A driver receives the workload as a ``loadgen`` ``Profile`` (already
scaled to the shadow) and never imports the evaluation loop or the
analyzer.  It may import the shared vocabulary
(:mod:`shadow_service.workloads`, :mod:`shadow_service.measurements`,
:mod:`shadow_service.hostfacts`) and the history store interface.

Three groups of operations:

* **shadows** (the evaluator): :meth:`~CloudDriver.boot_shadows`,
  :meth:`~CloudDriver.wait_until_active`,
  :meth:`~CloudDriver.delete_shadows`, :meth:`~CloudDriver.list_shadows`
  and :meth:`~CloudDriver.garbage_shadows` with
  :meth:`~CloudDriver.collect_garbage` (the garbage collector);
  the clock the shadows' samples use (:meth:`~CloudDriver.now`,
  :meth:`~CloudDriver.wait`);
* **facts** (the evaluator, the watcher): :meth:`~CloudDriver.list_hosts`,
  :meth:`~CloudDriver.host_facts` (given the scheduler's own figures of
  the hosts, ``hosts_info``, when there are some);
* **instance actions** (the watcher): :meth:`~CloudDriver.list_instances`,
  :meth:`~CloudDriver.get_instance`,
  :meth:`~CloudDriver.resize` and :meth:`~CloudDriver.confirm_resize`,
  :meth:`~CloudDriver.live_migrate`, :meth:`~CloudDriver.boot_sibling`
  (and :meth:`~CloudDriver.why_no_sibling`, which says beforehand why
  it would refuse), :meth:`~CloudDriver.delete_instance` (and
  :meth:`~CloudDriver.finish_deletions`, which carries on deletions that
  have not completed, and :meth:`~CloudDriver.resume_deletions`, which
  takes back those asked before a restart).  A driver
  that cannot do one raises :class:`NotSupported`.

A driver may run something beside the evaluations (the ``openstack``
driver's sample collector): :meth:`~CloudDriver.start` and
:meth:`~CloudDriver.stop`, called by ``shadow_service.service``.

Errors: every operation that fails raises :class:`CloudError` (never a
client library's own exception), except :meth:`~CloudDriver.boot_shadows`,
which never raises for a host that fails (the host is left out of the
result and logged) and :meth:`~CloudDriver.delete_shadows`, which ignores
shadows already gone.
"""

import abc
import dataclasses
import logging

LOG = logging.getLogger(__name__)


class CloudError(Exception):
    """The cloud refused or failed an operation.

    ``host`` names the host it concerns when there is one; ``retryable``
    says whether the same call may succeed later (a timeout, a busy API)
    or not (quota exhausted, no such host, bad flavor);
    ``credentials_refused`` that the cloud refused who the driver says it
    is (HTTP 401): no call succeeds until the configuration changes;
    ``status`` the HTTP status the cloud answered with (None when it gave
    none); ``unreachable`` that it did not answer at all (no connection,
    timed out).
    """

    def __init__(self, message, host=None, retryable=False,
                 credentials_refused=False, status=None, unreachable=False):
        super().__init__(message)
        self.host = host
        self.retryable = retryable
        self.credentials_refused = credentials_refused
        self.status = status
        self.unreachable = unreachable


def no_sibling_image(volume_id, made_from=None):
    """Why no sibling boots of a VM whose root volume ``volume_id`` was
    not made from an image: ``made_from`` says what it was made from
    (``'snapshot <id>'``, ``'volume <id>'``; None: created empty).  A
    sibling boots from a new volume of the image the root volume was
    made from."""
    return ('its root volume %s was created %s, not from an image: a '
            'sibling has no image to boot from'
            % (volume_id, 'from %s' % made_from if made_from else 'empty'))


class NotSupported(CloudError):
    """This driver cannot do that operation."""


@dataclasses.dataclass
class Shadow:
    """A flavor-minimal copy of a requested VM running on one host."""

    shadow_id: str
    host: str
    evaluation_id: str
    created_at: float
    flavor: dict = dataclasses.field(default_factory=dict)
    status: str = 'ACTIVE'
    #: Driver clock time after which a garbage collector may delete it.
    expires_at: float = None

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Instance:
    """A (full) VM as the watcher sees it."""

    instance_id: str
    host: str
    flavor: dict
    status: str = 'ACTIVE'
    name: str = None
    image_id: str = None
    metadata: dict = dataclasses.field(default_factory=dict)
    #: Server group the VM belongs to (siblings join it too).
    server_group: str = None
    project_id: str = None
    #: Its root disk is a volume (booted from volume): True; an image's
    #: copy on the host (its root disk cannot shrink): False; None when
    #: the cloud did not say.  A sibling of a VM booted from a volume
    #: boots from a new volume of the image its root volume was made
    #: from (:meth:`CloudDriver.why_no_sibling` says when there is none).
    volume_backed: bool = None
    #: What a driver left out of a sibling it booted, in words for the
    #: decision record (the VM's key pair, which belongs to another
    #: user).
    notes: list = dataclasses.field(default_factory=list)
    #: A deletion of it is under way (Nova: task state ``deleting`` or
    #: ``soft-deleting``); the watcher following a scale-in asks
    #: :meth:`CloudDriver.delete_instance` again (which remembers it),
    #: and :meth:`CloudDriver.finish_deletions`, every run, deletes it
    #: again once that deletion has not completed in the driver's
    #: grace.
    deleting: bool = False

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class HostInfo:
    """A compute host and whether it can take work."""

    host: str
    #: The compute service is up.
    up: bool = True
    #: The operator disabled the compute service (or put it in
    #: maintenance): it takes no new VMs.
    disabled: bool = False
    availability_zone: str = None

    @property
    def available(self):
        return self.up and not self.disabled

    def to_dict(self):
        return dataclasses.asdict(self)


class CloudDriver(metaclass=abc.ABCMeta):
    """Boots and deletes shadows, reports hosts, acts on instances.

    A driver writes nothing to the analyzer directly: the loadgen inside
    each shadow (or the twin on its behalf) writes ``shadow_sample``
    points to the history store, where the evaluation reads them.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts
        With the driver's options registered (:meth:`get_config_opts`, in
        the group :attr:`config_group`).
    history : shadow_service.history.base.HistoryStore or None
    """

    #: Option group of the driver's own options.
    config_group = None
    #: True when :meth:`now` moves with the wall clock (less a constant
    #: lag, as the ``openstack`` driver's): the time Nova sent a
    #: notification can then be carried onto it.  A virtual clock (the
    #: twin's, which moves only as evaluations run) sets it False, and
    #: Nova's events are recorded at their arrival on it.
    wall_clock = True
    #: True when an evaluation's budget is also spent on the wall clock
    #: (the caller waits in real time): the evaluator stops measuring,
    #: cuts its last wait and bounds reading facts and fitting by the wall
    #: time left.  False on a virtual clock (the twin's) whose user wants
    #: the budget in that clock's seconds alone, e.g. a benchmark that
    #: must simulate the same seconds however loaded the machine is.
    wall_budget = True
    #: Seconds of an evaluation's budget the evaluator keeps back for
    #: :meth:`delete_shadows` (deleting real servers takes seconds).
    cleanup_reserve_s = 0.0

    def __init__(self, conf, history):
        self.conf = conf
        self.history = history

    @classmethod
    def get_config_opts(cls):
        """The driver's oslo.config options (in :attr:`config_group`)."""
        return []

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        """Start what the driver runs beside the evaluations (the
        ``openstack`` driver: the sample collector, the periodic garbage
        collector).  ``shadow_service.service.build`` calls it once."""
        return None

    def stop(self):
        """Stop what :meth:`start` started."""
        return None

    #: True when :meth:`host_facts` and :meth:`boot_shadows` accept a
    #: ``deadline`` keyword (a ``time.monotonic()`` reading): work on hosts
    #: not reached by then is skipped, so that an evaluation's budget
    #: bounds the whole request.  Drivers that bound their own calls with
    #: timeouts leave it False and are called without it.
    honours_deadline = False
    #: True when :meth:`wait_until_active` takes a ``cancelled`` keyword
    #: (a function without arguments, true once the evaluation is
    #: cancelled) and stops waiting when it turns true, so that a
    #: cancelled evaluation (or a stopping service) deletes shadows still
    #: coming up at once instead of after its budget.
    honours_cancel = False

    # -- shadows ------------------------------------------------------------
    @abc.abstractmethod
    def boot_shadows(self, evaluation_id, request, hosts, profile):
        """Boot one shadow per host for ``request`` running ``profile``.

        Parameters
        ----------
        evaluation_id : str
        request : dict
            The RPC request with its flavor already made shadow-sized.
        hosts : list of str
            Host names, one shadow each.
        profile : loadgen.profiles.Profile
            The workload, already scaled to the shadow.

        Returns
        -------
        list of Shadow
            The shadows that did boot (possibly still building, see
            :meth:`wait_until_active`).  A host that failed is left out
            and logged; this method does not raise for it.
        """

    def wait_until_active(self, shadows, timeout_s):
        """Wait up to ``timeout_s`` for ``shadows`` to run their load.

        Returns the ones that are active; the others are left to the
        caller to delete.  Drivers whose shadows run at once (the twin)
        return ``shadows`` unchanged.
        """
        return list(shadows)

    @abc.abstractmethod
    def delete_shadows(self, shadows):
        """Delete ``shadows`` and wait until they are gone (so the cloud
        releases what they held); must not raise for ones already gone."""

    @abc.abstractmethod
    def list_shadows(self):
        """Every shadow this driver's cloud still holds (for the garbage
        collector)."""

    def garbage_shadows(self):
        """The shadows a garbage collector may delete now: by default
        every one :meth:`list_shadows` returns.  A driver whose cloud other
        services share returns only left-overs and expired ones."""
        return self.list_shadows()

    def collect_garbage(self):
        """Delete :meth:`garbage_shadows` (with a warning naming them);
        returns how many.  ``shadow_service.service`` calls it as the
        service starts (``[shadow] cleanup_on_start``)."""
        garbage = self.garbage_shadows()
        if garbage:
            LOG.warning('Deleting %d left-over shadows: %s', len(garbage),
                        ', '.join(s.shadow_id for s in garbage))
            self.delete_shadows(garbage)
        return len(garbage)

    def check_access(self):
        """Contact the cloud once, as the daemons start: a
        :class:`CloudError` when it cannot be reached or refuses the
        credentials (``credentials_refused``).  The twin has nothing to
        check."""
        return None

    # -- the clock -------------------------------------------------------
    @abc.abstractmethod
    def now(self):
        """The current time on the clock the shadows' samples use."""

    @abc.abstractmethod
    def wait(self, seconds):
        """Let the shadows run for ``seconds`` on that clock."""

    # -- facts -----------------------------------------------------------
    def list_hosts(self):
        """Every compute host of the cloud, as :class:`HostInfo`."""
        raise NotSupported('%s cannot list hosts' % type(self).__name__)

    def host_facts(self, hosts, hosts_info=None):
        """``{host: {fact: value}}`` of what a deployment can know about
        ``hosts`` (names of :mod:`shadow_service.hostfacts`); empty when
        unknown, partial where some facts are.

        ``hosts_info`` is the request's host list as the scheduler sent it
        (``[{"host": ..., "vcpus": ..., "vcpus_used": ...,
        "free_ram_mb": ..., "total_ram_mb": ..., "num_instances": ...}]``,
        see ``shadow_service/schema.py``); a driver may merge it with what
        it reads itself, or ignore it (the default).
        """
        return {}

    # -- instance actions (the watcher) -----------------------------------
    def list_instances(self, project_ids=None):
        """Every (full) VM of ``project_ids`` (all projects when None),
        as :class:`Instance` with its metadata (how the watcher finds the
        VMs opted in)."""
        raise NotSupported('%s cannot list instances' % type(self).__name__)

    def get_instance(self, instance_id):
        """The :class:`Instance` ``instance_id``; CloudError if unknown."""
        raise NotSupported('%s cannot look up instances'
                           % type(self).__name__)

    def resize(self, instance_id, flavor):
        """Start resizing ``instance_id`` to ``flavor`` (a flavor dict with
        a ``name``; the guest reboots).  Confirm with
        :meth:`confirm_resize`."""
        raise NotSupported('%s cannot resize' % type(self).__name__)

    def confirm_resize(self, instance_id):
        """Confirm a finished resize (frees the old allocation)."""
        raise NotSupported('%s cannot resize' % type(self).__name__)

    def live_migrate(self, instance_id, host):
        """Live-migrate ``instance_id`` to ``host``."""
        raise NotSupported('%s cannot live-migrate' % type(self).__name__)

    def boot_sibling(self, instance_id, name=None, metadata=None):
        """Boot another VM like ``instance_id`` (same image, flavor,
        server group and metadata, with ``metadata`` added), in the VM's
        project; returns its :class:`Instance` (its ``notes`` say what
        the sibling lacks of the VM).  A VM booted from a volume gets a
        sibling booted from a new volume (of the image its root volume
        was made from, of the same size, deleted with the sibling);
        CloudError when there is no such image."""
        raise NotSupported('%s cannot boot siblings' % type(self).__name__)

    def why_no_sibling(self, instance):
        """Why :meth:`boot_sibling` cannot boot a sibling of ``instance``
        (an :class:`Instance`), in words for the decision record, or None
        when nothing stands in the way that the driver can see before
        asking for one (that the driver may boot in the VM's project; a
        VM booted from a volume: whether its root volume was made from
        an image)."""
        return None

    def delete_instance(self, instance_id):
        """Delete ``instance_id``; no error if it is already gone."""
        raise NotSupported('%s cannot delete instances'
                           % type(self).__name__)

    def finish_deletions(self):
        """Carry on the deletions :meth:`delete_instance` asked that have
        not completed (the ``openstack`` driver deletes again, past its
        grace, a sibling whose deletion its compute host never
        completed), and forget those done; the watcher calls it every
        run (not in dry-run).  Returns how many it looked at; never
        raises for one that fails.  Nothing to do by default."""
        return 0

    def resume_deletions(self, instance_ids, under_way_only=False):
        """Carry on, from now, the deletions of ``instance_ids`` that were
        asked before this driver was built (by a watcher before its
        restart, or by the previous leader: what its decision records
        hold), as :meth:`finish_deletions` carries on the ones
        :meth:`delete_instance` asked: a driver remembers its deletions
        only while its process runs.  With ``under_way_only`` (a
        scale-in whose start failed: the cloud may have refused the
        deletion itself) only a deletion found under way is carried on,
        and a server not being deleted is left as it is.  Calls no cloud
        API; one already remembered keeps its time.  Nothing to do by
        default."""
        return None
