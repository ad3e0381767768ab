from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry

from jobs.events import WORKER_PONG_TOPIC
from models.tenancy.actions import TenancyError, set_sandbox_time_zone
from models.tenancy.audit import AuditEvent as AuditEventModel
from models.tenancy.identity import IdentityNamespace as IdentityNamespaceModel
from resolvers.context import Info
from resolvers.errors import FieldError, InvalidInputError
from resolvers.pagination import Connection, paginate
from resolvers.permissions import ADMIN, VIEWER
from resolvers.tenancy.types import AuditEvent, IdentityNamespace, Sandbox, Viewer
from resolvers.vocabulary import INPUT_ARG


@strawberry.type
class TenancyQuery:
    @strawberry.field(
        description="The caller: sandbox and role (of the API key or the signed-in person).", permission_classes=VIEWER
    )
    def viewer(self, info: Info) -> Viewer:
        caller = info.context.require_caller()
        return Viewer(sandbox=Sandbox(name=caller.sandbox_name), role=caller.role)

    @strawberry.field(description="Audit events of this sandbox, newest first.", permission_classes=VIEWER)
    async def audit_events(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
        object_type: Annotated[str | None, strawberry.argument(description="Only events on this type.")] = None,
    ) -> Connection[AuditEvent]:
        query = AuditEventModel.filter(sandbox_id=info.context.require_caller().sandbox_id)
        if object_type is not None:
            query = query.filter(object_type=object_type)
        return await paginate(
            query,
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=AuditEvent.from_model,
        )

    @strawberry.field(
        description="Identity namespaces of this sandbox: the standard set and custom ones.",
        permission_classes=VIEWER,
    )
    async def identity_namespaces(self, info: Info) -> list[IdentityNamespace]:
        rows = await IdentityNamespaceModel.filter(sandbox_id=info.context.require_caller().sandbox_id).order_by("id")
        return [IdentityNamespace.from_model(row) for row in rows]


@strawberry.input(description="Ask a worker to answer through the event bus.")
class WorkerPingInput:
    message: str = strawberry.field(default="ping", description="Echoed back in the pong (at most 200 characters).")


@strawberry.type(description="The ping was queued; listen on `workerPong` for the answer.")
class WorkerPingSuccess:
    ping_id: str = strawberry.field(description="Identifies the pong that answers this ping.")


@strawberry.type(description="A worker's answer to `workerPing`.")
class WorkerPong:
    ping_id: str = strawberry.field(description="The ping this answers.")
    message: str = strawberry.field(description="The ping's message.")
    worker: str = strawberry.field(description="Host and process id of the worker that ran the job.")
    at: datetime = strawberry.field(description="When the worker answered.")


WorkerPingResult = Annotated[
    WorkerPingSuccess | InvalidInputError,
    strawberry.union("WorkerPingResult", description="Result of `workerPing`."),
]


@strawberry.input(description="Changes to the caller's sandbox; omitted fields stay.")
class SandboxUpdateInput:
    time_zone: strawberry.Maybe[str | None] = strawberry.field(
        default=None,
        description="IANA zone of profiles without a time zone (caps' calendar periods, quiet hours); null = UTC.",
    )


@strawberry.type(description="The sandbox, changed.")
class SandboxUpdateSuccess:
    sandbox: Sandbox = strawberry.field(description="The sandbox now.")


SandboxUpdateResult = Annotated[
    SandboxUpdateSuccess | InvalidInputError,
    strawberry.union("SandboxUpdateResult", description="Result of `sandboxUpdate`."),
]


@strawberry.type
class TenancyMutation:
    @strawberry.mutation(description="Change the caller's sandbox settings (audited).", permission_classes=ADMIN)
    async def sandbox_update(
        self, info: Info, input: Annotated[SandboxUpdateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> SandboxUpdateResult:
        caller = info.context.require_caller()
        if input.time_zone is not None:
            try:
                await set_sandbox_time_zone(caller.sandbox_id, input.time_zone.value, actor=caller.actor)
            except TenancyError as exc:
                return InvalidInputError(
                    message="The input was refused.",
                    field_errors=[FieldError(field="input.timeZone", code="UNKNOWN_TIME_ZONE", message=str(exc))],
                )
        return SandboxUpdateSuccess(sandbox=Sandbox(name=caller.sandbox_name))

    @strawberry.mutation(
        description="Diagnostics: queue a job whose worker publishes a `workerPong` event. Proves that the "
        "queue, a worker and the event bus all work.",
        permission_classes=ADMIN,
    )
    async def worker_ping(
        self, info: Info, input: Annotated[WorkerPingInput, strawberry.argument(description=INPUT_ARG)]
    ) -> WorkerPingResult:
        if len(input.message) > 200:
            return InvalidInputError(
                message="The input was refused.",
                field_errors=[FieldError(field="input.message", code="TOO_LONG", message="At most 200 characters.")],
            )
        caller = info.context.require_caller()
        ping_id = uuid.uuid4().hex
        if info.context.queue is None:
            raise RuntimeError("no job queue configured")
        await info.context.queue.worker_ping(caller.sandbox_id, input.message, ping_id)
        return WorkerPingSuccess(ping_id=ping_id)


@strawberry.type
class TenancySubscription:
    @strawberry.subscription(description="Pongs published by workers in this sandbox.", permission_classes=ADMIN)
    async def worker_pong(self, info: Info) -> AsyncGenerator[WorkerPong, None]:
        caller = info.context.require_caller()
        if info.context.events is None:
            raise RuntimeError("no event bus configured")
        async with info.context.events.subscribe(caller.sandbox_id, WORKER_PONG_TOPIC) as events:
            async for event in events:
                yield WorkerPong(
                    ping_id=event["pingId"],
                    message=event["message"],
                    worker=event["worker"],
                    at=datetime.fromisoformat(event["at"]),
                )
