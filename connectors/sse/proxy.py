"""Which forward proxy a request goes through: ``SSE_PROXY``, or the environment's
``https_proxy``/``http_proxy``/``all_proxy`` and ``no_proxy`` read as curl reads them.

curl's rules (its manual, "ENVIRONMENT"): the scheme's own variable, lower case, then
upper case, except ``HTTP_PROXY``, which it never reads in upper case (a CGI server
sets ``HTTP_PROXY`` from a request's ``Proxy:`` header: "httpoxy"); then ``all_proxy``.
``no_proxy`` is a comma-separated list of hosts, each also matching its subdomains (a
leading dot is allowed), IP addresses and CIDR ranges, or ``*`` for every host; a proxy
given explicitly is skipped for those hosts too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3

__all__ = ["Proxy", "bypassed", "pool_manager", "proxy_for"]


@dataclass(frozen=True)
class Proxy:
    """A forward proxy: its URL without credentials, and the credentials apart (never in
    a repr, a log line or an error)."""

    url: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> Proxy:
        """``http://user:pass@host:port`` (a bare ``host:port`` is http, as for curl)."""
        given = text.strip()
        if "://" not in given:
            given = f"http://{given}"
        parts = urlsplit(given)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a proxy URL is http://host:port or https://host:port")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        port = f":{parts.port}" if parts.port else ""
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(f"{parts.scheme}://{host}{port}", user, password)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password,) if s)


def _environment_proxy(scheme: str, environ: Mapping[str, str]) -> str | None:
    names = ["https_proxy", "HTTPS_PROXY"] if scheme == "https" else ["http_proxy"]
    for name in [*names, "all_proxy", "ALL_PROXY"]:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``host`` is in a ``no_proxy`` list."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip(".").rstrip(".")
        if host == name or host.endswith(f".{name}"):
            return True
    return False


def proxy_for(url: str, explicit: str | None, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy ``url`` goes through: ``explicit`` (``SSE_PROXY``) or the environment's,
    unless ``no_proxy`` lists the host; None: straight to the server."""
    parts = urlsplit(url)
    no_proxy = environ.get("no_proxy", "") or environ.get("NO_PROXY", "")
    if parts.hostname is None or bypassed(parts.hostname, no_proxy):
        return None
    chosen = explicit if explicit else _environment_proxy(parts.scheme, environ)
    return Proxy.parse(chosen) if chosen else None


def pool_manager(
    url: str,
    proxy: Proxy | None,
    *,
    verify: bool,
    ca_certs: str | None,
    num_pools: int,
    maxsize: int,
) -> urllib3.PoolManager:
    """A pool for ``url``: straight, or through ``proxy`` (a CONNECT tunnel for https,
    so that TLS runs end to end with the server; the proxy's credentials in
    ``Proxy-Authorization``)."""
    kwargs: dict[str, Any] = {"num_pools": num_pools, "maxsize": maxsize}
    if urlsplit(url).scheme == "https":
        kwargs["cert_reqs"] = "CERT_REQUIRED" if verify else "CERT_NONE"
        if ca_certs:
            kwargs["ca_certs"] = ca_certs
    if proxy is None:
        return urllib3.PoolManager(**kwargs)
    headers = None
    if proxy.username is not None:
        headers = urllib3.make_headers(proxy_basic_auth=f"{proxy.username}:{proxy.password or ''}")
    return urllib3.ProxyManager(proxy.url, proxy_headers=headers, **kwargs)
