"""Queries, mutations and the subscription of message presets. The domain decides (models/presets/actions.py);
this module translates inputs and maps the domain's refusals to result-union members."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from strawberry import relay

from models.presets.actions import (
    UNCHANGED,
    PresetConflictError,
    PresetInvalidInputError,
    PresetInvalidStateError,
    PresetNotFoundError,
    update_preset,
)
from models.presets.actions import PresetInUseError as PresetInUse
from models.presets.actions import create_preset as create_preset_action
from models.presets.lifecycle import activate_preset, deactivate_preset, delete_preset, submit_validation
from models.presets.preset import PRESET_STATUS_TOPIC
from models.presets.preset import MessagePreset as MessagePresetModel
from models.presets.rules import Channel as ChannelEnum
from models.presets.rules import PresetStatus as PresetStatusEnum
from models.presets.rules import PresetUpdateStatus as PresetUpdateStatusEnum
from models.presets.secret_box import SecretBox
from resolvers.context import Info
from resolvers.errors import ConflictError, FieldError, InvalidInputError, InvalidStateError, NotFoundError
from resolvers.nodes import parse_pk
from resolvers.pagination import Connection, paginate
from resolvers.permissions import ADMIN, VIEWER
from resolvers.presets.inputs import (
    MessagePresetActivateInput,
    MessagePresetCreateInput,
    MessagePresetDeactivateInput,
    MessagePresetDeleteInput,
    MessagePresetUpdateInput,
    MessagePresetValidateInput,
    settings_change,
)
from resolvers.presets.types import (
    MessageChannel,
    MessagePreset,
    MessagePresetStatus,
    PresetCheck,
    PresetInUseError,
    PresetUpdateStatus,
)
from resolvers.vocabulary import INPUT_ARG


@strawberry.type(description="The preset was created as DRAFT.")
class MessagePresetCreateSuccess:
    preset: MessagePreset = strawberry.field(description="The new preset.")


@strawberry.type(description="The preset was changed.")
class MessagePresetUpdateSuccess:
    preset: MessagePreset = strawberry.field(description="The preset after the change.")
    validation_queued: bool = strawberry.field(
        description="New settings of an ACTIVE preset are being validated; they apply once they pass."
    )


@strawberry.type(description="The preset is PROCESSING: its provider checks run in the background.")
class MessagePresetValidateSuccess:
    preset: MessagePreset = strawberry.field(description="The preset being validated.")


@strawberry.type(description="The preset is ACTIVE again.")
class MessagePresetActivateSuccess:
    preset: MessagePreset = strawberry.field(description="The preset.")


@strawberry.type(description="The preset is DEACTIVATED.")
class MessagePresetDeactivateSuccess:
    preset: MessagePreset = strawberry.field(description="The preset.")


@strawberry.type(description="The preset was deleted.")
class MessagePresetDeleteSuccess:
    deleted_id: strawberry.ID = strawberry.field(description="Global id of the deleted preset.")


MessagePresetCreateResult = Annotated[
    MessagePresetCreateSuccess | InvalidInputError,
    strawberry.union("MessagePresetCreateResult", description="Result of `messagePresetCreate`."),
]
MessagePresetUpdateResult = Annotated[
    MessagePresetUpdateSuccess | InvalidInputError | NotFoundError | InvalidStateError | ConflictError,
    strawberry.union("MessagePresetUpdateResult", description="Result of `messagePresetUpdate`."),
]
MessagePresetValidateResult = Annotated[
    MessagePresetValidateSuccess | NotFoundError | InvalidStateError | ConflictError,
    strawberry.union("MessagePresetValidateResult", description="Result of `messagePresetValidate`."),
]
MessagePresetActivateResult = Annotated[
    MessagePresetActivateSuccess | NotFoundError | InvalidStateError | ConflictError,
    strawberry.union("MessagePresetActivateResult", description="Result of `messagePresetActivate`."),
]
MessagePresetDeactivateResult = Annotated[
    MessagePresetDeactivateSuccess | NotFoundError | InvalidStateError | PresetInUseError | ConflictError,
    strawberry.union("MessagePresetDeactivateResult", description="Result of `messagePresetDeactivate`."),
]
MessagePresetDeleteResult = Annotated[
    MessagePresetDeleteSuccess | NotFoundError | InvalidStateError | PresetInUseError,
    strawberry.union("MessagePresetDeleteResult", description="Result of `messagePresetDelete`."),
]


@strawberry.type(description="A preset's status (or the status of its pending edit) changed.")
class MessagePresetStatusEvent:
    preset_id: strawberry.ID = strawberry.field(description="Global id of the preset.")
    status: MessagePresetStatus = strawberry.field(description="The preset's status now.")
    update_status: PresetUpdateStatus | None = strawberry.field(description="State of a pending edit, if any.")
    version: int = strawberry.field(description="The preset's version after the change.")
    failed_checks: list[PresetCheck] = strawberry.field(description="Failed checks of the last validation.")


def _preset_pk(node_id: str) -> int | None:
    """The database id of a MessagePreset global id; None for anything else."""
    try:
        global_id = relay.GlobalID.from_id(node_id)
    except relay.GlobalIDValueError:
        return None
    return parse_pk(global_id.node_id) if global_id.type_name == "MessagePreset" else None


def _global_id(pk: int) -> strawberry.ID:
    return strawberry.ID(relay.to_base64("MessagePreset", pk))


def _not_found(node_id: str) -> NotFoundError:
    return NotFoundError(message="No message preset with this id in this sandbox.", id=strawberry.ID(node_id))


def _invalid_input(error: PresetInvalidInputError) -> InvalidInputError:
    return InvalidInputError(
        message=str(error),
        field_errors=[FieldError(field=p.field, code=p.code, message=p.message) for p in error.problems],
    )


def _invalid_state(error: PresetInvalidStateError) -> InvalidStateError:
    return InvalidStateError(
        message=str(error),
        current_status=error.status.value,
        allowed_actions=[a.value for a in error.allowed],
    )


def _conflict(error: PresetConflictError) -> ConflictError:
    return ConflictError(message=str(error), current_version=error.current_version)


def _in_use(error: PresetInUse) -> PresetInUseError:
    return PresetInUseError(message=str(error), campaigns=error.campaigns)


# The errors every lifecycle action of a preset may raise, as their GraphQL types.
PresetActionError = NotFoundError | InvalidStateError | ConflictError | PresetInUseError


async def _lifecycle(info: Info, node_id: str, action: Any) -> MessagePresetModel | PresetActionError:
    """Decode the id, run one domain action on the caller's preset, and map its errors."""
    caller = info.context.require_caller()
    pk = _preset_pk(node_id)
    if pk is None:
        return _not_found(node_id)
    try:
        return await action(sandbox_id=caller.sandbox_id, preset_id=pk, actor=caller.actor)
    except PresetNotFoundError:
        return _not_found(node_id)
    except PresetInvalidStateError as error:
        return _invalid_state(error)
    except PresetInUse as error:
        return _in_use(error)
    except PresetConflictError as error:
        return _conflict(error)


