"""Carrying out a decision through the cloud driver, and following it.

:class:`Actuator` turns an allowed :class:`~.policies.base.Decision`
into driver calls: a resize to the decided rung (then, once Nova reports
``VERIFY_RESIZE``, its confirmation: the guest reboots on the new
flavor), a live migration to the chosen host, a sibling booted or the
newest sibling the watcher booted deleted (or, with ``[watcher]
scale_webhook``, a POST to the webhook instead).  In dry-run it calls
nothing that changes the cloud and says what it would have done.
:meth:`Actuator.follow` looks at an action under way and says when it is
done or failed.  Driver failures come back as outcomes, never raised.
"""

import dataclasses
import logging

import requests

from shadow_service.clouds import base as cloud_base

LOG = logging.getLogger(__name__)

#: How many lead times an action may take before it counts as failed.
TIMEOUT_LEADS = 4.0
#: Seconds after a start during which an instance still ACTIVE on its old
#: flavor or host is taken as not yet started rather than failed.
GRACE_S = 30.0


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
    sibling: str = None
    direction: int = 0


class Actuator:
    """Acts (or, in dry-run, only describes acting) through ``driver``."""

    def __init__(self, driver, ladder, *, dry_run=True, webhook=None,
                 webhook_timeout=10.0):
        self.driver = driver
        self.ladder = ladder
        self.dry_run = dry_run
        self.webhook = webhook
        self.webhook_timeout = webhook_timeout

    def describe(self, instance, decision, host=None, sibling=None):
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
            return ('boot a sibling of %s' % instance.instance_id
                    if not self.webhook else 'call the scale webhook (out)')
        if decision.action == 'scale_in':
            return ('delete sibling %s of %s' % (sibling,
                                                 instance.instance_id)
                    if not self.webhook else 'call the scale webhook (in)')
        return 'nothing'

    def start(self, instance, decision, *, now, lead_s, decision_id,
              host=None, sibling=None):
        """Start ``decision`` on ``instance``.

        Returns ``(outcome, Pending or None, detail)``: outcome
        ``dry_run``, ``started`` (follow the Pending) or ``failed``.
        """
        what = self.describe(instance, decision, host, sibling)
        if self.dry_run:
            LOG.info('dry-run: would %s', what)
            return 'dry_run', None, 'would ' + what
        pending = Pending(decision_id=decision_id,
                          instance_id=instance.instance_id,
                          action=decision.action, started_at=now,
                          deadline=now + TIMEOUT_LEADS * max(lead_s, 60.0),
                          source_host=instance.host, target_host=host,
                          direction=decision.direction)
        try:
            if self.webhook and decision.action in ('scale_out',
                                                    'scale_in'):
                self._call_webhook(instance, decision)
                return 'started', None, what
            if decision.action in ('resize_up', 'resize_down'):
                flavor = self.ladder.rungs[decision.target_rung].to_flavor()
                pending.target_flavor = flavor
                self.driver.resize(instance.instance_id, flavor)
            elif decision.action == 'live_migrate':
                self.driver.live_migrate(instance.instance_id, host)
            elif decision.action == 'scale_out':
                booted = self.driver.boot_sibling(instance.instance_id)
                pending.sibling = booted.instance_id
            elif decision.action == 'scale_in':
                if sibling is None:
                    return 'failed', None, 'no sibling of ours to delete'
                self.driver.delete_instance(sibling)
                pending.sibling = sibling
                return 'started', pending, what
        except (cloud_base.CloudError, requests.RequestException) as exc:
            LOG.warning('Could not %s: %s', what, exc)
            return 'failed', None, '%s: %s' % (what, exc)
        LOG.info('Started: %s', what)
        return 'started', pending, what

    def _call_webhook(self, instance, decision):
        response = requests.post(self.webhook, json={
            'instance': instance.instance_id, 'action': decision.action,
            'target_count': decision.target_count,
            'reason': decision.reason}, timeout=self.webhook_timeout)
        response.raise_for_status()

    def follow(self, pending, now):
        """``(outcome, detail)`` of an action under way: outcome ``done``,
        ``failed`` or None (still running)."""
        try:
            if pending.action == 'scale_in':
                try:
                    self.driver.get_instance(pending.sibling)
                except cloud_base.NotSupported:
                    raise
                except cloud_base.CloudError:
                    return 'done', 'sibling %s deleted' % pending.sibling
                return self._timeout(pending, now, 'sibling still there')
            watched = (pending.sibling if pending.action == 'scale_out'
                       else pending.instance_id)
            instance = self.driver.get_instance(watched)
        except cloud_base.CloudError as exc:
            return 'failed', str(exc)
        status = (instance.status or '').upper()
        if status == 'ERROR':
            return 'failed', '%s went to ERROR' % watched
        if pending.action in ('resize_up', 'resize_down'):
            if status == 'VERIFY_RESIZE':
                try:
                    self.driver.confirm_resize(pending.instance_id)
                except cloud_base.CloudError as exc:
                    return 'failed', 'confirming the resize: %s' % exc
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
        elif pending.action == 'scale_out':
            if status == 'ACTIVE':
                return 'done', 'sibling %s active' % pending.sibling
        return self._timeout(pending, now, 'still %s' % status)

    @staticmethod
    def _timeout(pending, now, detail):
        if now > pending.deadline:
            return 'failed', 'timed out (%s)' % detail
        return None, detail
