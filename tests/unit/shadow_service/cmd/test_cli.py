"""``nova-shadow`` as an operator runs it, on the embedded twin."""

import json
import pathlib
import subprocess
import sys

import pytest

from shadow_service.analysis import calibration as calibration_lib
from shadow_service.cmd import cli
from shadow_service.learners import calibration as learning

ROOT = pathlib.Path(__file__).resolve().parents[4]


def test_evaluate_on_the_twin_prints_a_ranked_table(capsys):
    rc = cli.main(['evaluate', '--profile', 'web', '--vcpus', '2',
                   '--ram-mb', '4096', '--hosts', 'node-01,node-05,node-16',
                   '--budget', '8'])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ['rank', 'host', 'score', 'confidence']
    ranked = [line.split()[1] for line in lines[1:4]]
    assert sorted(ranked) == ['node-01', 'node-05', 'node-16']
    assert 'overall confidence' in lines[-1]


def test_evaluate_json_is_the_rpc_ranking(capsys):
    rc = cli.main(['evaluate', '--hosts', 'node-02,node-03', '--budget', '5',
                   '--json'])
    ranking = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert ranking['status'] == 'finished'
    assert {h['host'] for h in ranking['hosts']} == {'node-02', 'node-03'}


def test_bad_request_exits_2_and_names_the_problem(capsys):
    rc = cli.main(['evaluate', '--profile', 'no-such', '--hosts', 'a'])
    assert rc == 2
    assert 'no-such' in capsys.readouterr().err


def test_profiles_lists_the_builtins(capsys):
    assert cli.main(['profiles']) == 0
    names = [line.split()[0] for line in
             capsys.readouterr().out.splitlines()]
    assert {'web', 'db-oltp', 'batch-cpu', 'cache', 'analytics',
            'idle'} <= set(names)


def test_a_profile_named_demo_is_not_the_demo_command(capsys):
    rc = cli.main(['evaluate', '--profile', 'demo', '--hosts', 'a'])
    assert rc == 2
    err = capsys.readouterr().err
    assert 'Unknown workload profile demo' in err


def test_options_before_demo_belong_to_nova_shadow():
    own, demo_args = cli._split_demo_args(
        ['--config-file', 'x.conf', 'demo', '--profile', 'web'])
    assert own == ['--config-file', 'x.conf', 'demo']
    assert demo_args == ['--profile', 'web']
    assert cli._split_demo_args(['evaluate', 'demo'])[1] is None


def test_a_host_the_twin_does_not_have_is_unmeasured_and_neutral(capsys):
    rc = cli.main(['evaluate', '--hosts', 'node-01,node-99', '--budget', '5',
                   '--json'])
    ranking = json.loads(capsys.readouterr().out)
    assert rc == 0
    hosts = {h['host']: h for h in ranking['hosts']}
    assert hosts['node-99']['score'] == 50.0
    assert hosts['node-99']['confidence'] == 0.0
    assert 'not measured: no shadow could boot' in \
        hosts['node-99']['reasons'][0]
    assert hosts['node-01']['confidence'] > 0
    # The same ranking with every candidate measured: node-01 alone.
    assert cli.main(['evaluate', '--hosts', 'node-01', '--budget', '5',
                     '--json']) == 0
    alone = json.loads(capsys.readouterr().out)
    # The raw confidence counts only what was measured (one host of two),
    # and the stated one is the calibration map of that scaled figure:
    # before any outcome, the prior map shipped with the service
    # ([analysis] calibration_prior_map = bundled, the default).
    assert ranking['raw_confidence'] == pytest.approx(
        alone['raw_confidence'] * 0.5, abs=1e-3)
    prior = calibration_lib.make_map(
        'logistic', prior=learning.load_prior_map('bundled'))
    assert ranking['confidence'] == pytest.approx(
        prior(ranking['raw_confidence']), abs=1e-3)
    assert alone['confidence'] == pytest.approx(
        prior(alone['raw_confidence']), abs=1e-3)
    # An unmeasured candidate lowers what the ranking states.
    assert ranking['confidence'] < alone['confidence']


def test_lab_takes_its_own_options_and_refuses_a_bad_config(capsys,
                                                             tmp_path):
    import pytest

    with pytest.raises(SystemExit) as exited:
        cli.main(['lab', '--help'])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert 'nova-shadow lab' in out and '--preflight' in out
    bad = tmp_path / 'lab.yaml'
    bad.write_text('hosts:\n  - name: a\n    share: {cpu: -1}\n')
    rc = cli.main(['lab', '--config', str(bad)])
    err = capsys.readouterr().err
    assert rc == 2
    # Where the lab can run the config is checked and named; elsewhere
    # the command says what is missing.
    assert 'hosts[0].share.cpu' in err or 'cannot run here' in err


