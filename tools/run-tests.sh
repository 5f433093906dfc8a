#!/usr/bin/env bash
# Install everything the tests need and run the whole suite.
#
#   tools/run-tests.sh [pytest args]   (default: the whole of tests/)
#
# Creates .venv (or $NOVA_SHADOW_VENV) with the pinned versions from
# upper-constraints.txt, installs and starts the services (tools/
# install-services.sh), runs ruff and then pytest over tests/ (unit,
# functional with Nova's own harness, RabbitMQ and InfluxDB): most tests
# in several processes, then the ones that measure alone (see below).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${NOVA_SHADOW_VENV:-.venv}
# Twice the cores, at most 8: most tests wait (for daemons they start,
# the broker, Nova's services), so on two cores four processes take about
# half the time two do.
CORES=$(nproc 2>/dev/null || echo 1)
DEFAULT_WORKERS=$((CORES * 2))
[ "$DEFAULT_WORKERS" -le 8 ] || DEFAULT_WORKERS=8
WORKERS=${NOVA_SHADOW_TEST_WORKERS:-$DEFAULT_WORKERS}
case "$WORKERS" in
    '' | *[!0-9]* | 0)
        echo "NOVA_SHADOW_TEST_WORKERS: a number of processes of at least" \
             "1, not '$WORKERS'" >&2
        exit 2 ;;
esac
PYTHON=${PYTHON:-python3}

tools/install-services.sh

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -c upper-constraints.txt \
    -r requirements.txt -r test-requirements.txt
# The package with its ``service`` extra (the daemons' dependencies).
"$VENV/bin/pip" install -q -c upper-constraints.txt -e '.[service,cli]'

export NOVA_SHADOW_REQUIRE_SERVICES=1
# Property tests draw the same examples every run (tests/conftest.py).
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
"$VENV/bin/ruff" check .
if [ $# -gt 0 ]; then
    exec "$VENV/bin/pytest" -p no:cacheprovider -q -ra "$@"
fi
# The whole suite in two parts: the tests that measure CPU, throughput or
# time, or use the lab's cgroups (marked ``serial`` by tests/conftest.py)
# run alone, after the others have run in NOVA_SHADOW_TEST_WORKERS
# processes (pytest-xdist; 1 runs them in this process); an idle process
# takes tests queued for a busy one (``--dist worksteal``), so no slow file
# left at the end of one process's queue holds the run up.  Both parts run
# whatever the first one's result; the status is the first failure's.
PARALLEL=()
if [ "$WORKERS" -gt 1 ]; then
    PARALLEL=(-n "$WORKERS" --dist worksteal)
fi
status=0
"$VENV/bin/pytest" -p no:cacheprovider -q -ra "${PARALLEL[@]}" \
    -m "not serial" tests || status=$?
"$VENV/bin/pytest" -p no:cacheprovider -q -ra -m serial tests || \
    { rc=$?; [ "$status" -ne 0 ] || status=$rc; }
exit "$status"
