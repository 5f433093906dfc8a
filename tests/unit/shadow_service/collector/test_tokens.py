"""Collector tokens: one per shadow, checked precisely, kept as hashes."""

import pytest

from shadow_service.collector import tokens

EVALUATION = '6b7a3c52-0b8f-4d0e-9a55-2f0d3f7d9a11'
OTHER = '0c9e0f43-7d6b-4f6c-8d5e-9f3a1b2c4d5e'


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def _grants(retention_s=3600.0):
    clock = Clock()
    return tokens.Grants(retention_s=retention_s, clock=clock), clock


def _issue(grants, evaluation=EVALUATION, host='host1', expires_at=2000.0,
           shadow_id='server-1'):
    token, grant = grants.issue(evaluation, host, 'web', expires_at)
    grant.shadow_id = shadow_id
    return token, grant


def _status(grants, token):
    with pytest.raises(tokens.Rejection) as caught:
        grants.check(token)
    return caught.value.status, caught.value.reason


def test_a_token_names_its_shadow_and_only_its_hash_is_kept():
    grants, _clock = _grants()
    token, grant = _issue(grants)
    assert grants.check(token) is grant
    assert grant.host == 'host1' and grant.evaluation_id == EVALUATION
    assert token.startswith('nss1.%s.' % EVALUATION)
    assert token not in repr(vars(grants))
    assert tokens.token_hash(token) in vars(grants)['_by_hash']


def test_forged_malformed_and_unknown_tokens_get_their_own_status():
    grants, _clock = _grants()
    token, _grant = _issue(grants)
    prefix, evaluation, secret = token.split('.')
    assert _status(grants, '') == (401, 'unauthenticated')
    assert _status(grants, 'Bearer x') == (401, 'unauthenticated')
    assert _status(grants, secret) == (401, 'unauthenticated')
    assert _status(grants, '.'.join([prefix, evaluation, 'A' * 43])) == \
        (403, 'forged')
    # The secret of one evaluation under another's id.
    _issue(grants, evaluation=OTHER, shadow_id='server-2')
    assert _status(grants, '.'.join([prefix, OTHER, secret])) == \
        (403, 'forged')
    unknown = '.'.join([prefix, 'f' * 36, secret])
    assert _status(grants, unknown) == (404, 'unknown_evaluation')


def test_revoked_expired_and_finished_tokens_are_gone():
    grants, clock = _grants()
    first, first_grant = _issue(grants)
    second, _ = _issue(grants, host='host2', shadow_id='server-2',
                       expires_at=1500.0)
    grants.revoke(first_grant)
    assert _status(grants, first) == (410, 'finished')
    assert grants.check(second) is not None
    assert grants.running(EVALUATION)
    clock.now = 1600.0
    assert _status(grants, second) == (410, 'expired')


def test_an_evaluation_is_finished_when_its_last_shadow_is_deleted():
    grants, clock = _grants(retention_s=60.0)
    token, grant = _issue(grants)
    grants.revoke(grant)
    assert not grants.running(EVALUATION)
    assert _status(grants, token) == (410, 'finished')
    clock.now += 61.0
    # Forgotten after the retention: the evaluation is unknown now.
    assert _status(grants, token) == (404, 'unknown_evaluation')


def test_a_token_is_refused_until_its_server_exists():
    grants, _clock = _grants()
    token, grant = grants.issue(EVALUATION, 'host1', 'web', 2000.0)
    assert _status(grants, token) == (409, 'not_booted')
    grant.shadow_id = 'server-1'
    assert grants.check(token) is grant


def test_tokens_of_a_driver_that_never_revoked_them_are_purged():
    grants, clock = _grants(retention_s=10.0)
    token, _grant = _issue(grants, expires_at=1005.0)
    clock.now = 1020.0
    assert _status(grants, token) == (404, 'unknown_evaluation')
    assert not vars(grants)['_by_hash']


def test_an_evaluation_id_that_cannot_go_in_a_token_is_refused():
    grants, _clock = _grants()
    with pytest.raises(ValueError):
        grants.issue('has.dots', 'host1', 'web', 2000.0)