def test_the_command_module_imports_no_eventlet():
    # ``nova-shadow lab`` starts Nova with native threads, which refuses
    # to run once eventlet is imported; the command imports the oslo
    # libraries that bring it only where a command needs them.
    done = subprocess.run(
        [sys.executable, '-c', 'import sys, shadow_service.cmd.cli; '
         'print("eventlet" in sys.modules)'],
        capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'False'


def test_rpc_wait_before_demo_or_lab_is_refused_by_name(capsys):
    # Before, the wait's value was taken for the sub-command, and the
    # demo's own options were "unrecognized arguments" of nova-shadow.
    for command in ('demo', 'lab'):
        rc = cli.main(['--rpc-wait', '5', command, '--hours', '1'])
        assert rc == 2
        err = capsys.readouterr().err
        assert err.splitlines() == [
            'error: --rpc-wait only applies to show and evaluate --remote '
            '(the commands that ask shadow-service)'], err


@pytest.mark.parametrize('args, says', [
    # Before: "error: Invalid evaluation request: budget_s.(top level):
    # -5.0 is less than or equal to the minimum of 0", once the twin was
    # built (with --remote: once the service had answered).
    (['--budget', '-5'], "argument --budget: must be a number of seconds "
     "above 0 and at most 86400, got '-5'"),
    (['--budget', 'inf'], "argument --budget: must be a number of seconds "
     "above 0 and at most 86400, got 'inf'"),
    (['--vcpus', '0'], "argument --vcpus: must be a whole number from 1 "
     "to 1024, got '0'"),
    (['--vcpus', '2000'], "argument --vcpus: must be a whole number from 1 "
     "to 1024, got '2000'"),
    (['--ram-mb', '-1'], "argument --ram-mb: must be a whole number from "
     "1 to 16777216, got '-1'"),
    (['--disk-gb', '2097152'], "argument --disk-gb: must be a whole number "
     "from 0 to 1048576, got '2097152'"),
], ids=['budget-negative', 'budget-inf', 'vcpus-zero', 'vcpus-above',
        'ram-negative', 'disk-above'])
@pytest.mark.parametrize('where', [[], ['--remote']],
                         ids=['local', 'remote'])
def test_a_number_the_service_would_refuse_is_a_usage_error(capsys, args,
                                                            says, where):
    with pytest.raises(SystemExit) as info:
        cli.main(['evaluate', '--hosts', 'node-01'] + where + args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('usage: nova-shadow evaluate'), err
    assert err.splitlines()[-1] == 'nova-shadow evaluate: error: %s' % says


def test_the_demos_budget_has_the_services_bound(capsys):
    # Before: taken, then refused by the evaluation once the twin ran.
    with pytest.raises(SystemExit) as info:
        cli.main(['demo', '--budget', '90000'])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "nova-shadow demo: error: argument --budget: must be a number of "
        "seconds above 0 and at most 86400, got '90000'")


@pytest.mark.parametrize('args, says', [
    (['evaluate', '--remote', '--hosts', 'node-01', '--cloud', 'mycloud'],
     '--cloud only apply to a local evaluation'),
    (['evaluate', '--remote', '--hosts', 'node-01', '--history', 'memory',
      '--progress', 'never'],
     '--history and --progress only apply to a local evaluation'),
    (['evaluate', '--wait', '--hosts', 'node-01'],
     '--wait only applies with --remote'),
    (['--config-file', '/etc/nova-shadow/x.conf', 'demo'],
     'demo does not read --config-file'),
    (['--rpc-wait', '5', 'evaluate', '--hosts', 'node-01'],
     '--rpc-wait only applies to show and evaluate --remote'),
], ids=['remote-cloud', 'remote-history-progress', 'local-wait',
        'demo-config', 'local-rpc-wait'])
def test_an_option_the_command_would_ignore_is_refused(capsys, args,
                                                       says):
    # Before, each was silently ignored: the remote evaluation ran on the
    # service's cloud, the local one without waiting for anything, the
    # demo on its own settings.  (In this process: the refusal comes
    # before anything is read or asked.)
    rc = cli.main(args)
    out, err = capsys.readouterr()
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    assert says in lines[0], lines
    assert out == ''
