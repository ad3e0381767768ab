"""Encryption at rest for provider secrets: AES-256-GCM under a key derived from SECRET_KEY with HKDF.

The stored form is text: `v1.` + urlsafe-base64(nonce ‖ ciphertext+tag). The associated data binds a blob to
its sandbox and purpose, so a blob copied into another sandbox's row does not decrypt.
"""

from __future__ import annotations

import base64
import os

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1."
_INFO = b"herald/message-preset-secrets/v1"


class SecretsUnreadableError(Exception):
    """The blob was not written with this SECRET_KEY (or was altered)."""


class SecretBox:
    __slots__ = ("_aead",)

    def __init__(self, secret_key: bytes | str) -> None:
        raw = secret_key.encode() if isinstance(secret_key, str) else secret_key
        if not raw:
            raise ValueError("an empty SECRET_KEY cannot protect secrets")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def seal(self, values: dict[str, str], *, sandbox_id: int) -> str | None:
        """None for no secrets, so an empty set stores as NULL."""
        if not values:
            return None
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, orjson.dumps(values), _aad(sandbox_id))
        return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, blob: str | None, *, sandbox_id: int) -> dict[str, str]:
        if not blob:
            return {}
        if not blob.startswith(VERSION):
            raise SecretsUnreadableError("unknown secrets format")
        try:
            raw = base64.urlsafe_b64decode(blob[len(VERSION) :].encode())
            plain = self._aead.decrypt(raw[:12], raw[12:], _aad(sandbox_id))
        except (InvalidTag, ValueError) as error:
            raise SecretsUnreadableError("secrets cannot be decrypted with this SECRET_KEY") from error
        values = orjson.loads(plain)
        return {str(k): str(v) for k, v in values.items()}


def _aad(sandbox_id: int) -> bytes:
    return f"message_preset:{sandbox_id}".encode()
