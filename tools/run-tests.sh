#!/usr/bin/env bash
# Install everything the tests need and run the whole suite.
#
#   tools/run-tests.sh [pytest args]   (default: the whole of tests/)
#
# Creates .venv (or $NOVA_SHADOW_VENV) with the pinned versions from
# upper-constraints.txt, installs and starts the services (tools/
# install-services.sh), runs ruff and then pytest over tests/ (unit,
# functional with Nova's own harness, RabbitMQ and InfluxDB).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${NOVA_SHADOW_VENV:-.venv}
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
if [ $# -eq 0 ]; then
    set -- tests
fi
exec "$VENV/bin/pytest" -p no:cacheprovider -q -ra "$@"
