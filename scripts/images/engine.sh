#!/usr/bin/env bash
# A Docker engine for `make images-test`:
#   engine.sh start STATE_DIR   prints the DOCKER_HOST to use: the running engine's when one
#                               answers, else one it starts itself (and records in STATE_DIR)
#   engine.sh stop STATE_DIR    stops only the engine that `start` started, and removes what
#                               that engine left on the host (its sockets, its bridge)
#
# The engine it starts touches no firewall and no sysctl (--iptables=false, --ip-forward=false,
# --ip-masq=false) and makes no default bridge (--bridge=none): others on this machine build
# network-namespace test beds whose bridges rely on the FORWARD policy and ip_forward as they
# are. Builds use the host's network (`docker build --network host`); the compose network
# needs neither NAT nor forwarding (containers talk on one bridge; published ports go through
# docker-proxy on 127.0.0.1). Its state (images kept as the layer cache) is in /var/lib/docker.
set -euo pipefail
action="${1:?start or stop}"
state="${2:?state directory}"
mkdir -p "$state"

firewall_snapshot() {
    # What the engine must leave as it was: filter-table policies and chains, nat chains, ip_forward.
    { iptables -S 2>/dev/null || true; iptables -t nat -S 2>/dev/null || true
      sysctl -n net.ipv4.ip_forward 2>/dev/null || true; } | LC_ALL=C sort
}

case "$action" in
start)
    if [ -n "${DOCKER_HOST:-}" ] && docker version >/dev/null 2>&1; then
        echo "$DOCKER_HOST"; exit 0
    fi
    if docker -H unix:///var/run/docker.sock version >/dev/null 2>&1; then
        echo "unix:///var/run/docker.sock"; exit 0
    fi
    command -v dockerd >/dev/null || { echo "dockerd is missing: scripts/install-system-packages.sh images" >&2; exit 1; }
    run="$state/run"
    mkdir -p "$run"
    firewall_snapshot > "$state/firewall.before"
    host="unix://$run/docker.sock"
    dockerd --host "$host" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
        --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
        >"$state/dockerd.log" 2>&1 &
    echo $! > "$state/started.pid"
    for _ in $(seq 1 120); do
        if docker -H "$host" version >/dev/null 2>&1; then echo "$host"; exit 0; fi
        kill -0 "$(cat "$state/started.pid")" 2>/dev/null || break
        sleep 0.5
    done
    echo "dockerd did not come up; its log:" >&2
    tail -n 30 "$state/dockerd.log" >&2
    exit 1
    ;;
stop)
    [ -f "$state/started.pid" ] || exit 0   # not ours: leave it running
    pid="$(cat "$state/started.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && { echo "dockerd $pid did not stop in 30 s; killing it" >&2; kill -KILL "$pid"; }
    fi
    rm -f "$state/started.pid"
    # Anything of the engine's still mounted under its exec root (netns files of containers).
    if [ -d "$state/run" ]; then
        { grep -o " $state/run/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mountpoint; do
            umount "$mountpoint" 2>/dev/null || true
        done
        rm -rf "$state/run"
    fi
    if [ -f "$state/firewall.before" ]; then
        # Others may change the firewall meanwhile (their own test beds): a difference is
        # reported, never undone. Chains named DOCKER* are an engine's alone: none may remain.
        firewall_snapshot > "$state/firewall.after"
        diff -u "$state/firewall.before" "$state/firewall.after" >&2 \
            && echo "firewall and ip_forward as before the engine started" >&2 \
            || echo "note: the firewall or ip_forward changed while the engine ran (diff above)" >&2
        if grep -q -- '-N DOCKER' "$state/firewall.after" && ! grep -q -- '-N DOCKER' "$state/firewall.before"; then
            echo "the engine left DOCKER chains in iptables" >&2
            exit 1
        fi
        rm -f "$state/firewall.before" "$state/firewall.after"
    fi
    ;;
*) echo "usage: engine.sh start|stop STATE_DIR" >&2; exit 2 ;;
esac
