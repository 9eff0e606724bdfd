#!/usr/bin/env bash
# Local stand-ins for the registry images that Dockerfile.* and docker-compose.yml name, built
# from Debian's packages and tagged with exactly those names, so that the project's files build
# and run unchanged on a machine that reaches no image registry. An image of that name that is
# not a stand-in (pulled from a registry) is used as it is. Needs DOCKER_HOST set.
#   standins.sh WEED_BINARY [gpu]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
standins="$root/tests/images/standins"
weed="${1:?path of the weed binary}"
with_gpu="${2:-}"
minbase="oddasr-standin/bookworm-minbase:latest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

timed() {  # timed LABEL COMMAND...: runs it, prints how long it took
    local label="$1" start_s
    shift
    start_s=$(date +%s)
    "$@"
    echo "images-test: $label took $(( $(date +%s) - start_s )) s"
}

make_minbase() {
    # Debian's minbase (apt, no Python) imported as an image: the root of every stand-in.
    local rootfs="$work/rootfs"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" http://deb.debian.org/debian \
        >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; return 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$minbase" >/dev/null
    rm -rf "$rootfs"
}

quietly() {  # run a command, showing its output only when it fails
    "$@" >"$work/output.log" 2>&1 || { tail -n 40 "$work/output.log" >&2; return 1; }
}

is_registry_image() {  # an image of this name exists and is no stand-in of ours
    local label
    label="$(docker image inspect --format '{{ index .Config.Labels "org.oddasr.standin" }}' "$1" 2>/dev/null)" || return 1
    [ -z "$label" ]
}

standin() {  # standin IMAGE DOCKERFILE [FILE...]: build IMAGE from DOCKERFILE, FILEs in its context
    local image="$1" dockerfile="$2" context="$work/context-${2%%.*}" recipe
    shift 2
    if is_registry_image "$image"; then
        echo "images-test: $image is a registry image here; using it as it is"
        return
    fi
    mkdir -p "$context"
    cp "$standins/$dockerfile" "$standins"/*.sh "$context/"
    [ $# -eq 0 ] || cp "$@" "$context/"
    # The recipe: this stand-in's own files, so that changing one stand-in rebuilds only it.
    local own=("$context/$dockerfile")
    [ -f "$context/${dockerfile%%.*}-entrypoint.sh" ] && own+=("$context/${dockerfile%%.*}-entrypoint.sh")
    recipe="$(cat "${own[@]}" "$@" | sha256sum | cut -c1-16)"
    timed "stand-in $image" quietly docker build --network host --force-rm --build-arg "STANDIN_RECIPE=$recipe" \
        -f "$context/$dockerfile" -t "$image" "$context"
}

docker image inspect "$minbase" >/dev/null 2>&1 || timed "debootstrap of the stand-ins' Debian root" make_minbase
cp /etc/ssl/certs/ca-certificates.crt "$work/host-ca-bundle.crt"
standin python:3.11-slim-bookworm python.Dockerfile "$work/host-ca-bundle.crt"
standin redis:7.4-alpine redis.Dockerfile
standin postgres:16-alpine postgres.Dockerfile
cp "$weed" "$work/weed"
standin chrislusf/seaweedfs:3.80 seaweedfs.Dockerfile "$work/weed"
if [ "$with_gpu" = gpu ]; then
    standin nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 cuda.Dockerfile "$work/host-ca-bundle.crt"
fi
