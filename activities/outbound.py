"""Where a spec may send the worker's requests: ``verify.url``, ``router.admin``, metric addresses.

Refused whatever the settings say: a URL with credentials in it (``user:password@``; the spec is
stored in the history, so credentials come from ``bearerTokenEnv``/``bearerTokenFile``). Refused
unless ``SLUICE_ALLOWED_HOSTS`` names them explicitly (an exact name, an address, or a CIDR inside
the range; never through a wildcard): link-local addresses (169.254.0.0/16, fe80::/10) and cloud
metadata endpoints (169.254.169.254, fd00:ec2::254, 100.100.100.200, ``metadata``,
``metadata.google.internal``). When ``SLUICE_ALLOWED_HOSTS`` is set, every other host must match
one of its host globs, or all its addresses one of its CIDRs.

Names are resolved and every address is checked, so a DNS name that points at a metadata address
is refused too. :class:`GuardedTransport` checks each request again just before it is sent and
sends it to the very address it checked (with the name kept for ``Host`` and TLS), so a name that
resolves elsewhere the second time (DNS rebinding) cannot slip past, nor can a redirect.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import httpx

from activities.errors import NotAllowed

__all__ = ["GuardedAsyncTransport", "GuardedTransport", "HostRule", "OutboundPolicy", "tls_context"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings every client of the worker shares (httpx's default: certifi's CAs, or
    ``SSL_CERT_FILE``/``SSL_CERT_DIR``). Building one loads the CA bundle, about 50 ms of CPU;
    each activity used to pay it per client, plain-HTTP ones too (an Envoy admin call on the path
    from an approval to the new weights). One context serves any number of connections."""
    return httpx.create_ssl_context()


