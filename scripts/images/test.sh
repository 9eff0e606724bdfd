#!/usr/bin/env bash
# `make images-test`: build the project's images and run docker-compose.yml on this machine, as an
# operator would, then check it as a user would (tests/images/compose_checks.py) and leave
# nothing behind: no container, network or volume of the test, and no engine it started.
#
# No registry is reachable here, so the images the files name come from local stand-ins
# (scripts/images/standins.sh); images stay in the engine as the layer cache for the next run.
# Figures (build times, sizes) go to stdout and to bench/results/images-test.txt.
#   IMAGES_TEST_GPU=0     skips the GPU image (built on a stand-in of the CUDA base by default)
#   IMAGES_TEST_PYTHON    the interpreter with the project and its test dependencies (.venv/bin/python)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# One run at a time on a machine: the engines that runs start share /var/lib/docker.
exec 9>/tmp/oddasr-images-test.lock
flock 9
python="${IMAGES_TEST_PYTHON:-$root/.venv/bin/python}"
with_gpu="${IMAGES_TEST_GPU:-1}"
state="$(mktemp -d /tmp/oddasr-images-test.XXXXXX)"
results="$root/bench/results/images-test.txt"
mkdir -p "$(dirname "$results")"
: > "$state/figures"
project="oddasr-images-test"
wheel_server_pid=""
engine_ours=""
started_s=$(date +%s)

figure() {  # a line for the summary and the results file
    echo "images-test: $*"
    echo "$*" >> "$state/figures"
}

cleanup() {
    local rc=$?
    set +e
    if [ -n "${DOCKER_HOST:-}" ]; then
        # What the checks left if they stopped early (they bring the stack down themselves).
        docker compose -p "$project" -f docker-compose.yml down -v --remove-orphans >/dev/null 2>&1
        docker ps -aq --filter "label=org.oddasr.images-test" | xargs -r docker rm -f >/dev/null
    fi
    [ -n "$wheel_server_pid" ] && kill "$wheel_server_pid" 2>/dev/null
    if [ -n "$engine_ours" ]; then
        scripts/images/engine.sh stop "$state/engine" || rc=1
    fi
    rm -rf "$state"
    exit "$rc"
}
trap cleanup EXIT

install_start_s=$(date +%s)
scripts/install-system-packages.sh images
DOCKER_HOST="$(scripts/images/engine.sh start "$state/engine")"
export DOCKER_HOST
[ -f "$state/engine/started.pid" ] && engine_ours=1
figure "install (when missing) and start of the engine: $(( $(date +%s) - install_start_s )) s"
echo "images-test: Docker engine at $DOCKER_HOST ($( [ -n "$engine_ours" ] && echo "started for this test" || echo "already running"))"
# The legacy builder (Debian's engine has no buildx): the Dockerfiles need nothing BuildKit adds.
export DOCKER_BUILDKIT=0

timed() {  # timed LABEL COMMAND...
    local label="$1" start_s
    shift
    start_s=$(date +%s)
    "$@"
    figure "$label: $(( $(date +%s) - start_s )) s"
}

weed="$(dirname "$python")/weed"
[ -x "$weed" ] || weed="$(command -v weed)"
timed "stand-in images" scripts/images/standins.sh "$weed" "$([ "$with_gpu" = 1 ] && echo gpu)"

# torch: PyTorch's index is out of reach here, but this machine's pip has the CPU wheel; serve
# it on loopback to the builds (they use the host's network) with PyPI for its dependencies.
torch_args=()
if "$python" -m pip download --quiet --no-deps --only-binary :all: "torch==2.13.0+cpu" -d "$state/wheels" 2>/dev/null; then
    # The same port on every run when it is free: the address is a build argument, and a new
    # value would rebuild every layer after it.
    port="$("$python" -c '
import socket
for port in [*range(38123, 38133), 0]:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            print(s.getsockname()[1])
            break
    except OSError:
        continue')"
    "$python" -m http.server --bind 127.0.0.1 --directory "$state/wheels" "$port" >/dev/null 2>&1 &
    wheel_server_pid=$!
    torch_args=(--build-arg TORCH_INDEX_URL=https://pypi.org/simple
                --build-arg "TORCH_FIND_LINKS=http://127.0.0.1:$port/")
fi

build() {  # build IMAGE DOCKERFILE [ARGS...]
    local image="$1" dockerfile="$2"
    shift 2
    local start_s log="$state/build-${image%%:*}.log"
    start_s=$(date +%s)
    docker build --network host --force-rm -f "$dockerfile" -t "$image" "$@" . > "$log" 2>&1 \
        || { tail -n 40 "$log" >&2; return 1; }
    figure "build of $image ($dockerfile): $(( $(date +%s) - start_s )) s"
    figure "size of $image: $(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
}
build oddasr-api:latest Dockerfile.api
build oddasr-worker:latest Dockerfile.worker "${torch_args[@]}"
if [ "$with_gpu" = 1 ]; then
    build oddasr-worker-gpu:latest Dockerfile.worker-gpu "${torch_args[@]}"
fi
[ -n "$wheel_server_pid" ] && { kill "$wheel_server_pid"; wheel_server_pid=""; }

in_image() {  # in_image IMAGE COMMAND...: run a command in a throwaway container with no network
    docker run --rm --network none --label org.oddasr.images-test --entrypoint "$2" "$1" "${@:3}"
}
# The API image carries no engine.
in_image oddasr-api:latest python -c '
import importlib.util, sys
present = [m for m in ("torch", "funasr", "faster_whisper", "ctranslate2", "onnxruntime") if importlib.util.find_spec(m)]
sys.exit(f"the API image carries engine packages: {present}" if present else 0)'
figure "API image: torch, funasr, faster_whisper, ctranslate2 and onnxruntime absent"
if [ "$with_gpu" = 1 ]; then
    docker run --rm --network none --label org.oddasr.images-test --entrypoint python \
        -v "$root/tests/images/gpu_path_check.py:/tmp/gpu_path_check.py:ro" oddasr-worker-gpu:latest /tmp/gpu_path_check.py
    figure "GPU image: its environment imports every engine and hands CUDA to them when a device is present (simulated)"
fi

# The compose file, up, checked and down: the checks own the stack's life.
timed "compose up, checks and down" env IMAGES_TEST_PROJECT="$project" "$python" -m pytest -p no:cacheprovider \
    -o addopts="" -q tests/images/compose_checks.py

left="$(docker ps -aq --filter "label=com.docker.compose.project=$project")$(docker network ls -q --filter "label=com.docker.compose.project=$project")$(docker volume ls -q --filter "label=com.docker.compose.project=$project")"
[ -z "$left" ] || { echo "images-test: the compose project left containers, networks or volumes behind" >&2; exit 1; }
# Images stay as the layer cache of the next run; those that a newer build replaced (untagged,
# "dangling") go, on an engine of our own only.
[ -n "$engine_ours" ] && docker image prune --force >/dev/null
figure "whole images-test: $(( $(date +%s) - started_s )) s"
{ date -u +"run of %Y-%m-%d %H:%M UTC"; cat "$state/figures"; } > "$results"
echo "images-test: figures in ${results#"$root"/}"
