"""Outbound connections to ADMIN-chosen hosts under the egress policy (models.egress_rules).

A name is resolved once, every address it resolves to is checked, and the connection goes to a checked
address: nothing resolves the name again between the check and the connect (no DNS rebinding). TLS still
verifies the certificate against the name. HTTP clients follow no redirects and ignore proxy variables.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable

import httpcore
import httpx

from models.egress_rules import (
    REFUSED_MESSAGE,
    EgressPolicy,
    IPAddress,
    address_category,
    literal_address,
    normalise_host,
    numeric_ipv4,
)

logger = logging.getLogger(__name__)

__all__ = ["EgressRefused", "checked_addresses", "egress_client", "open_socket"]

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class EgressRefused(Exception):
    """The target is not allowed. Its message is the same for every refusal (it describes nothing)."""

    def __init__(self) -> None:
        super().__init__(REFUSED_MESSAGE)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = literal_address(str(sockaddr[0]).split("%")[0])
        if address is not None and address not in found:
            found.append(address)
    return found


async def checked_addresses(
    host: str, port: int, policy: EgressPolicy, resolver: Resolver | None = None
) -> list[IPAddress]:
    """The addresses to connect to, in order; EgressRefused when the host or any address it resolves to is
    refused (a name may not mix a public address with an internal one). Resolution errors (OSError) pass."""
    name = normalise_host(host)
    literal = literal_address(name)
    if literal is None and numeric_ipv4(name) is not None:
        _refuse(name, "non-canonical numeric host")
    if literal is not None:
        if not policy.address_allowed(literal):
            _refuse(name, address_category(literal))
        return [literal]
    addresses = await (resolver or system_resolver)(name, port)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    if policy.host_allowed(name):
        return addresses
    for address in addresses:
        if not policy.address_allowed(address):
            _refuse(name, f"{address_category(address)} address {address}")
    return addresses


def _refuse(host: str, why: str | None) -> typing.NoReturn:
    # The operator's log says why; the caller only learns that the policy refused.
    logger.warning("egress refused", extra={"host": host, "reason": why})
    raise EgressRefused()


async def open_socket(
    host: str, port: int, policy: EgressPolicy, timeout: float, resolver: Resolver | None = None
) -> socket.socket:
    """A TCP socket connected to a checked address of `host` (for aiosmtplib's `sock=`)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        addresses = await checked_addresses(host, port, policy, resolver)
        error: OSError | None = None
        for address in addresses:
            sock = socket.socket(socket.AF_INET6 if address.version == 6 else socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (str(address), port))
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return sock
    assert error is not None
    raise error


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to checked addresses of the request's host."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self.resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await checked_addresses(host, port, self.policy, self.resolver)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("name resolution timed out") from exc
        except OSError as exc:  # httpx maps httpcore errors only; the cause stays for the caller to classify
            raise httpcore.ConnectError(str(exc)) from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, *args: typing.Any, **kwargs: typing.Any) -> httpcore.AsyncNetworkStream:
        raise EgressRefused()

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: EgressPolicy, *, limits: httpx.Limits, resolver: Resolver | None = None) -> None:
        super().__init__(limits=limits, trust_env=False)
        ssl_context: ssl.SSLContext = httpx.create_ssl_context(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(policy, resolver),
        )


def egress_client(
    policy: EgressPolicy,
    *,
    timeout: float,
    max_connections: int = 10,
    connect_timeout: float = 10.0,
    resolver: Resolver | None = None,
) -> httpx.AsyncClient:
    """An httpx client under the policy: pinned connections, no redirects, no proxies from the environment,
    bounded connect (resolution included) and read times."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        transport=PinnedTransport(policy, limits=limits, resolver=resolver),
        timeout=httpx.Timeout(timeout, connect=min(timeout, connect_timeout)),
        follow_redirects=False,
        trust_env=False,
    )