Address = IPv4Address | IPv6Address
_LINK_LOCAL = (ip_network("169.254.0.0/16"), ip_network("fe80::/10"))
_METADATA_ADDRESSES = frozenset(
    ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog"})
_SETTING = "SLUICE_ALLOWED_HOSTS"


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _sensitive(address: Address) -> bool:
    return address in _METADATA_ADDRESSES or any(address in net for net in _LINK_LOCAL)


def _plain(address: Address) -> Address:
    # ::ffff:169.254.169.254 reaches the IPv4 address: judge it as that
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class HostRule:
    """One ``SLUICE_ALLOWED_HOSTS`` entry: a host glob (``*.svc.cluster.local``) or an address
    or CIDR (``10.0.0.0/8``, ``127.0.0.1``)."""

    pattern: str
    network: IPv4Network | IPv6Network | None = None

    @classmethod
    def parse(cls, text: str) -> HostRule:
        """Parse an entry; ``ValueError`` says what is wrong with it."""
        entry = text.strip().lower().rstrip(".")
        try:
            return cls(entry, ip_network(entry, strict=False))
        except ValueError:
            pass
        if not entry or not all(c.isalnum() or c in "-_.*?" for c in entry):
            raise ValueError(f"{text!r} is neither a host glob nor an address or CIDR")
        return cls(entry)

    def matches_name(self, host: str) -> bool:
        """A glob entry matching the host name."""
        return self.network is None and fnmatchcase(host, self.pattern)

    def contains(self, address: Address) -> bool:
        """An address or CIDR entry containing ``address``."""
        network = self.network
        return network is not None and address.version == network.version and address in network

    def names_explicitly(self, host: str, address: Address | None) -> bool:
        """Whether this entry opts in to a link-local or metadata destination: an exact name, or
        an address or CIDR lying inside the sensitive range itself (``0.0.0.0/0`` does not)."""
        if self.network is None:
            return self.pattern == host  # the exact name, never a glob
        if address is None or not self.contains(address):
            return False
        first, last = self.network[0], self.network[-1]
        inside = any(first in net and last in net for net in _LINK_LOCAL if net.version == first.version)
        return inside or (self.network.num_addresses == 1 and address in _METADATA_ADDRESSES)


@dataclass(frozen=True)
class OutboundPolicy:
    """The worker's rules for outbound requests; empty ``allowed_hosts``: any host not refused."""

    allowed_hosts: tuple[HostRule, ...] = ()
    resolver: Callable[[str, int], Iterable[str]] = field(default=_resolve, compare=False)
    """Host, port → addresses (``getaddrinfo``); replaceable so tests never ask a real DNS."""

    def check_url(self, where: str, url: str | httpx.URL) -> tuple[str, int]:
        """Checks that need no resolution; returns the URL's host and port."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise NotAllowed(f"{where}: not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise NotAllowed(f"{where}: only http:// and https:// URLs with a host are allowed")
        if parsed.userinfo:
            raise NotAllowed(
                f"{where}: a URL with credentials (user:password@) is refused, whatever the worker's "
                "settings: the spec is stored in the workflow history (Prometheus takes a token "
                "through bearerTokenEnv or bearerTokenFile)"
            )
        host = parsed.host.lower().rstrip(".")
        if host in _METADATA_NAMES and not any(r.names_explicitly(host, None) for r in self.allowed_hosts):
            raise NotAllowed(self._sensitive_message(where, host, "a cloud metadata name"))
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return host, port

    def check_addresses(self, where: str, host: str, addresses: Iterable[Address]) -> list[Address]:
        """Refuse link-local and metadata addresses, then apply the allowlist; returns them."""
        checked = [_plain(a) for a in addresses]
        for address in checked:
            if _sensitive(address) and not any(r.names_explicitly(host, address) for r in self.allowed_hosts):
                shown = host if host == str(address) else f"{host} ({address})"
                raise NotAllowed(self._sensitive_message(where, shown, "link-local or cloud metadata"))
        if not self.allowed_hosts or any(r.matches_name(host) for r in self.allowed_hosts):
            return checked
        if checked and all(any(r.contains(a) for r in self.allowed_hosts) for a in checked):
            return checked
        allowed = ", ".join(r.pattern for r in self.allowed_hosts)
        raise NotAllowed(
            f"{where}: host {host} is not allowed by this worker ({_SETTING}={allowed}); "
            f"add it, or a CIDR holding its addresses, to {_SETTING}"
        )

    def resolve(self, host: str, port: int) -> list[Address]:
        """The host's addresses (an address literal is itself; no DNS is asked then)."""
        try:
            return [ip_address(host)]
        except ValueError:
            pass
        try:
            return [ip_address(a.split("%", 1)[0]) for a in self.resolver(host, port)]
        except OSError as error:
            raise httpx.ConnectError(f"cannot resolve {host}: {error.strerror or error}") from None

    def check(self, where: str, url: str) -> None:
        """Every check before the first request, resolving the host (blocking: call it from a
        thread). A name that does not resolve passes: its requests fail as unreachable, as they
        would without a policy, and the transport checks again before each one."""
        host, port = self.check_url(where, url)
        try:
            addresses = self.resolve(host, port)
        except httpx.ConnectError:
            return
        self.check_addresses(where, host, addresses)

    async def acheck(self, where: str, url: str) -> None:
        """:meth:`check` without blocking the event loop."""
        await asyncio.to_thread(self.check, where, url)

    @staticmethod
    def _sensitive_message(where: str, host: str, what: str) -> str:
        return (
            f"{where}: {host} is {what}, refused by default; to allow it, name it explicitly in "
            f"{_SETTING} (the exact name, the address, or a CIDR inside 169.254.0.0/16 or fe80::/10)"
        )


def _pinned(request: httpx.Request, address: Address) -> httpx.Request:
    """The same request sent to ``address``; ``Host`` and the TLS server name keep the name."""
    return httpx.Request(
        request.method,
        request.url.copy_with(host=str(address)),
        headers=request.headers,  # holds Host: the name, not the address
        stream=request.stream,
        extensions={**request.extensions, "sni_hostname": request.url.host},
    )


class _Guard:
    """What both transports share: check a request, and remember each host's checked addresses
    for the transport's life (one activity), so a sampling run does not ask DNS per request."""

    def __init__(self, policy: OutboundPolicy, where: str) -> None:
        self.policy = policy
        self.where = where
        self._checked: dict[tuple[str, int], list[Address]] = {}

    def known(self, request: httpx.Request) -> tuple[tuple[str, int], list[Address] | None]:
        key = self.policy.check_url(self.where, request.url)
        return key, self._checked.get(key)

    def remember(self, key: tuple[str, int], addresses: list[Address]) -> list[Address]:
        self._checked[key] = self.policy.check_addresses(self.where, key[0], addresses)
        return self._checked[key]


class GuardedAsyncTransport(httpx.AsyncBaseTransport):
    """An async transport that checks every request against an :class:`OutboundPolicy` (naming
    ``where``, the spec field) and sends it only to the addresses it checked, in turn."""

    def __init__(
        self, policy: OutboundPolicy, where: str, inner: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._guard = _Guard(policy, where)
        self.inner = inner or httpx.AsyncHTTPTransport(verify=tls_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key, addresses = self._guard.known(request)
        if addresses is None:
            resolved = await asyncio.to_thread(self._guard.policy.resolve, *key)
            addresses = self._guard.remember(key, resolved)
        for index, address in enumerate(addresses):
            try:
                return await self.inner.handle_async_request(_pinned(request, address))
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise  # as a connection does, try the next address before giving up
        raise httpx.ConnectError(f"{key[0]} has no address", request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class GuardedTransport(httpx.BaseTransport):
    """The blocking twin of :class:`GuardedAsyncTransport` (routers run in threads)."""

    def __init__(self, policy: OutboundPolicy, where: str, inner: httpx.BaseTransport | None = None) -> None:
        self._guard = _Guard(policy, where)
        self.inner = inner or httpx.HTTPTransport(verify=tls_context())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key, addresses = self._guard.known(request)
        if addresses is None:
            addresses = self._guard.remember(key, self._guard.policy.resolve(*key))
        for index, address in enumerate(addresses):
            try:
                return self.inner.handle_request(_pinned(request, address))
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise httpx.ConnectError(f"{key[0]} has no address", request=request)

    def close(self) -> None:
        self.inner.close()