async def _publish_status(info: Info, row: MessagePresetModel) -> None:
    if info.context.events is None:
        raise RuntimeError("no event bus configured")
    await info.context.events.publish(row.sandbox_id, PRESET_STATUS_TOPIC, row.status_event())


async def _enqueue_validation(info: Info, row: MessagePresetModel) -> None:
    if info.context.queue is None:
        raise RuntimeError("no job queue configured")
    await info.context.queue.validate_preset(row.id, row.version)


def _box(info: Info) -> SecretBox:
    return SecretBox(info.context.secret_key)


def _given(value: Any) -> Any:
    """strawberry.Maybe: None when absent, Some(value) when given."""
    return UNCHANGED if value is None else value.value


@strawberry.type
class PresetQuery:
    @strawberry.field(description="A message preset by id; null when unknown here.", permission_classes=VIEWER)
    async def message_preset(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")]
    ) -> MessagePreset | None:
        pk = _preset_pk(id)
        if pk is None:
            return None
        return (await MessagePreset.resolve_nodes(info=info, node_ids=[str(pk)]))[0]

    @strawberry.field(description="Message presets of this sandbox, newest first.", permission_classes=VIEWER)
    async def message_presets(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size, 0-100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="Cursor to continue from.")] = None,
        channel: Annotated[MessageChannel | None, strawberry.argument(description="Only this channel.")] = None,
        status: Annotated[
            MessagePresetStatus | None, strawberry.argument(description="Only presets in this status.")
        ] = None,
    ) -> Connection[MessagePreset]:
        query = MessagePreset.scoped(info)
        if channel is not None:
            query = query.filter(channel=ChannelEnum(channel))
        if status is not None:
            query = query.filter(status=PresetStatusEnum(status))
        return await paginate(
            query,
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=MessagePreset.from_model,
        )


