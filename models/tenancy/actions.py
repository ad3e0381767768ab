"""Domain actions on sandboxes and API keys: one transaction each, audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import available_timezones

from tortoise.transactions import in_transaction

from models.tenancy.audit import record_audit
from models.tenancy.identity import STANDARD_NAMESPACES, IdentityNamespace
from models.tenancy.sandbox import ApiKey, Role, Sandbox, hash_api_key, new_api_key, validate_sandbox_name


class TenancyError(Exception):
    """An expected refusal, with a message meant for the operator."""


async def create_sandbox(name: str, *, actor: str) -> Sandbox:
    problem = validate_sandbox_name(name)
    if problem:
        raise TenancyError(f"sandbox name {name!r} {problem}")
    async with in_transaction() as conn:
        if await Sandbox.filter(name=name).using_db(conn).exists():
            raise TenancyError(f"sandbox {name!r} already exists")
        sandbox = await Sandbox.create(name=name, using_db=conn)
        await IdentityNamespace.bulk_create(
            [
                IdentityNamespace(
                    sandbox_id=sandbox.id, code=code, name=label, type=kind, description=text, standard=True
                )
                for code, label, kind, text in STANDARD_NAMESPACES
            ],
            using_db=conn,
        )
        await record_audit(
            sandbox_id=sandbox.id,
            actor=actor,
            action="CREATE",
            object_type="Sandbox",
            object_id=sandbox.id,
            after={"name": name},
            using_db=conn,
        )
    return sandbox


async def create_api_key(sandbox_name: str, role: Role, *, name: str, actor: str) -> tuple[ApiKey, str]:
    """Returns the stored key and its plaintext, which is never stored and cannot be shown again."""
    plaintext = new_api_key()
    async with in_transaction() as conn:
        sandbox = await Sandbox.get_or_none(name=sandbox_name).using_db(conn)
        if sandbox is None:
            raise TenancyError(f"sandbox {sandbox_name!r} does not exist")
        key = await ApiKey.create(
            sandbox_id=sandbox.id,
            name=name,
            role=role,
            display_prefix=plaintext[:12],
            key_hash=hash_api_key(plaintext),
            using_db=conn,
        )
        await record_audit(
            sandbox_id=sandbox.id,
            actor=actor,
            action="CREATE",
            object_type="ApiKey",
            object_id=key.id,
            after={"name": name, "role": role.value, "displayPrefix": key.display_prefix},
            using_db=conn,
        )
    return key, plaintext


_REVOKED_LISTENERS: list[Callable[[int], None]] = []


def on_api_key_revoked(listener: Callable[[int], None]) -> None:
    """`listener(key_id)` runs after a revocation commits in this process (the API's key cache listens)."""
    _REVOKED_LISTENERS.append(listener)


async def revoke_api_key(key_id: int, *, actor: str) -> ApiKey:
    async with in_transaction() as conn:
        key = await ApiKey.get_or_none(id=key_id).using_db(conn)
        if key is None:
            raise TenancyError(f"API key {key_id} does not exist")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
            await key.save(update_fields=["revoked_at"], using_db=conn)
            await record_audit(
                sandbox_id=key.sandbox_id,
                actor=actor,
                action="REVOKE",
                object_type="ApiKey",
                object_id=key.id,
                before={"revoked": False},
                after={"revoked": True},
                using_db=conn,
            )
    for listener in _REVOKED_LISTENERS:
        listener(key.id)
    return key


async def authenticate_api_key(plaintext: str) -> ApiKey | None:
    """The active key matching `plaintext`, with its sandbox loaded; None for unknown or revoked keys."""
    if not plaintext.startswith("hrld_") or len(plaintext) > 100:
        return None
    return (
        await ApiKey.filter(key_hash=hash_api_key(plaintext), revoked_at__isnull=True).select_related("sandbox").first()
    )


async def set_sandbox_time_zone(sandbox_id: int, time_zone: str | None, *, actor: str) -> Sandbox:
    """The zone of profiles without one (None = UTC), audited. Raises TenancyError for an unknown zone."""
    if time_zone is not None and time_zone not in available_timezones():
        raise TenancyError("Give an IANA time zone, e.g. Europe/Paris.")
    async with in_transaction() as conn:
        sandbox = await Sandbox.select_for_update().using_db(conn).get(id=sandbox_id)
        before = sandbox.time_zone
        if before != time_zone:
            sandbox.time_zone = time_zone
            await sandbox.save(using_db=conn, update_fields=["time_zone"])
            await record_audit(
                sandbox_id=sandbox_id,
                actor=actor,
                action="UPDATE",
                object_type="Sandbox",
                object_id=sandbox_id,
                before={"timeZone": before},
                after={"timeZone": time_zone},
                using_db=conn,
            )
    return sandbox
