"""``nova-shadow lab`` and repeated SIGTERM / Ctrl-C: the first one stops
the lab in order, later ones do not cut that clean-up short (each is
noted), and the third Ctrl-C forces an exit. Real signals to a real
process whose clean-up waits for the test's go-ahead.
"""

import os
import signal
import subprocess
import sys

from nova_shadow_lab import command

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

# The command's shape: a body that runs until a signal (or ends by itself
# with 'end'), then a clean-up that lasts until stdin says 'go'.
COMMAND = r'''
import sys, time
from nova_shadow_lab import command

signals = command.ShutdownSignals().install()
try:
    try:
        with command._stopping_in_order(signals):
            print('working', flush=True)
            if sys.argv[1] != 'end':
                time.sleep(30)
    finally:
        print('cleaning', flush=True)
        sys.stdin.readline()
        print('cleaned', flush=True)
except command.Terminated:
    print('terminated', flush=True)
except KeyboardInterrupt:
    print('interrupted', flush=True)
finally:
    signals.restore()
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
    assert code == 0
    assert out == ['cleaned', 'terminated']
    assert notes == [
        'nova-shadow lab: SIGTERM: still stopping the lab in order; '
        'Ctrl-C 3 more times to force\n',
        'nova-shadow lab: SIGINT: still stopping the lab in order; '
        'Ctrl-C 2 more times to force\n',
        'nova-shadow lab: SIGTERM: still stopping the lab in order; '
        'Ctrl-C 2 more times to force\n',
        'nova-shadow lab: SIGINT: still stopping the lab in order; '
        'Ctrl-C 1 more time to force\n']


def test_a_signal_during_a_clean_up_of_its_own_is_noted_not_raised():
    code, out, notes = _run('end', None, [signal.SIGTERM])
    assert code == 0
    assert out == ['cleaned']
    assert len(notes) == 1 and 'SIGTERM: still stopping' in notes[0]


def test_the_third_ctrl_c_forces_an_exit_and_says_so():
    code, out, notes = _run('wait', signal.SIGINT,
                            [signal.SIGINT, signal.SIGINT])
    assert code == command.FORCED_EXIT_CODE == 130
    assert out == []
    assert 'Ctrl-C 1 more time to force' in notes[0]
    assert notes[1].startswith('nova-shadow lab: forced to stop: clean-up '
                               'cut short')
