"""Carrying out a decision through the cloud driver, and following it.

:class:`Actuator` turns an allowed :class:`~.policies.base.Decision`
into driver calls: a resize to the decided rung (then, once Nova reports
``VERIFY_RESIZE``, its confirmation: the guest reboots on the new
flavor), a live migration to the chosen host, a sibling booted or the
newest sibling the watcher booted deleted (siblings carry
``nova_shadow_sibling_of``, the original's id, in their metadata), or,
with ``[watcher] scale_webhook``, a POST to the webhook instead: its
effect is the orchestrator's, which the watcher does not see, so such an
action is not followed, and what is known of it is the webhook's answer
(which may state the group's size, :func:`stated_group_size`).
In dry-run it calls nothing that changes the cloud and says what it
would have done.
:meth:`Actuator.follow` looks at an action under way and says when it is
done or failed.  A scale-out ends once each of its siblings is ACTIVE or
has failed, or at its deadline: a sibling in ERROR is deleted when it is
seen, one still booting at the deadline then (as a scale-in deletes one,
so a deletion that does not complete is carried on the same way), and
:attr:`Pending.joined` names those that came up, the group's new
members; it is done when any did (the group grew), failed when none
did.  A sibling a deferred delete
keeps SOFT_DELETED is deleted
again (the ``openstack`` driver force-deletes it), and one whose
deletion is under way is handed to the driver again (the ``openstack``
driver remembers it; the watcher's runs have it delete the sibling again,
its state reset first, once that deletion has not completed in twice
``[openstack] delete_timeout``).  Driver failures come back as outcomes,
never raised.
"""

import dataclasses
import logging
import urllib.parse

import requests

from shadow_service.clouds import base as cloud_base

LOG = logging.getLogger(__name__)

#: How many lead times an action may take before it counts as failed.
TIMEOUT_LEADS = 4.0
#: Seconds after a start during which an instance still ACTIVE on its old
#: flavor or host is taken as not yet started rather than failed.
GRACE_S = 30.0
#: Metadata key of a sibling the watcher booted: the id of its group's
#: original (a restarted watcher finds the group's members by it).
SIBLING_KEY = 'nova_shadow_sibling_of'
#: Most characters of a webhook's answer kept in a decision record.
ANSWER_CHARS = 500
#: Key of a webhook answer's JSON object that states the group's size.
GROUP_SIZE_KEY = 'group_size'


