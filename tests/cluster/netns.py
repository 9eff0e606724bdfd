"""Hosts on one machine: network namespaces on one bridge, and the faults a network has.

Every host is a network namespace `oddc-<host>` with one veth link to the bridge `oddc-br0`
and its own address in `SUBNET`; the machine itself (this test's driver) has `BRIDGE_ADDRESS`
on the bridge. Everything made here is named with `PREFIX`, so `cleanup()` finds what a run
that was killed left behind (namespaces, their processes, links, firewall rules) by name alone.

Docker (when it runs on the same machine) sets the FORWARD policy to DROP, and with
`br_netfilter` loaded frames crossing a Linux bridge go through that chain: the bridge is told
not to hand its frames to iptables (`nf_call_iptables 0`) and, for kernels that ignore that, one
ACCEPT rule for the bridge, tagged with `RULE_COMMENT`, is put first in FORWARD. Nothing of
docker's is touched.

A process is put on a host by spawning it from a thread that entered the host's namespace
(`on_host`): children inherit the thread's network namespace, and sockets the thread opens
belong to it too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PREFIX = "oddc-"
BRIDGE = f"{PREFIX}br0"
SUBNET = "10.231.0"
BRIDGE_ADDRESS = f"{SUBNET}.1"
RULE_COMMENT = "oddasr-cluster-test"
#: Each run's hosts' data directories and logs live in a temp directory named so.
RUN_DIR_PREFIX = "oddasr-cluster-"
NETNS_DIR = Path("/run/netns")

# Python 3.11 has no os.setns / os.unshare: libc's, loaded once (never after a fork).
_LIBC = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUTS = 0x04000000


def _setns(fd: int) -> None:
    if _LIBC.setns(fd, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")


def own_hostname(name: str) -> None:
    """In a child before exec: a UTS namespace of its own named `name`, so the host's
    processes report their host's name (worker ids, Celery node names, capacity by host)."""
    raw = name.encode()
    if _LIBC.unshare(_CLONE_NEWUTS) != 0 or _LIBC.sethostname(raw, len(raw)) != 0:
        raise OSError(ctypes.get_errno(), "could not take a host name")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


def namespace(host: str) -> str:
    return f"{PREFIX}{host}"


def create_bridge() -> None:
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "link", "set", BRIDGE, "type", "bridge", "nf_call_iptables", "0", check=False)
    sh("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    for rule in _forward_rules():
        sh("iptables", "-I", "FORWARD", "1", *rule)


def _forward_rules() -> list[list[str]]:
    return [["-i", BRIDGE, "-o", BRIDGE, "-m", "comment", "--comment", RULE_COMMENT, "-j", "ACCEPT"]]


def add_host(host: str, address: str) -> None:
    """A namespace with loopback and one link to the bridge at `address`."""
    ns = namespace(host)
    outside = f"oddcv-{host}"[:15]
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
    sh("ip", "link", "set", outside, "master", BRIDGE, "up")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")


@contextlib.contextmanager
def on_host(host: str | None) -> Iterator[None]:
    """Run the block in `host`'s network namespace (None: the machine's own): the processes
    it spawns and the sockets it opens live there. Only this thread moves."""
    if host is None:
        yield
        return
    with open("/proc/thread-self/ns/net") as back, open(NETNS_DIR / namespace(host)) as there:
        _setns(there.fileno())
        try:
            yield
        finally:
            _setns(back.fileno())


_HOME_NS = os.open("/proc/thread-self/ns/net", os.O_RDONLY)


def go_home() -> None:
    """Back to the machine's own network namespace (where the bridge and its rules live)."""
    _setns(_HOME_NS)


def enter_for_good(host: str) -> None:
    """Move this thread into `host` until it moves again (the client's view of the cluster)."""
    with open(NETNS_DIR / namespace(host)) as there:
        _setns(there.fileno())


def host_pids(host: str) -> list[int]:
    """Every process of the host: all that live in its network namespace."""
    result = sh("ip", "netns", "pids", namespace(host), check=False)
    return [int(pid) for pid in result.stdout.split()]


def signal_host(host: str, sig: int) -> int:
    """Send `sig` to every process of the host (SIGKILL: the host dies; SIGSTOP: it freezes;
    SIGCONT: it thaws). Returns how many processes got it."""
    pids = host_pids(host)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return len(pids)


def partition(host: str, peer_address: str) -> None:
    """Drop every packet between `host` and `peer_address`, in the host's own firewall."""
    ns = namespace(host)
    sh("ip", "netns", "exec", ns, "iptables", "-I", "OUTPUT", "-d", peer_address, "-j", "DROP")
    sh("ip", "netns", "exec", ns, "iptables", "-I", "INPUT", "-s", peer_address, "-j", "DROP")


def heal(host: str, peer_address: str) -> None:
    ns = namespace(host)
    sh("ip", "netns", "exec", ns, "iptables", "-D", "OUTPUT", "-d", peer_address, "-j", "DROP", check=False)
    sh("ip", "netns", "exec", ns, "iptables", "-D", "INPUT", "-s", peer_address, "-j", "DROP", check=False)


def leftovers() -> list[str]:
    """What a run left behind, by name: namespaces, links, FORWARD rules."""
    go_home()
    found = [f"netns {name}" for name in sh("ip", "netns", "list", check=False).stdout.split()
             if name.startswith(PREFIX)]
    links = sh("ip", "-o", "link", "show", check=False).stdout
    found += [f"link {part.split('@')[0]}" for line in links.splitlines()
              for part in line.split(":")[1:2] if part.strip().startswith(("oddc", PREFIX))]
    rules = sh("iptables", "-S", "FORWARD", check=False).stdout
    found += [f"rule {line}" for line in rules.splitlines() if RULE_COMMENT in line]
    return found


def cleanup(keep_logs: bool = False) -> list[str]:
    """Remove everything a run made (this one or one that was killed), its hosts' data and logs
    too unless `keep_logs`; returns what it removed."""
    go_home()
    removed = []
    for name in sh("ip", "netns", "list", check=False).stdout.split():
        if not name.startswith(PREFIX):
            continue
        host = name.removeprefix(PREFIX)
        for sig in (signal.SIGCONT, signal.SIGKILL):  # a frozen process must wake to die quickly
            signal_host(host, sig)
        sh("ip", "netns", "delete", name, check=False)
        removed.append(f"netns {name}")
    for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(("oddcv-", PREFIX)):
            sh("ip", "link", "delete", name, check=False)
            removed.append(f"link {name}")
    for rule in _forward_rules():
        while sh("iptables", "-D", "FORWARD", *rule, check=False).returncode == 0:
            removed.append(f"rule {' '.join(rule)}")
    for directory in [] if keep_logs else Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*"):
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(f"directory {directory}")
    return removed


if __name__ == "__main__":  # `python -m tests.cluster.netns`: what `make cluster-test` runs on exit
    import sys

    for item in cleanup(keep_logs="--keep-logs" in sys.argv):
        sys.stdout.write(f"removed {item}\n")
