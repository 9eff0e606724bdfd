"""An HTTP session that connects only to addresses the SSRF guard allows.

The check sits where the socket is opened: the host is resolved once, every address is
checked, and the socket connects to that exact checked address (TLS still verifies the
certificate against the host name and sends it as SNI). So no name can resolve to one address
for the check and another for the connection (DNS rebinding), and the peer address of the
open socket is checked again before a byte is sent. Proxies from the environment are ignored
(`trust_env = False`): a proxy would be the address connected to, not the receiver.

With an `AttemptDeadline`, the lookup and the connect fit in what is left of it and every
socket opened is cut when it passes (see worker.services.attempt_deadline).
"""

from __future__ import annotations

import ipaddress
import socket

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from shared.webhooks.ssrf_guard import AddressRefused, IpNetwork, parse_networks, refusal_reason
from worker.services.attempt_deadline import AttemptDeadline


def guarded_connect(host: str, port: int, timeout_s: float | None, allowed: tuple[IpNetwork, ...],
                    socket_options: list[tuple[int, int, int | bytes]] | None = None,
                    deadline: AttemptDeadline | None = None) -> socket.socket:
    """Resolve `host`, refuse forbidden addresses, connect to the first allowed one that answers."""
    refused: list[str] = []
    last_error: OSError | None = None
    addresses = (deadline.resolve(host, port) if deadline is not None
                 else socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
    for family, kind, proto, _name, sockaddr in addresses:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        reason = refusal_reason(address, allowed)
        if reason:
            refused.append(reason)
            continue
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if deadline is not None:
                deadline.watch(sock)
                left_s = deadline.remaining_s()
                timeout_s = left_s if timeout_s is None else min(timeout_s, left_s)
            if timeout_s is not None:
                sock.settimeout(timeout_s)
            sock.connect(sockaddr)
            peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%")[0])
            peer_reason = refusal_reason(peer, allowed)
            if peer_reason:
                raise AddressRefused(f"connected peer {peer_reason}")
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
        except AddressRefused:
            sock.close()
            raise
    if last_error is not None:
        raise last_error
    raise AddressRefused(f"{host} resolves only to refused addresses: {'; '.join(refused) or 'none'}")


class _GuardedConnectionMixin:
    allowed: tuple[IpNetwork, ...] = ()
    deadline: AttemptDeadline | None = None

    def _new_conn(self) -> socket.socket:
        try:
            return guarded_connect(self._dns_host, self.port, self.timeout,  # type: ignore[attr-defined]
                                   self.allowed, self.socket_options, self.deadline)  # type: ignore[attr-defined]
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[attr-defined, arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from exc  # type: ignore[attr-defined]
        except AddressRefused:
            raise
        except OSError as exc:
            raise NewConnectionError(self, f"failed to connect: {exc}") from exc  # type: ignore[arg-type]


def guarded_session(allowed_networks: list[str], deadline: AttemptDeadline | None = None) -> requests.Session:
    """A requests session for webhooks: guarded connections, no proxies, no .netrc; with a
    deadline, one whose every socket ends when the deadline passes."""
    allowed = parse_networks(allowed_networks)
    attributes = {"allowed": allowed, "deadline": deadline}
    http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), attributes)
    https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), attributes)
    http_pool = type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: object, **kwargs: object) -> None:
            super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
            self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}

    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
