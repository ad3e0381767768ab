"""Signed tokens of the public tracking URLs (open pixel, click redirect, unsubscribe). Pure.

A token names a delivery (and, for a click, a tracked link) and carries an HMAC-SHA256 tag, truncated to 128
bits, over the purpose and the ids. The key is derived from SECRET_KEY with HKDF under its own label, so a
tag is useless for anything else the secret protects. Form: `{delivery}.{tag}` or `{delivery}.{link}.{tag}`,
ids in lower-case base 36 without leading zeros (one spelling per value), the tag in unpadded base64url —
URL-safe as is, 25 to 40 characters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"herald/tracking-tokens/v1"
_TAG_BYTES = 16
_ID = r"[1-9a-z][0-9a-z]{0,12}"
_TAG = r"[A-Za-z0-9_-]{22}"
_SHAPE = {
    False: re.compile(rf"({_ID})\.({_TAG})"),
    True: re.compile(rf"({_ID})\.({_ID})\.({_TAG})"),
}
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class TokenPurpose(StrEnum):
    OPEN = "o"
    CLICK = "c"
    UNSUBSCRIBE = "u"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    purpose: TokenPurpose
    delivery_id: int
    link_id: int | None = None


def _b36(value: int) -> str:
    if value <= 0:
        raise ValueError("ids are positive")
    out = []
    while value:
        value, digit = divmod(value, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


class TokenSigner:
    """Signs and verifies tracking tokens with a key derived from SECRET_KEY."""

    __slots__ = ("_key",)

    def __init__(self, secret_key: str | bytes) -> None:
        raw = secret_key.encode() if isinstance(secret_key, str) else secret_key
        if not raw:
            raise ValueError("an empty SECRET_KEY cannot sign tokens")
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)

    def __repr__(self) -> str:
        return "TokenSigner(<key hidden>)"

    def _tag(self, purpose: TokenPurpose, delivery: str, link: str) -> str:
        mac = hmac.digest(self._key, f"{purpose.value}|{delivery}|{link}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac[:_TAG_BYTES]).rstrip(b"=").decode("ascii")

    def sign(self, purpose: TokenPurpose, delivery_id: int, link_id: int | None = None) -> str:
        if (purpose is TokenPurpose.CLICK) != (link_id is not None):
            raise ValueError("a click token names a link; other tokens do not")
        delivery = _b36(delivery_id)
        if link_id is None:
            return f"{delivery}.{self._tag(purpose, delivery, '')}"
        link = _b36(link_id)
        return f"{delivery}.{link}.{self._tag(purpose, delivery, link)}"

    def verify(self, purpose: TokenPurpose, token: str) -> TokenClaims | None:
        """The claims of a genuine token for `purpose`; None for anything forged, altered or truncated."""
        match = _SHAPE[purpose is TokenPurpose.CLICK].fullmatch(token)
        if match is None:
            return None
        if purpose is TokenPurpose.CLICK:
            delivery, link, tag = match.groups()
        else:
            (delivery, tag), link = match.groups(), ""
        if not hmac.compare_digest(self._tag(purpose, delivery, link), tag):
            return None
        return TokenClaims(purpose, int(delivery, 36), int(link, 36) if link else None)
