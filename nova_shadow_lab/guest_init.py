"""The lab instance's init: runs the user-data plan inside the sandbox.

Runs as the sandbox's first command under bubblewrap, with the system
``/usr/bin/python3`` and the standard library only (a guest has nothing
else). Its stdout and stderr are the instance's console. It reads the plan
that :mod:`nova_shadow_lab.userdata` built (``/.lab/plan.json``), then as
cloud-init does: writes ``write_files``, runs the ``runcmd`` script
(``/var/lib/cloud/instance/scripts/runcmd``) or the ``#!`` user script
(``.../scripts/part-001``), writes ``/var/lib/cloud/instance/boot-finished``
and stays up until the instance is deleted. User-data runs once per
instance: as cloud-init's semaphores, ``.../sem/user-data`` is written
before it runs, so a power-off and power-on skips it even when its
scripts were still running (a workload started by ``runcmd`` usually
is); ``boot-finished`` is written at the end of every boot.

Every step is a JSON line in ``/.lab/log`` (kept host-side as the
instance's ``init.log``). Change what the guest does at boot here.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time

PLAN = '/.lab/plan.json'
LOG = '/.lab/log'
INSTANCE_DIR = '/var/lib/cloud/instance'
BOOT_FINISHED = INSTANCE_DIR + '/boot-finished'
# Written before the user-data runs (cloud-init's per-instance semaphore).
USER_DATA_SEM = INSTANCE_DIR + '/sem/user-data'
_START = time.monotonic()


def log(event, **fields):
    fields.update(event=event, t=round(time.time(), 3),
                  uptime_s=round(time.monotonic() - _START, 3))
    try:
        with open(LOG, 'a', encoding='utf-8') as f:
            f.write(json.dumps(fields, sort_keys=True) + '\n')
    except OSError:
        pass


def say(message):
    sys.stdout.write('lab-init: %s\n' % message)
    sys.stdout.flush()


def write_file(entry):
    path = entry['path']
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    data = base64.b64decode(entry['content_b64'])
    with open(path, 'ab' if entry['append'] else 'wb') as f:
        f.write(data)
    os.chmod(path, entry['mode'])
    return len(data)


def run_script(name, content, argv_prefix=()):
    scripts = os.path.join(INSTANCE_DIR, 'scripts')
    os.makedirs(scripts, exist_ok=True)
    path = os.path.join(scripts, name)
    with open(path, 'wb') as f:
        f.write(content)
    os.chmod(path, 0o700)
    started = time.monotonic()
    say('running %s' % path)
    try:
        code = subprocess.call(list(argv_prefix) + [path], cwd='/')
    except OSError as exc:
        say('%s failed to start: %s' % (path, exc))
        log('script', path=path, error=str(exc))
        return
    seconds = time.monotonic() - started
    say('%s exited with %d after %.2f s' % (path, code, seconds))
    log('script', path=path, exit_code=code, seconds=round(seconds, 3),
        content=content.decode('utf-8', 'replace')[:4000])


def run_plan(plan):
    for entry in plan['write_files']:
        try:
            size = write_file(entry)
        except (OSError, ValueError) as exc:
            say('write_files: %s: %s' % (entry['path'], exc))
            log('write_file', path=entry['path'], error=str(exc))
            continue
        log('write_file', path=entry['path'], bytes=size,
            mode='%04o' % entry['mode'], append=entry['append'])
    if plan['runcmd'] is not None:
        run_script('runcmd', plan['runcmd'].encode('utf-8'), ('/bin/sh',))
    if plan['script_b64'] is not None:
        run_script('part-001', base64.b64decode(plan['script_b64']))


def main():
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with open(PLAN, encoding='utf-8') as f:
        plan = json.load(f)
    say('instance %s booting (user-data: %s)'
        % (plan.get('instance', '?'), plan['kind']))
    log('boot', kind=plan['kind'], pid=os.getpid())
    for error in plan['errors']:
        say('user-data error: %s: %s' % (error['field'], error['message']))
        log('error', **error)
    if plan['ignored_modules']:
        say('ignored cloud-config modules: %s'
            % ', '.join(plan['ignored_modules']))
        log('ignored_modules', modules=plan['ignored_modules'])
    if os.path.exists(USER_DATA_SEM):
        say('user-data already ran on this instance; not again')
        log('skip', reason='%s exists' % USER_DATA_SEM)
    else:
        os.makedirs(os.path.dirname(USER_DATA_SEM), exist_ok=True)
        with open(USER_DATA_SEM, 'w') as f:
            f.write('%.3f\n' % time.time())
        run_plan(plan)
    os.makedirs(INSTANCE_DIR, exist_ok=True)
    with open(BOOT_FINISHED, 'w') as f:
        f.write('%.3f\n' % time.time())
    say('boot finished after %.2f s' % (time.monotonic() - _START))
    log('finished')
    while True:
        signal.pause()


if __name__ == '__main__':
    main()
