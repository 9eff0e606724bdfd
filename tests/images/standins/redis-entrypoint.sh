#!/bin/sh
# As the official image's entrypoint: a redis-server started with no configuration file
# answers other hosts (protected mode off); the compose network is its only reach.
set -e
if [ "$1" = "redis-server" ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi
exec "$@"