def stated_group_size(response):
    """The group size a 2xx webhook answer states: its JSON object's
    ``group_size``, a whole number of at least 1 (the members the group
    has once the orchestrator has done what it was asked); None when it
    states none, or states something else (then said in the log)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or GROUP_SIZE_KEY not in body:
        return None
    size = body[GROUP_SIZE_KEY]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        LOG.warning('The scale webhook answered %s %.40r, not a whole '
                    'number of at least 1: the watcher counts the group '
                    'itself', GROUP_SIZE_KEY, size)
        return None
    return size


@dataclasses.dataclass
class Pending:
    """An action under way."""

    decision_id: str
    instance_id: str
    action: str
    started_at: float
    deadline: float
    source_host: str = None
    target_host: str = None
    target_flavor: dict = None
    #: Siblings booted (scale out) or being deleted (scale in).
    siblings: list = dataclasses.field(default_factory=list)
    #: Scale out: the siblings that came up (ACTIVE), once it has ended.
    joined: list = dataclasses.field(default_factory=list)
    #: Scale out: the siblings that failed (went to ERROR, or still
    #: booted at the deadline), their deletion asked.
    discarded: list = dataclasses.field(default_factory=list)
    #: Scale out, in dry-run (one started before a restart): the
    #: siblings that failed, which an acting watcher would have deleted.
    would_discard: list = dataclasses.field(default_factory=list)
    direction: int = 0
    #: This watcher counted it in its ``actions`` counter when it
    #: started (and in ``flaps`` too, ``flap``), not one restored from
    #: the records: counted back out if it fails.
    counted: bool = False
    flap: bool = False


class Actuator:
    """Acts (or, in dry-run, only describes acting) through ``driver``."""

    def __init__(self, driver, ladder, *, dry_run=True, webhook=None,
                 webhook_timeout=10.0):
        self.driver = driver
        self.ladder = ladder
        self.dry_run = dry_run
        self.webhook = webhook
        self.webhook_timeout = webhook_timeout

    def describe(self, instance, decision, host=None, siblings=(),
                 count=1):
        if decision.action in ('resize_up', 'resize_down'):
            rung = self.ladder.rungs[decision.target_rung]
            return 'resize %s from %s to %s (%d vCPUs; the guest reboots)' % (
                instance.instance_id, instance.flavor.get('name') or
                '%s vCPUs' % instance.flavor.get('vcpus'), rung.name,
                rung.vcpus)
        if decision.action == 'live_migrate':
            return 'live-migrate %s from %s to %s' % (
                instance.instance_id, instance.host, host or 'a host Nova '
                'picks')
        if decision.action == 'scale_out':
            return ('boot %d sibling%s of %s' % (
                count, 's' if count > 1 else '', instance.instance_id)
                if not self.webhook else 'call the scale webhook (out)')
        if decision.action == 'scale_in':
            return ('delete sibling%s %s of %s' % (
                's' if len(siblings) > 1 else '', ', '.join(siblings),
                instance.instance_id)
                if not self.webhook else 'call the scale webhook (in)')
        return 'nothing'

    def start(self, instance, decision, *, now, lead_s, decision_id,
              host=None, siblings=(), count=1, group_size=1):
        """Start ``decision`` on ``instance``: ``count`` siblings to boot
        for a scale out, ``siblings`` to delete for a scale in (given to
        the scale webhook: ``count`` members more or fewer than the
        ``group_size`` the watcher counts).

        Returns ``(outcome, Pending or None, detail, webhook)``: outcome
        ``dry_run``, ``started`` (follow the Pending, if any) or
        ``failed``; ``webhook``, for an action given to the scale webhook
        (not in dry-run), its answer ``{'status': HTTP status, 'answer':
        the body's first ANSWER_CHARS characters, 'group_size': the size
        a 2xx answer states, or None}`` (None when it gave none), else
        None.  An action given to the webhook is never followed: its
        effect is not the watcher's to see.
        """
        what = self.describe(instance, decision, host, siblings, count)
        if self.dry_run:
            LOG.info('dry-run: would %s', what)
            return 'dry_run', None, 'would ' + what, None
        pending = Pending(decision_id=decision_id,
                          instance_id=instance.instance_id,
                          action=decision.action, started_at=now,
                          deadline=now + TIMEOUT_LEADS * max(lead_s, 60.0),
                          source_host=instance.host, target_host=host,
                          direction=decision.direction)
        if self.scales_by_webhook(decision.action):
            target = group_size + (count if decision.action == 'scale_out'
                                   else -count)
            return self._call_webhook(instance, decision, what, target,
                                      group_size)
        try:
            if decision.action in ('resize_up', 'resize_down'):
                flavor = self.ladder.rungs[decision.target_rung].to_flavor()
                pending.target_flavor = flavor
                self.driver.resize(instance.instance_id, flavor)
            elif decision.action == 'live_migrate':
                self.driver.live_migrate(instance.instance_id, host)
            elif decision.action == 'scale_out':
                notes = []
                for _ in range(count):
                    booted = self.driver.boot_sibling(
                        instance.instance_id,
                        metadata={SIBLING_KEY: instance.instance_id})
                    pending.siblings.append(booted.instance_id)
                    notes.extend(booted.notes or ())
                if notes:
                    what = '%s, %s' % (what, '; '.join(dict.fromkeys(notes)))
            elif decision.action == 'scale_in':
                if not siblings:
                    return ('failed', None, 'no sibling of ours to delete',
                            None)
                for sibling in siblings:
                    self.driver.delete_instance(sibling)
                    pending.siblings.append(sibling)
        except cloud_base.CloudError as exc:
            LOG.warning('Could not %s: %s', what, exc)
            if pending.siblings:
                # Some siblings were booted or deleted: follow those.
                return 'started', pending, '%s (only %d: %s)' % (
                    what, len(pending.siblings), exc), None
            return 'failed', None, '%s: %s' % (what, exc), None
        LOG.info('Started: %s', what)
        return 'started', pending, what, None

    def scales_by_webhook(self, action):
        """Whether ``action`` is given to the scale webhook."""
        return bool(self.webhook) and action in ('scale_out', 'scale_in')

    def _call_webhook(self, instance, decision, what, target_count,
                      group_size):
        try:
            response = requests.post(self.webhook, json={
                'instance': instance.instance_id, 'action': decision.action,
                'target_count': target_count, 'group_size': group_size,
                'reason': decision.reason}, timeout=self.webhook_timeout)
        except requests.RequestException as exc:
            # requests names the URL, whose query may be a signature.
            said = str(exc)
            parts = urllib.parse.urlsplit(self.webhook)
            for secret in (self.webhook, parts.path + '?' + parts.query
                           if parts.query else None):
                if secret:
                    said = said.replace(secret, '<scale_webhook>')
            LOG.warning('Could not %s: %s', what, said)
            return 'failed', None, '%s: %s' % (what, said), None
        answer = {'status': response.status_code,
                  'answer': response.text[:ANSWER_CHARS],
                  'group_size': None}
        said = 'HTTP %d %s%s' % (
            response.status_code, response.reason or '',
            ': %s' % answer['answer'] if answer['answer'] else '')
        if not response.ok:
            LOG.warning('Could not %s: %s', what, said)
            return 'failed', None, '%s: %s' % (what, said), answer
        answer['group_size'] = stated_group_size(response)
        LOG.info('Called the scale webhook for %s: %s',
                 instance.instance_id, said)
        return 'started', None, '%s: %s' % (what, said), answer

    def follow(self, pending, now):
        """``(outcome, detail)`` of an action under way: outcome ``done``,
        ``failed``, None (still running) or, in dry-run, ``dry_run`` when
        it waits for a call that would change the cloud (a resize's
        confirmation): the action is then left as it is.  A cloud error
        that may pass (``retryable``: a timeout, a busy API) leaves the
        action under way until its deadline; any other fails it."""
        try:
            if pending.action == 'scale_in':
                return self._follow_deletes(pending, now)
            if pending.action == 'scale_out':
                return self._follow_boots(pending, now)
            instance = self.driver.get_instance(pending.instance_id)
        except cloud_base.CloudError as exc:
            return self._cloud_error(pending, now, exc)
        status = (instance.status or '').upper()
        if status == 'ERROR':
            return 'failed', '%s went to ERROR' % pending.instance_id
        if pending.action in ('resize_up', 'resize_down'):
            if status == 'VERIFY_RESIZE':
                if self.dry_run:
                    # Started before a restart in dry-run: observe only.
                    what = 'confirm the resize to %s' % (
                        pending.target_flavor['name'])
                    LOG.info('dry-run: would %s of %s', what,
                             pending.instance_id)
                    return 'dry_run', 'would ' + what
                try:
                    self.driver.confirm_resize(pending.instance_id)
                except cloud_base.CloudError as exc:
                    return self._cloud_error(pending, now, exc,
                                             'confirming the resize: ')
                return 'done', 'resized to %s and confirmed' % (
                    pending.target_flavor['name'])
            if status == 'ACTIVE' and self.ladder.index_of(
                    instance.flavor) == self.ladder.index_of(
                    pending.target_flavor):
                return 'done', 'resized to %s' % pending.target_flavor[
                    'name']
            if status == 'ACTIVE' and now - pending.started_at > GRACE_S:
                return 'failed', 'resize reverted (still %s)' % (
                    instance.flavor.get('name') or instance.flavor)
        elif pending.action == 'live_migrate':
            if status == 'ACTIVE' and instance.host != pending.source_host:
                return 'done', 'now on %s' % instance.host
            if status == 'ACTIVE' and now - pending.started_at > GRACE_S:
                return 'failed', 'still on %s' % instance.host
        return self._timeout(pending, now, 'still %s' % status)

    def _cloud_error(self, pending, now, exc, doing=''):
        if exc.retryable:
            LOG.info('Following %s of %s: %s%s; trying again next run',
                     pending.action, pending.instance_id, doing, exc)
            return self._timeout(pending, now, '%s%s' % (doing, exc))
        return 'failed', '%s%s' % (doing, exc)

    def _follow_deletes(self, pending, now):
        left = []
        for sibling in pending.siblings:
            try:
                instance = self.driver.get_instance(sibling)
            except cloud_base.NotSupported:
                raise
            except cloud_base.CloudError as exc:
                if not exc.retryable:
                    continue            # gone
            else:
                if (((instance.status or '').upper() == 'SOFT_DELETED'
                        or instance.deleting) and not self.dry_run):
                    # Kept by a deferred delete (holding its project's
                    # quota): the driver force-deletes it; a deletion
                    # under way: the driver remembers it (after a
                    # restart), and deletes it again once it has not
                    # completed in its grace (its host lost it).
                    # (Started before a restart in dry-run: observe
                    # only.)
                    self.driver.delete_instance(sibling)
            left.append(sibling)
        if not left:
            return 'done', 'deleted %s' % ', '.join(pending.siblings)
        return self._timeout(pending, now, 'still there: %s'
                             % ', '.join(left))

    def _follow_boots(self, pending, now):
        """A scale-out ends once every sibling is ACTIVE or has failed,
        or at its deadline.  A sibling in ERROR, or gone, failed: one in
        ERROR is deleted at once (it counts against its project's quota
        and would join the group by its metadata); one still booting at
        the deadline failed too and is deleted then (it might come up
        later, past the group's ``max_count``, or never), not in
        dry-run.  When it ends, :attr:`Pending.joined` holds those that
        came up: ``done`` when any did (the group grew, by all or by
        some: the detail names those that failed), else ``failed``."""
        waiting, active, failed = [], [], []
        for sibling in pending.siblings:
            if sibling in pending.discarded:
                failed.append('%s went to ERROR' % sibling)
                continue
            try:
                status = (self.driver.get_instance(sibling).status
                          or '').upper()
            except cloud_base.NotSupported:
                raise
            except cloud_base.CloudError as exc:
                if exc.retryable or exc.status != 404:
                    raise
                failed.append('%s is gone' % sibling)
                continue
            if status == 'ERROR':
                failed.append('%s went to ERROR' % sibling)
                self._discard(pending, sibling)
            elif status == 'ACTIVE':
                active.append(sibling)
            else:
                waiting.append((sibling, status))
        said = ['sibling %s' % f for f in failed]
        if waiting:
            outcome, detail = self._timeout(pending, now, ', '.join(
                said + ['%s %s' % w for w in waiting]))
            if outcome is None:
                return None, detail
            # Still booting at the deadline: deleted, as one in ERROR.
            for sibling, status in waiting:
                self._discard(pending, sibling, 'is still %s at the '
                              'deadline' % status)
            said = [detail + (', would delete %s' % (
                'it' if len(waiting) == 1 else 'them')
                if self.dry_run else ', deleted')]
        pending.joined = active
        if not active:
            return 'failed', '; '.join(said)
        if not said:
            return 'done', 'active: %s' % ', '.join(active)
        return 'done', 'active, joined the group: %s; %s' % (
            ', '.join(active), '; '.join(said))

    def _discard(self, pending, sibling, why='went to ERROR'):
        """Delete ``sibling``, which failed (``why``), as a scale-in deletes
        one (the ``openstack`` driver then follows the deletion and asks
        again, its state reset first, should it not complete); one Nova
        refuses to delete now is handed to the driver to delete again
        later (:meth:`~.CloudDriver.resume_deletions`).  Not in dry-run,
        which deletes nothing: it notes the sibling in
        :attr:`Pending.would_discard` and says it would delete it."""
        if self.dry_run:
            if sibling not in pending.would_discard:
                pending.would_discard.append(sibling)
                LOG.info('dry-run: sibling %s of %s %s: would delete it',
                         sibling, pending.instance_id, why)
            return
        pending.discarded.append(sibling)
        try:
            self.driver.delete_instance(sibling)
            LOG.info('Sibling %s of %s %s: deleted it',
                     sibling, pending.instance_id, why)
        except cloud_base.CloudError as exc:
            LOG.warning('Sibling %s of %s %s and could not be deleted '
                        '(%s); asking again later', sibling,
                        pending.instance_id, why, exc)
            try:
                self.driver.resume_deletions([sibling])
            except cloud_base.CloudError as again:
                LOG.warning('Sibling %s of %s: %s', sibling,
                            pending.instance_id, again)

    @staticmethod
    def _timeout(pending, now, detail):
        if now > pending.deadline:
            return 'failed', 'timed out (%s)' % detail
        return None, detail
