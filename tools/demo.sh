#!/usr/bin/env bash
# Install nova-shadow and run the main job on the embedded twin:
#
#   tools/demo.sh [nova-shadow demo options]
#
# No cloud, broker or database server is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${NOVA_SHADOW_VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -c upper-constraints.txt -r requirements.txt
# The daemons and commands need the ``service`` extra.
"$VENV/bin/pip" install -q -c upper-constraints.txt -e '.[service]'
exec "$VENV/bin/nova-shadow" demo "$@"
