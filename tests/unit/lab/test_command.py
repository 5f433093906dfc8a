"""``nova-shadow lab``'s arguments: out-of-range times are usage errors
(exit 2, naming the option) before anything starts."""

import pytest
from oslo_config import cfg

from nova_shadow_filter import conf as weigher_conf
from nova_shadow_lab import command
from shadow_service import exception
from shadow_service import schema
from shadow_service.conf import service as service_conf


@pytest.mark.parametrize('argv,option', [
    (['--budget', '0.1'], '--budget'),
    (['--budget', '100000'], '--budget'),
    (['--budget', 'nan'], '--budget'),
    (['--min-run-time', '-1'], '--min-run-time'),
    (['--deadline-margin', '301'], '--deadline-margin'),
    (['--deadline-margin', 'soon'], '--deadline-margin'),
])
def test_out_of_range_times_are_usage_errors(argv, option, capsys):
    with pytest.raises(SystemExit) as raised:
        # The parser alone: were the value taken, main would start a lab.
        command._parser().parse_args(argv)
    assert raised.value.code == 2
    assert 'argument %s: ' % option in capsys.readouterr().err


def test_times_within_range_are_taken():
    args = command._parser().parse_args(
        ['--budget', '0.5', '--min-run-time', '0', '--deadline-margin',
         '300'])
    assert (args.budget, args.min_run_time, args.deadline_margin) == \
        (0.5, 0.0, 300.0)


def _weigher_takes(name, value):
    """Whether nova-scheduler's ``[shadow_weigher] <name>`` takes
    ``value`` (the lab sets it from the option of the same name)."""
    conf = cfg.ConfigOpts()
    weigher_conf.register_opts(conf)
    try:
        conf.set_override(name, value, group='shadow_weigher')
    except ValueError:
        return False
    return True


def _service_takes_budget(value):
    try:
        schema.validate_budget(value)
    except exception.InvalidRequest:
        return False
    return True


def _lab_takes(option, value):
    try:
        command._parser().parse_args([option, repr(value)])
    except SystemExit:
        return False
    return True


def test_the_budget_is_what_the_service_and_the_weigher_both_take(capsys):
    # --budget is the pre-flight evaluation's budget (the service's
    # request schema bounds it) and the weigher's default_budget (its
    # option bounds it, from 0.5 s: less disables the weigher).
    for value in (0.1, 0.4999, 0.5, 40.0, 86400.0, 86400.5):
        assert _lab_takes('--budget', value) == (
            _service_takes_budget(value)
            and _weigher_takes('default_budget', value)), value
    for value in (0.0, 300.0, 300.5):
        assert _lab_takes('--deadline-margin', value) == \
            _weigher_takes('deadline_margin', value), value


def test_the_budget_bounds_are_read_not_copied(monkeypatch, capsys):
    # The service's longest budget and the weigher's shortest default
    # budget, changed where they are set, change the lab's too.
    monkeypatch.setitem(schema.BUDGET, 'maximum', 3600)
    assert _lab_takes('--budget', 3600.0)
    assert not _lab_takes('--budget', 3600.5)
    assert 'must be 0.5-3600 s' in capsys.readouterr().err
    (default_budget,) = [o for o in weigher_conf.shadow_weigher_opts
                         if o.name == 'default_budget']
    monkeypatch.setattr(default_budget.type, 'min', 2.0)
    assert not _lab_takes('--budget', 1.5)
    assert _lab_takes('--budget', 2.0)


def test_the_min_run_time_is_what_the_service_takes(capsys):
    conf = cfg.ConfigOpts()
    service_conf.register_opts(conf)
    for value in (-0.5, 0.0, 10.0):
        try:
            conf.set_override('min_run_time', value, group='shadow')
            takes = True
        except ValueError:
            takes = False
        assert _lab_takes('--min-run-time', value) == takes, value
