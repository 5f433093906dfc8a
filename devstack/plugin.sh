#!/bin/bash
# devstack plugin for nova-shadow: a phase dispatcher; the work lives in
# devstack/lib/nova-shadow.
#
#   enable_plugin nova-shadow <git url> [branch]

source $DEST/nova-shadow/devstack/lib/nova-shadow

if is_service_enabled shadow-service; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing nova-shadow"
        install_nova_shadow
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring nova-shadow"
        configure_nova_shadow
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting nova-shadow"
        start_nova_shadow
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_nova_shadow
    fi
    if [[ "$1" == "clean" ]]; then
        cleanup_nova_shadow
    fi
fi
