#!/usr/bin/env bash
# Install and start the services the test suite talks to, on loopback only.
#
# - Debian packages: influxdb (the tests start their own influxd on a free
#   port), prometheus and prometheus-node-exporter (the tests start their
#   own on free ports), fio and stress-ng (loadgen's reference peers),
#   bubblewrap (the lab's sandboxes), rabbitmq-server.
# - RabbitMQ: started on 127.0.0.1:5672 (guest/guest) unless something
#   already listens there.
# - Redis (redis-server): started on 127.0.0.1:6379 unless something already
#   listens there (shadow-watcher's leader election).
# Safe to run again; it changes nothing that is already in place.
set -euo pipefail

need=()
command -v influxd >/dev/null || need+=(influxdb)
command -v fio >/dev/null || need+=(fio)
command -v stress-ng >/dev/null || need+=(stress-ng)
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null \
    || need+=(prometheus-node-exporter)
command -v bwrap >/dev/null || need+=(bubblewrap)
# The devstack plugin's scripts are checked with it (0.9.0 on bookworm).
command -v shellcheck >/dev/null || need+=(shellcheck)

listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

if ! listening 5672 && [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    need+=(rabbitmq-server)
fi
if ! listening 6379 && ! command -v redis-server >/dev/null; then
    need+=(redis-server)
fi

if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian packages: ${need[*]} (run as root to install)" >&2
        exit 1
    fi
    echo "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" \
        >/dev/null
fi

if ! listening 5672; then
    dir=${NOVA_SHADOW_RABBIT_DIR:-/var/tmp/nova-shadow-rabbitmq}
    mkdir -p "$dir"
    echo '[].' > "$dir/enabled_plugins"
    echo "starting RabbitMQ on 127.0.0.1:5672 (state in $dir)"
    (
        export HOME=$dir RABBITMQ_NODENAME=rabbit@localhost
        export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=5672
        export RABBITMQ_DIST_PORT=25672 ERL_EPMD_ADDRESS=127.0.0.1
        export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log
        export RABBITMQ_PID_FILE=$dir/rabbit.pid
        export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
        nohup /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/server.out" 2>&1 &
    )
    for _ in $(seq 60); do
        listening 5672 && break
        sleep 1
    done
    listening 5672 || { echo "RabbitMQ did not start; see $dir" >&2; exit 1; }
fi
if ! listening 6379; then
    # shadow-watcher's leader election (tooz) tests; loopback only, no
    # persistence.
    echo "starting Redis on 127.0.0.1:6379"
    redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
        --daemonize yes >/dev/null
    for _ in $(seq 20); do
        listening 6379 && break
        sleep 0.5
    done
    listening 6379 || { echo "Redis did not start" >&2; exit 1; }
fi
echo "services ready: influxd $(command -v influxd)," \
    "prometheus $(command -v prometheus), RabbitMQ on 5672, Redis on 6379"