@strawberry.type
class PresetMutation:
    @strawberry.mutation(
        description="Create a message preset (DRAFT). Settings are checked now; the provider on validation.",
        permission_classes=ADMIN,
    )
    async def message_preset_create(
        self, info: Info, input: Annotated[MessagePresetCreateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> MessagePresetCreateResult:
        caller = info.context.require_caller()
        try:
            row = await create_preset_action(
                sandbox_id=caller.sandbox_id,
                actor=caller.actor,
                box=_box(info),
                name=input.name,
                description=input.description,
                channel=input.channel,
                category=input.category,
                change=settings_change(input.settings),
                egress=info.context.egress,
            )
        except PresetInvalidInputError as error:
            return _invalid_input(error)
        await _publish_status(info, row)
        return MessagePresetCreateSuccess(preset=MessagePreset.from_model(row))

    @strawberry.mutation(
        description="Change a preset. On an ACTIVE preset, new settings are validated in the background "
        "and the previous ones stay in force until they pass.",
        permission_classes=ADMIN,
    )
    async def message_preset_update(
        self, info: Info, input: Annotated[MessagePresetUpdateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> MessagePresetUpdateResult:
        caller = info.context.require_caller()
        pk = _preset_pk(input.id)
        if pk is None:
            return _not_found(input.id)
        change = settings_change(input.settings.value) if input.settings is not None else None
        try:
            outcome = await update_preset(
                sandbox_id=caller.sandbox_id,
                preset_id=pk,
                actor=caller.actor,
                box=_box(info),
                expected_version=input.version,
                name=_given(input.name),
                description=_given(input.description),
                category=_given(input.category),
                channel=_given(input.channel),
                change=change,
                egress=info.context.egress,
            )
        except PresetNotFoundError:
            return _not_found(input.id)
        except PresetInvalidInputError as error:
            return _invalid_input(error)
        except PresetInvalidStateError as error:
            return _invalid_state(error)
        except PresetConflictError as error:
            return _conflict(error)
        row = outcome.preset
        if outcome.needs_validation:
            await _enqueue_validation(info, row)
        if outcome.status_changed:
            await _publish_status(info, row)
        return MessagePresetUpdateSuccess(
            preset=MessagePreset.from_model(row), validation_queued=outcome.needs_validation
        )

    @strawberry.mutation(
        description="Submit a DRAFT or FAILED preset: it becomes PROCESSING while a worker checks the "
        "provider, then ACTIVE or FAILED. On a preset already being checked, queues its check again.",
        permission_classes=ADMIN,
    )
    async def message_preset_validate(
        self, info: Info, input: Annotated[MessagePresetValidateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> MessagePresetValidateResult:
        row = await _lifecycle(info, input.id, submit_validation)
        if not isinstance(row, MessagePresetModel):
            return row
        await _enqueue_validation(info, row)
        await _publish_status(info, row)
        return MessagePresetValidateSuccess(preset=MessagePreset.from_model(row))

    @strawberry.mutation(description="Put a DEACTIVATED preset back into service.", permission_classes=ADMIN)
    async def message_preset_activate(
        self, info: Info, input: Annotated[MessagePresetActivateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> MessagePresetActivateResult:
        row = await _lifecycle(info, input.id, activate_preset)
        if not isinstance(row, MessagePresetModel):
            return row
        await _publish_status(info, row)
        return MessagePresetActivateSuccess(preset=MessagePreset.from_model(row))

    @strawberry.mutation(
        description="Take an ACTIVE preset out of service; refused while campaigns that are not drafts use it.",
        permission_classes=ADMIN,
    )
    async def message_preset_deactivate(
        self, info: Info, input: Annotated[MessagePresetDeactivateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> MessagePresetDeactivateResult:
        row = await _lifecycle(info, input.id, deactivate_preset)
        if not isinstance(row, MessagePresetModel):
            return row
        await _publish_status(info, row)
        return MessagePresetDeactivateSuccess(preset=MessagePreset.from_model(row))

    @strawberry.mutation(
        description="Delete a DRAFT, FAILED or DEACTIVATED preset; refused while campaigns that are not drafts use it.",
        permission_classes=ADMIN,
    )
    async def message_preset_delete(
        self, info: Info, input: Annotated[MessagePresetDeleteInput, strawberry.argument(description=INPUT_ARG)]
    ) -> MessagePresetDeleteResult:
        row = await _lifecycle(info, input.id, delete_preset)
        if not isinstance(row, MessagePresetModel):
            return row
        return MessagePresetDeleteSuccess(deleted_id=_global_id(row.id))


@strawberry.type
class PresetSubscription:
    @strawberry.subscription(
        description="Status changes of the presets of this sandbox (or of one preset), including the "
        "outcome of validations run by workers.",
        permission_classes=VIEWER,
    )
    async def message_preset_status_changed(
        self,
        info: Info,
        id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this preset (global id).")] = None,
    ) -> AsyncGenerator[MessagePresetStatusEvent, None]:
        caller = info.context.require_caller()
        if info.context.events is None:
            raise RuntimeError("no event bus configured")
        only = _preset_pk(id) if id is not None else None
        if id is not None and only is None:
            return
        async with info.context.events.subscribe(caller.sandbox_id, PRESET_STATUS_TOPIC) as events:
            async for event in events:
                if only is not None and event["presetId"] != only:
                    continue
                update_status = event.get("updateStatus")
                yield MessagePresetStatusEvent(
                    preset_id=_global_id(event["presetId"]),
                    status=PresetStatusEnum(event["status"]),
                    update_status=PresetUpdateStatusEnum(update_status) if update_status else None,
                    version=event["version"],
                    failed_checks=[PresetCheck.from_dict(check) for check in event.get("failedChecks", [])],
                )
