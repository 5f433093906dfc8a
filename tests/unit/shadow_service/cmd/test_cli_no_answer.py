"""``nova-shadow evaluate --remote --wait`` when its looks go
unanswered."""

import argparse

import pytest

from shadow_service import exception
from shadow_service import rpcapi
from shadow_service.cmd import cli
from tests import service_support


def test_looks_refused_at_once_are_paced_by_the_wait(rabbit_url,
                                                     monkeypatch, capsys):
    # A look refused at once (the broker gone, earlier looks still
    # without an answer) is asked again once per --rpc-wait, not in a
    # busy loop until the wait's end.
    monkeypatch.setattr(cli, 'WAIT_SLACK_S', 2.0)
    api = rpcapi.ShadowAPI(service_support.make_conf(),
                           topic=service_support.unique_topic(),
                           transport_url=rabbit_url)
    args = argparse.Namespace(budget=0.0, rpc_wait=0.5)
    with service_support.calls_refused_at_once():
        with pytest.raises(exception.ShadowException,
                           match='did not finish in time'):
            cli._wait_for_ranking(
                api, 'b0f4c1d2-0000-4000-8000-000000000000', args)
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if 'asking again' in line]
    assert 1 <= len(warnings) <= 6, len(warnings)
