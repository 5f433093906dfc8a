#!/bin/bash
# shellcheck shell=bash
# The parts of devstack the nova-shadow plugin uses, for
# tests/unit/devstack/test_plugin.py: the variables stack.sh sets, and its
# functions (and the commands it runs) replaced by recorders that append
# "name args..." (shell-quoted) to $HARNESS_RECORD.  iniset / iniget really
# edit the files, ``sudo`` runs its command only when every path in
# it is under $HARNESS_ROOT, and is_service_enabled / enable_service follow
# devstack's rules over ENABLED_SERVICES.
#
# Needs HARNESS_ROOT, HARNESS_RECORD and HARNESS_VENV in the environment.

record() {
    local line
    line=$(printf ' %q' "$@")
    printf '%s\n' "${line# }" >> "$HARNESS_RECORD"
}

# -- variables stack.sh and its libraries set ---------------------------
# The plugin reads them.
# shellcheck disable=SC2034
{
    DEST=$HARNESS_ROOT/opt/stack
    DATA_DIR=$DEST/data
    FILES=$HARNESS_ROOT/devstack/files
    STACK_USER=$(id -un)
    NOVA_CONF_DIR=$HARNESS_ROOT/etc/nova
    NOVA_CONF=$NOVA_CONF_DIR/nova.conf
    NOVA_SHADOW_CONF_DIR=$HARNESS_ROOT/etc/nova-shadow
    SERVICE_HOST=192.0.2.10
    SERVICE_PASSWORD=secretservice
    SERVICE_TIMEOUT=60
    KEYSTONE_SERVICE_URI=http://$SERVICE_HOST/identity
    REGION_NAME=RegionOne
    ENABLE_DEBUG_LOG_LEVEL=True
    PUBLIC_NETWORK_NAME=public
    PUBLIC_NETWORK_GATEWAY=172.24.4.1
    GLOBAL_VENV=True
    DEVSTACK_VENV=$HARNESS_VENV
    RABBIT_USERID=stackrabbit
    RABBIT_PASSWORD=secretrabbit
    RABBIT_HOST=$SERVICE_HOST
    ENABLED_SERVICES=${ENABLED_SERVICES:-key,n-api,n-sch,n-cond,n-cpu,g-api,q-svc,placement-api,rabbit,mysql}
    DISABLED_SERVICES=${DISABLED_SERVICES:-}
}
export OS_CLOUD=devstack-admin

# -- functions: services ------------------------------------------------
is_service_enabled() {
    local service
    for service in "$@"; do
        [[ ,$ENABLED_SERVICES, =~ ,$service, ]] && return 0
        [[ $service == neutron && ,$ENABLED_SERVICES =~ ,q- ]] && return 0
        [[ $service == nova && ,$ENABLED_SERVICES =~ ,n- ]] && return 0
        [[ $service == glance && ,$ENABLED_SERVICES =~ ,g- ]] && return 0
    done
    return 1
}

enable_service() {
    record enable_service "$@"
    local service
    for service in "$@"; do
        [[ ,$DISABLED_SERVICES, =~ ,$service, ]] && continue
        is_service_enabled "$service" || ENABLED_SERVICES+=,$service
    done
}

echo_summary() { record echo_summary "$@"; }
die() { record die "$@"; echo "die: $*" >&2; exit 1; }
get_python_exec_prefix() {
    if [[ $GLOBAL_VENV == True ]]; then
        echo "$DEVSTACK_VENV/bin"
    else
        echo /usr/local/bin
    fi
}
setup_develop() { record setup_develop "$@"; }
install_package() { record install_package "$@"; }
stop_service() { record stop_service "$@"; }
# Like devstack's, both act only on enabled services.
run_process() { is_service_enabled "$1" && record run_process "$@"; true; }
stop_process() { is_service_enabled "$1" && record stop_process "$@"; true; }
wait_for_service() { record wait_for_service "$@"; }
upload_image() { record upload_image "$@"; }

# -- functions: configuration ---------------------------------------------
# "option = value" lines, as devstack's own write them; awk keeps a run of
# the plugin quick (ini.py does the same from Python).
iniset() {
    [[ -f $1 ]] || : > "$1"
    S="[$2]" O=$3 V=$4 awk '
        BEGIN { s = ENVIRON["S"]; o = ENVIRON["O"]; v = ENVIRON["V"] }
        $0 == s { print; insec = 1; next }
        /^\[/ { if (insec && !done) { print o " = " v; done = 1 }; insec = 0 }
        insec && !done && index($0, o " =") == 1 {
            print o " = " v; done = 1; next }
        { print }
        END { if (!done) { if (!insec) print s; print o " = " v } }
    ' "$1" > "$1.new" && mv "$1.new" "$1"
}
iniget() {
    [[ -f $1 ]] || return 0
    S="[$2]" O=$3 awk '
        BEGIN { s = ENVIRON["S"]; o = ENVIRON["O"] }
        /^\[/ { insec = ($0 == s); next }
        insec && index($0, o " =") == 1 {
            sub(/^[^=]*= ?/, ""); print; exit }
    ' "$1"
}
get_transport_url() {
    echo "rabbit://$RABBIT_USERID:$RABBIT_PASSWORD@$RABBIT_HOST:5672/${1:-}"
}
get_notification_url() {
    echo "rabbit://$RABBIT_USERID:$RABBIT_PASSWORD@$RABBIT_HOST:5672/${1:-}"
}
iniset_rpc_backend() {
    iniset "$2" "${3:-DEFAULT}" transport_url "$(get_transport_url "${4:-}")"
}

# -- functions: keystone ----------------------------------------------------
get_or_create_project() { record get_or_create_project "$@"; echo "project-$1"; }
get_or_create_user() { record get_or_create_user "$@"; echo "user-$1"; }
get_or_add_user_project_role() {
    record get_or_add_user_project_role "$@"; echo "role-$1"
}

# -- commands ------------------------------------------------------------
openstack() {
    record openstack "$@"
    # Nothing exists yet: "show" finds nothing.
    [[ " $* " == *" show "* ]] && return 1
    return 0
}
wget() {
    record wget "$@"
    local out=
    while [[ $# -gt 0 ]]; do
        [[ $1 == -O ]] && out=$2
        shift
    done
    echo "fake image" > "$out"
}
virt-customize() { record virt-customize "$@"; }
sudo() {
    record sudo "$@"
    local arg
    for arg in "$@"; do
        if [[ $arg == /* && $arg != "$HARNESS_ROOT"/* ]]; then
            echo "sudo: not running outside $HARNESS_ROOT: $*" >&2
            return 0
        fi
    done
    "$@"
}
