"""``nova-shadow lab`` and repeated SIGTERM / Ctrl-C: the first one stops
the lab in order, later ones do not cut that clean-up short (each is
noted), the third Ctrl-C forces an exit, and the first signal decides the
exit code whenever it came, during the lab's own stop too. Real signals
to a real process that runs its body as the command does
(``command.exit_code``) and whose clean-up waits for the test's go-ahead.
"""

import os
import signal
import subprocess
import sys

from nova_shadow_lab import command

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

# The command's shape: a body that runs until a signal (or ends by itself
# with 'end'), then a clean-up that lasts until stdin says 'go'; its exit
# code is the command's.
COMMAND = r'''
import sys, time
from nova_shadow_lab import command


def body():
    try:
        with command._stopping_in_order(signals, sys.stdout):
            print('working', flush=True)
            if sys.argv[1] != 'end':
                time.sleep(30)
    finally:
        print('cleaning', flush=True)
        sys.stdin.readline()
        print('cleaned', flush=True)
    return 0


signals = command.ShutdownSignals().install()
sys.exit(command.exit_code(body, signals))
'''


def _command(how):
    return subprocess.Popen(
        [sys.executable, '-c', COMMAND, how], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_and_wait_for_note(process, signum):
    process.send_signal(signum)
    return process.stderr.readline()


def _run(how, first, during):
    """Start, send ``first`` (unless None), then each of ``during`` in the
    clean-up; returns (exit code, stdout lines, stderr notes)."""
    process = _command(how)
    try:
        assert process.stdout.readline() == 'working\n'
        if first is not None:
            process.send_signal(first)
        # The clean-up has begun: the command is stopping the lab.
        assert process.stdout.readline() == '\n'
        assert process.stdout.readline() == 'stopping the lab\n'
        assert process.stdout.readline() == 'cleaning\n'
        notes = [_signal_and_wait_for_note(process, signum)
                 for signum in during]
        out, err = process.communicate('go\n', timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out.split(), notes + err.splitlines()


def test_signals_during_the_clean_up_after_sigterm_do_not_cut_it_short():
    code, out, notes = _run('wait', signal.SIGTERM,
                            [signal.SIGTERM, signal.SIGINT, signal.SIGTERM,
                             signal.SIGINT])
    assert code == 128 + signal.SIGTERM == 143
    assert out == ['cleaned']
    assert notes == [
        'nova-shadow lab: SIGTERM: still stopping the lab in order; '
        'Ctrl-C 3 more times to force\n',
        'nova-shadow lab: SIGINT: still stopping the lab in order; '
        'Ctrl-C 2 more times to force\n',
        'nova-shadow lab: SIGTERM: still stopping the lab in order; '
        'Ctrl-C 2 more times to force\n',
        'nova-shadow lab: SIGINT: still stopping the lab in order; '
        'Ctrl-C 1 more time to force\n',
        'nova-shadow lab: terminated (SIGTERM); the lab was stopped']


def test_a_sigterm_during_the_labs_own_stop_finishes_it_then_exits_143():
    """The run ended by itself and the lab is stopping: the SIGTERM does
    not cut that short, and the command then exits as terminated."""
    code, out, notes = _run('end', None, [signal.SIGTERM])
    assert code == 128 + signal.SIGTERM
    assert out == ['cleaned']
    assert notes == [
        'nova-shadow lab: SIGTERM: still stopping the lab in order; '
        'Ctrl-C 3 more times to force\n',
        'nova-shadow lab: terminated (SIGTERM) while it stopped; the lab '
        'was stopped']


def test_a_ctrl_c_during_the_labs_own_stop_exits_130():
    code, out, notes = _run('end', None, [signal.SIGINT])
    assert code == 128 + signal.SIGINT
    assert out == ['cleaned']
    assert notes[1:] == ['nova-shadow lab: interrupted while it stopped; '
                         'the lab was stopped']


def test_without_a_signal_the_exit_code_is_the_runs():
    code, out, notes = _run('end', None, [])
    assert code == 0
    assert out == ['cleaned']
    assert notes == []


def test_the_third_ctrl_c_forces_an_exit_and_says_so():
    code, out, notes = _run('wait', signal.SIGINT,
                            [signal.SIGINT, signal.SIGINT])
    assert code == command.FORCED_EXIT_CODE == 130
    assert out == []
    assert 'Ctrl-C 1 more time to force' in notes[0]
    assert notes[1].startswith('nova-shadow lab: forced to stop: clean-up '
                               'cut short')
