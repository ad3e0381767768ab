"""Typed errors that are part of the schema (DESIGN §8), and the few that surface as top-level errors."""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An expected failure of a mutation, returned as a member of its result union.")
class Error:
    message: str = strawberry.field(description="What went wrong, for a person to read.")


@strawberry.type(description="A field of the input that was refused, and why.")
class FieldError:
    field: str = strawberry.field(description="Path of the input field, e.g. `input.schedule.startAt`.")
    code: str = strawberry.field(description="Stable machine-readable reason code.")
    message: str = strawberry.field(description="Why the value was refused.")


@strawberry.type(description="The input was refused; nothing was changed.")
class InvalidInputError(Error):
    field_errors: list[FieldError] = strawberry.field(description="Every refused field.")


@strawberry.type(description="No object with that id exists in this sandbox.")
class NotFoundError(Error):
    id: strawberry.ID | None = strawberry.field(description="The id that was looked up.")


class ClientError(Exception):
    """Raised for failures that must reach the client unmasked as top-level errors (e.g. FORBIDDEN)."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code

    @property
    def extensions(self) -> dict[str, str]:
        return {"code": self.code}


class ForbiddenError(ClientError):
    code = "FORBIDDEN"


@strawberry.type(description="The object's current status does not allow this action; nothing was changed.")
class InvalidStateError(Error):
    current_status: str = strawberry.field(description="The status the object is in.")
    allowed_actions: list[str] = strawberry.field(description="The actions its status allows now.")


@strawberry.type(description="The object changed since it was read (or concurrently); read it again.")
class ConflictError(Error):
    current_version: int | None = strawberry.field(description="The object's version now, when known.")
