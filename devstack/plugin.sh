#!/bin/bash
# shellcheck shell=bash
# plugin.sh - devstack plugin of nova-shadow: a phase dispatcher; the work
# is in devstack/lib/nova-shadow.
#
#   [[local|localrc]]
#   enable_plugin nova-shadow <git url> [branch]

# Save trace setting
_XTRACE_NOVA_SHADOW_PLUGIN=$(set +o | grep xtrace)
set -o xtrace

# shellcheck source=devstack/lib/nova-shadow
source "$(dirname "${BASH_SOURCE[0]}")/lib/nova-shadow"

if is_service_enabled shadow-service shadow-watcher; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing nova-shadow"
        install_nova_shadow
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring nova-shadow"
        configure_nova_shadow
        if is_service_enabled key; then
            create_nova_shadow_accounts
        fi
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Initializing and starting nova-shadow"
        init_nova_shadow
        start_nova_shadow
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_nova_shadow
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_nova_shadow
    fi
fi

# Restore xtrace
$_XTRACE_NOVA_SHADOW_PLUGIN
