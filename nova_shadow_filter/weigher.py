"""Shadow Weigher.  Weigh hosts by their measured Performance Score.

For a request with a ``shadow_profile`` (or ``shadow_evaluation``) scheduler
hint, the weigher asks ``shadow-service`` once per scheduling request to rank
all candidate hosts; the service may boot flavor-minimal shadows of the VM on
them and measure them under load.  The 0-100 score is normalised against the
fixed range 0..100 (``minval``/``maxval``), so an absolute score keeps its
meaning, and multiplied by ``[shadow_weigher] weight_multiplier`` (or the
``shadow_weight_multiplier`` aggregate metadata).  A negative multiplier
prefers the worst-ranked hosts.

Requests without a hint get neutral weights and cause no RPC at all.  A bad
hint value is logged and ignored.  A timeout, an error or a malformed reply
gives neutral weights and one warning; after ``failure_threshold`` failures a
circuit breaker skips the service entirely for ``reset_timeout`` seconds.
Nova's own weighers then decide, and the boot never fails because of us.
"""

import math
import uuid

import nova.conf
from nova.scheduler import utils
from nova.scheduler import weights
from oslo_log import log as logging

from nova_shadow_filter import breaker
from nova_shadow_filter import conf as shadow_conf
from shadow_service import rpcapi

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
shadow_conf.register_opts(CONF)

HINT_PROFILE = 'shadow_profile'
HINT_BUDGET = 'shadow_budget'
HINT_EVALUATION = 'shadow_evaluation'
NEUTRAL = 0.0


class InvalidReply(Exception):
    """The service answered something that is not a ranking."""


def _hint(spec_obj, name):
    try:
        value = spec_obj.get_scheduler_hint(name)
    except Exception:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return value


def _attr(obj, name, default=None):
    try:
        if hasattr(obj, 'obj_attr_is_set') and not obj.obj_attr_is_set(name):
            return default
        return getattr(obj, name, default)
    except Exception:
        return default


def build_request(spec_obj, profile):
    """The RPC request dict for ``spec_obj`` (plain JSON values only)."""
    flavor = _attr(spec_obj, 'flavor')
    image = _attr(spec_obj, 'image')
    request = {
        'flavor': {
            'name': str(_attr(flavor, 'name', '') or ''),
            'vcpus': int(_attr(flavor, 'vcpus', 1) or 1),
            'ram_mb': int(_attr(flavor, 'memory_mb', 512) or 512),
            'disk_gb': int(_attr(flavor, 'root_gb', 0) or 0),
            'extra_specs': {str(k): str(v) for k, v in
                            (_attr(flavor, 'extra_specs', {}) or {}).items()},
        },
        'profile': profile,
    }
    image_id = _attr(image, 'id')
    if image_id:
        request['image_id'] = str(image_id)
    for name in ('project_id', 'instance_uuid'):
        value = _attr(spec_obj, name)
        if value:
            request[name] = str(value)
    return request


def describe_hosts(host_states):
    """One JSON-able dict per distinct host, in first-seen order."""
    hosts = {}
    for state in host_states:
        if state.host in hosts:
            continue
        entry = {'host': state.host, 'nodename': state.nodename}
        for key, attr in (('vcpus', 'vcpus_total'),
                          ('vcpus_used', 'vcpus_used'),
                          ('free_ram_mb', 'free_ram_mb'),
                          ('total_ram_mb', 'total_usable_ram_mb'),
                          ('free_disk_mb', 'free_disk_mb'),
                          ('num_instances', 'num_instances')):
            value = getattr(state, attr, None)
            if isinstance(value, (int, float)) and math.isfinite(value):
                entry[key] = value
        hosts[state.host] = entry
    return list(hosts.values())


def scores_from_ranking(ranking):
    """``{host: score}`` from a ranking dict, or InvalidReply."""
    if not isinstance(ranking, dict):
        raise InvalidReply('ranking is %s, not a dict'
                           % type(ranking).__name__)
    hosts = ranking.get('hosts')
    if not isinstance(hosts, list):
        raise InvalidReply('ranking has no list of hosts')
    scores = {}
    for entry in hosts:
        if not isinstance(entry, dict):
            raise InvalidReply('host entry %r is not a dict' % (entry,))
        host, score = entry.get('host'), entry.get('score')
        if not isinstance(host, str):
            raise InvalidReply('host entry %r has no host name' % (entry,))
        if (isinstance(score, bool) or not isinstance(score, (int, float))
                or not math.isfinite(score) or not 0 <= score <= 100):
            raise InvalidReply('score %r of %s is not in 0..100'
                               % (score, host))
        scores[host] = float(score)
    return scores


