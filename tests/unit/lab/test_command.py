"""``nova-shadow lab``'s arguments: out-of-range times are usage errors
(exit 2, naming the option) before anything starts."""

import pytest

from nova_shadow_lab import command


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
