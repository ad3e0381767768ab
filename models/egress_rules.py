"""Pure egress rules (SSRF policy): which addresses Herald may connect to when an ADMIN chooses the host.

Used by every outbound connection a sandbox can aim (SMTP, SMS and push providers, FCM token exchange,
webhooks). Public addresses are allowed; loopback, private, link-local, CGNAT, multicast, unspecified and
reserved ones (also hidden in IPv4-mapped, 6to4, Teredo and NAT64 IPv6 forms) are refused unless the
operator's EGRESS_ALLOW lists them. Decided without connecting or resolving: jobs.channels.egress resolves
names and applies `EgressPolicy.address_allowed` to what it will connect to. No network, no ORM.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

POLICY_SETTING = "EGRESS_ALLOW"
# The one message callers see for a refusal: it names the policy and says nothing about the target.
REFUSED_MESSAGE = f"Address not allowed by the egress policy (an operator can allow it with {POLICY_SETTING})."
# Loopback only: the embedded default outside production, so the local SMTP sink and test servers work.
DEV_DEFAULT_ALLOW = "127.0.0.0/8,::1/128"

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_SHARED = IPv4Network("100.64.0.0/10")  # CGNAT (RFC 6598): ipaddress calls it neither private nor global
_NAT64 = (IPv6Network("64:ff9b::/96"), IPv6Network("64:ff9b:1::/48"))
# What inet_aton (and so getaddrinfo) reads as IPv4: 1-4 parts in decimal, octal (0...) or hex (0x...).
_NUMERIC_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
_HOST_NAME = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def embedded_ipv4(address: IPv6Address) -> list[IPv4Address]:
    """IPv4 addresses an IPv6 address reaches through a translation (mapped, 6to4, Teredo, NAT64)."""
    found: list[IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in net for net in _NAT64):
        found.append(IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def address_category(address: IPAddress) -> str | None:
    """Why an address is not public ("loopback", "private", ...), or None for a public address."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:  # the same host as its IPv4 address
            return address_category(address.ipv4_mapped)
        if any(address in net for net in _NAT64):  # DNS64 networks reach every IPv4 host this way
            return address_category(IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in embedded_ipv4(address):
            if (category := address_category(inner)) is not None:
                return category
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, IPv4Address) and address in _SHARED:
        return "shared (CGNAT)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-global"
    return None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Exceptions to the public-only rule: networks, and host names ("*.example.com" for a whole domain)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: tuple[str, ...] = ()

    def address_allowed(self, address: IPAddress) -> bool:
        candidates = [address]
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)  # an allowed IPv4 network covers its mapped form
        if any(c in net for c in candidates for net in self.networks if net.version == c.version):
            return True
        return address_category(address) is None

    def host_allowed(self, host: str) -> bool:
        """Whether the operator allowed this name, whatever it resolves to."""
        name = normalise_host(host)
        for allowed in self.hosts:
            if name == allowed or (allowed.startswith("*.") and name.endswith(allowed[1:])):
                return True
        return False


@functools.lru_cache(maxsize=16)  # Settings.egress_policy parses it for every adapter a job builds
def parse_allow(text: str) -> EgressPolicy:
    """EGRESS_ALLOW: comma- or space-separated CIDRs, addresses and host names. ValueError names a bad entry."""
    networks: list[IPNetwork] = []
    hosts: list[str] = []
    for entry in re.split(r"[,\s]+", text.strip()):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = normalise_host(entry)
        if not _HOST_NAME.match(name) or numeric_ipv4(name) is not None:
            raise ValueError(f"{POLICY_SETTING}: {entry!r} is neither a CIDR, an IP address nor a host name")
        hosts.append(name)
    return EgressPolicy(tuple(networks), tuple(hosts))


def normalise_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def literal_address(host: str) -> IPAddress | None:
    """The host as an IP address when written as one in canonical form (brackets and zone ids refused)."""
    try:
        address = ipaddress.ip_address(host.strip("[]") if host.startswith("[") else host)
    except ValueError:
        return None
    return address if not (isinstance(address, IPv6Address) and address.scope_id) else None


def numeric_ipv4(host: str) -> IPv4Address | None:
    """The address inet_aton would read from a numeric host such as 2130706433, 0x7f000001 or 127.1."""
    parts = host.rstrip(".").split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    try:
        values = [int(p, 16) if p[:2].lower() == "0x" else int(p, 8) if p.startswith("0") else int(p) for p in parts]
    except ValueError:  # "08": not octal, and inet_aton refuses it too
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for index, part in enumerate(head):
        value += part << (8 * (3 - index))
    return IPv4Address(value)


def host_problem(host: str, policy: EgressPolicy) -> tuple[str, str] | None:
    """Input check of a host an ADMIN typed: (code, message) when refused, None otherwise.

    Literal addresses are classified here; names are resolved and checked again at connect time.
    """
    name = normalise_host(host)
    address = literal_address(name)
    if address is None and numeric_ipv4(name) is not None:
        # Libraries read such hosts differently; only the canonical dotted form is accepted.
        return "INVALID_HOST", "Write an IPv4 address in dotted-decimal form (such as 192.0.2.1)."
    if address is not None:
        return None if policy.address_allowed(address) else ("ADDRESS_NOT_ALLOWED", REFUSED_MESSAGE)
    if policy.host_allowed(name):
        return None
    if (name == "localhost" or name.endswith(".localhost")) and not policy.address_allowed(IPv4Address("127.0.0.1")):
        return "ADDRESS_NOT_ALLOWED", REFUSED_MESSAGE  # RFC 6761: always loopback
    return None


# The policy of ENV=dev without EGRESS_ALLOW; also the default of adapters built outside the worker (tests).
DEV_POLICY = parse_allow(DEV_DEFAULT_ALLOW)