class ShadowWeigher(weights.BaseHostWeigher):
    minval = 0
    maxval = 100

    def __init__(self):
        opts = CONF.shadow_weigher
        self._api = None
        self.breaker = breaker.CircuitBreaker(
            failure_threshold=opts.failure_threshold,
            reset_timeout=opts.reset_timeout)

    @property
    def api(self):
        if self._api is None:
            opts = CONF.shadow_weigher
            self._api = rpcapi.ShadowAPI(CONF, topic=opts.topic,
                                         transport_url=opts.transport_url)
        return self._api

    def weight_multiplier(self, host_state):
        """Override the weight multiplier."""
        return utils.get_weight_multiplier(
            host_state, 'shadow_weight_multiplier',
            CONF.shadow_weigher.weight_multiplier)

    def _weigh_object(self, host_state, weight_properties):
        # weigh_objects() sees all hosts at once; this is never reached.
        return NEUTRAL

    def weigh_objects(self, weighed_obj_list, spec_obj):
        states = [w.obj for w in weighed_obj_list]
        neutral = [NEUTRAL] * len(states)
        call = self._plan_call(spec_obj, states)
        if call is None:
            return neutral
        if not self.breaker.allow():
            LOG.debug('Shadow service circuit is open; neutral weights')
            return neutral
        what, func, deadline_s = call
        try:
            ranking = breaker.call_with_deadline(func, deadline_s)
            scores = scores_from_ranking(ranking)
        except Exception as e:
            opened = self.breaker.record_failure()
            LOG.warning('Shadow service %s failed (%s: %s); using neutral '
                        'weights%s', what, type(e).__name__, e,
                        '; circuit opened' if opened else '')
            return neutral
        self.breaker.record_success()
        default = CONF.shadow_weigher.unscored_host_score
        weights_ = [scores.get(s.host, default) for s in states]
        LOG.debug('Shadow scores for %s: %s', what,
                  dict(zip((s.host for s in states), weights_)))
        return weights_

    def _plan_call(self, spec_obj, states):
        """``(description, callable, deadline)`` or None for no call."""
        opts = CONF.shadow_weigher
        evaluation_id = _hint(spec_obj, HINT_EVALUATION)
        profile = _hint(spec_obj, HINT_PROFILE)
        if evaluation_id is not None:
            try:
                evaluation_id = str(uuid.UUID(str(evaluation_id)))
            except ValueError:
                LOG.warning('Ignoring scheduler hint %s=%r: not a UUID',
                            HINT_EVALUATION, evaluation_id)
                evaluation_id = None
        if evaluation_id is not None:
            timeout = opts.lookup_timeout

            def lookup():
                reply = self.api.get_evaluation({}, evaluation_id,
                                                timeout=timeout)
                if not isinstance(reply, dict):
                    raise InvalidReply('evaluation reply is not a dict')
                if reply.get('status') != 'finished':
                    raise InvalidReply('evaluation %s is %s' % (
                        evaluation_id, reply.get('status')))
                return reply.get('ranking')

            return ('look-up of evaluation %s' % evaluation_id, lookup,
                    timeout + opts.deadline_margin)
        if profile is None:
            return None
        if not isinstance(profile, str) or not profile.strip():
            LOG.warning('Ignoring scheduler hint %s=%r: not a profile name',
                        HINT_PROFILE, profile)
            return None
        budget = self._budget(spec_obj)
        try:
            request = build_request(spec_obj, profile.strip())
        except Exception:
            LOG.warning('Could not describe the request for the shadow '
                        'service; neutral weights', exc_info=True)
            return None
        hosts = describe_hosts(states)

        def rank():
            return self.api.rank_hosts({}, request, hosts, budget,
                                       timeout=budget + opts.deadline_margin)

        return ('ranking of %d hosts for profile %s' % (len(hosts), profile),
                rank, budget + opts.deadline_margin)

    def _budget(self, spec_obj):
        opts = CONF.shadow_weigher
        raw = _hint(spec_obj, HINT_BUDGET)
        if raw is None:
            return min(opts.default_budget, opts.max_budget)
        try:
            budget = float(raw)
            if not math.isfinite(budget) or budget <= 0:
                raise ValueError(raw)
        except (TypeError, ValueError):
            LOG.warning('Ignoring scheduler hint %s=%r: not a positive '
                        'number of seconds', HINT_BUDGET, raw)
            return min(opts.default_budget, opts.max_budget)
        if budget > opts.max_budget:
            LOG.info('Scheduler hint %s=%s clipped to [shadow_weigher] '
                     'max_budget=%s', HINT_BUDGET, raw, opts.max_budget)
        return min(budget, opts.max_budget)
