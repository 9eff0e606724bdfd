"""Where the API and its neighbours listen: addresses, ports, TLS, the Host guard, Flower."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from shared.config.lists import split_list


class ServerSettings(BaseModel):
    """The HTTP API's and the websocket ports' addresses, their TLS, and the names they answer to."""

    host: str = "127.0.0.1"
    port: int = 9002
    ws_host: str = "127.0.0.1"
    ws_port: int = 8101
    #: Concurrent connections (greenlets) per API process: uploads, waits and websockets.
    api_max_connections: int = 2000
    api_processes: int = 1
    #: Host names the API answers to, besides the loopback names, IP addresses, this machine's
    #: name and the bound `host` / `ws_host` (comma-separated in the environment; `.example.com`
    #: also allows its subdomains; `*` turns the check off). A request whose Host header names
    #: another host, or a browser's request whose Origin does, is refused with 403: a page
    #: whose DNS name rebinds to 127.0.0.1 cannot drive a local install. `null` lets pages
    #: opened from a file (Origin: null) open websockets.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    flower_port: int = 5555
    flower_basic_auth: str = ""
    enable_flower: bool = True
    #: FunASR runtime clients' port (plain, or TLS with enable_https); 0 turns it off.
    funasr_ws_port: int = 10095
    #: The original's enable_https / ssl_cert_path / ssl_key_path: TLS on the websocket ports.
    enable_https: bool = False
    ssl_cert_path: str = ""
    ssl_key_path: str = ""
    #: TLS on the HTTP API's port too, with the same certificate: the web page's microphone
    #: works only on https (or localhost), so a page opened from another machine needs it.
    https_api: bool = False

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _allowed_hosts_list(cls, value: object) -> object:
        return split_list(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        """Names compare case-insensitively, without a port (the Host header's port is ignored)."""
        names = [name.strip().lower() for name in value if name.strip()]
        for name in names:
            if "/" in name or (":" in name and not _is_ip_literal(name)):
                raise ValueError(f"allowed_hosts: {name!r} is not a host name: give names like asr.example.com,"
                                 " .example.com or *, without a scheme or port")
        return names

    @property
    def api_base_url(self) -> str:
        """Where this machine's clients reach the API (the CLI's default server)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{'https' if self.https_api else 'http'}://{host}:{self.port}"


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True
