"""Typed errors that are part of the schema (DESIGN §8), and the few that surface as top-level errors."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

import strawberry

from models.field_errors import FIELD_ERROR_CODE_DESCRIPTIONS
from models.field_errors import FieldErrorCode as FieldErrorCodeEnum
from resolvers.vocabulary import described_enum

logger = logging.getLogger(__name__)

FieldErrorCode = described_enum(
    FieldErrorCodeEnum,
    name="FieldErrorCode",
    description="Why an input field or an import row was refused.",
    values=FIELD_ERROR_CODE_DESCRIPTIONS,
)


def field_error_code(code: str) -> FieldErrorCodeEnum:
    """The enum member of a validator's code; UNKNOWN (logged: a validator's code is missing from the enum) else."""
    member = FieldErrorCodeEnum.of(code)
    if member is FieldErrorCodeEnum.UNKNOWN and code != member.value:
        logger.warning("field error code %r is not in FieldErrorCode", code)
    return member


@strawberry.interface(description="An expected failure of a mutation, returned as a member of its result union.")
class Error:
    message: str = strawberry.field(description="What went wrong, for a person to read.")


@strawberry.type(description="A field of the input that was refused, and why.")
class FieldError:
    field: str = strawberry.field(description="Path of the input field, e.g. `input.schedule.startAt`.")
    code: FieldErrorCode = strawberry.field(description="Why, as a stable code.")  # type: ignore[valid-type]
    message: str = strawberry.field(description="Why the value was refused, for a person to read.")

    def __post_init__(self) -> None:
        # Validators give plain codes (models stay free of GraphQL): one conversion point.
        self.code = field_error_code(str(self.code))


@strawberry.type(description="The input was refused; nothing was changed.")
class InvalidInputError(Error):
    field_errors: list[FieldError] = strawberry.field(description="Every refused field.")


@strawberry.type(description="No object with that id exists in this sandbox.")
class NotFoundError(Error):
    id: strawberry.ID | None = strawberry.field(description="The id that was looked up.")


REFUSED = "The input was refused; nothing was changed."


class Problem(Protocol):
    """A refused field as the models describe it (their validators' problems)."""

    field: str
    code: str
    message: str


def invalid_input(problems: Iterable[Problem], message: str = REFUSED) -> InvalidInputError:
    """The union member for refused fields."""
    return InvalidInputError(
        message=message, field_errors=[FieldError(field=p.field, code=p.code, message=p.message) for p in problems]
    )


def refused_field(field: str, code: str, message: str, *, summary: str = REFUSED) -> InvalidInputError:
    """The union member for one refused field."""
    return InvalidInputError(message=summary, field_errors=[FieldError(field=field, code=code, message=message)])


def not_found(given: Any, message: str = "No such object in this sandbox.") -> NotFoundError:
    return NotFoundError(message=message, id=strawberry.ID(str(given)))


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
