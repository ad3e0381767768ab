"""Audience mutations and their results: identity namespaces, profile upserts, segments and their members, the
suppression list."""

from __future__ import annotations

from typing import Annotated

import strawberry

from models.audience.entities import ContactChannel as ContactChannelEnum
from models.audience.entities import Segment as SegmentModel
from models.audience.namespaces import NamespaceRefused, create_namespace
from models.audience.profiles import MAX_UPSERT_PROFILES, FieldProblem, UpsertStatus, upsert_profiles
from models.audience.segments import (
    KEEP,
    SegmentInUse,
    SegmentNotFound,
    SegmentRefused,
    change_members,
    create_segment,
    delete_segment,
    update_segment,
)
from models.audience.suppression import SuppressionNotFound, add_suppression, remove_suppression
from models.audience.values import ValueProblem
from resolvers.audience.inputs import (
    IdentityNamespaceCreateInput,
    ProfilesUpsertInput,
    SegmentCreateInput,
    SegmentDeleteInput,
    SegmentMembersInput,
    SegmentUpdateInput,
    SuppressionAddInput,
    SuppressionRemoveInput,
    decode_id,
    invalid_input,
    rule_from_input,
)
from resolvers.audience.types import Profile, ProfileUpsertStatus, Segment, SuppressionEntry
from resolvers.context import Info
from resolvers.errors import Error, FieldError, InvalidInputError, NotFoundError, not_found
from resolvers.permissions import ADMIN, MANAGER
from resolvers.tenancy.types import IdentityNamespace
from resolvers.vocabulary import INPUT_ARG


@strawberry.type(description="The namespace was created.")
class IdentityNamespaceCreateSuccess:
    namespace: IdentityNamespace = strawberry.field(description="The new namespace.")


IdentityNamespaceCreateResult = Annotated[
    IdentityNamespaceCreateSuccess | InvalidInputError,
    strawberry.union("IdentityNamespaceCreateResult", description="Result of `identityNamespaceCreate`."),
]


@strawberry.type(description="What happened to one profile of an upsert.")
class ProfileUpsertItemResult:
    index: int = strawberry.field(description="Position of the profile in `input.profiles`.")
    status: ProfileUpsertStatus = strawberry.field(description="CREATED, UPDATED, UNCHANGED or ERROR.")
    profile: Profile | None = strawberry.field(description="The profile; null on ERROR.")
    errors: list[FieldError] = strawberry.field(description="Why the profile was refused (ERROR only).")


@strawberry.type(description="Every profile was handled; each item says what happened to it.")
class ProfilesUpsertSuccess:
    results: list[ProfileUpsertItemResult] = strawberry.field(description="One result per input profile.")
    created: int = strawberry.field(description="Profiles created.")
    updated: int = strawberry.field(description="Profiles changed.")
    unchanged: int = strawberry.field(description="Profiles already as given.")
    failed: int = strawberry.field(description="Profiles refused; nothing of them was written.")


ProfilesUpsertResult = Annotated[
    ProfilesUpsertSuccess | InvalidInputError,
    strawberry.union("ProfilesUpsertResult", description="Result of `profilesUpsert`."),
]


@strawberry.type(description="The segment was saved.")
class SegmentSaveSuccess:
    segment: Segment = strawberry.field(description="The segment as saved.")


@strawberry.type(description="The segment is used (by a campaign or another segment's rule) and stays.")
class SegmentInUseError(Error):
    used_by: list[str] = strawberry.field(description="What uses it.")


@strawberry.type(description="The segment was deleted.")
class SegmentDeleteSuccess:
    deleted_id: strawberry.ID = strawberry.field(description="Id of the deleted segment.")


@strawberry.type(description="The members of a static segment changed.")
class SegmentMembersChangeSuccess:
    segment: Segment = strawberry.field(description="The segment.")
    changed: int = strawberry.field(description="Profiles added (or removed) by this call.")
    matched: int = strawberry.field(description="Distinct profiles the identities named.")
    unmatched: list[FieldError] = strawberry.field(
        description="Identities that named no profile or were not valid; the others were applied."
    )


SegmentCreateResult = Annotated[
    SegmentSaveSuccess | InvalidInputError,
    strawberry.union("SegmentCreateResult", description="Result of `segmentCreate`."),
]
SegmentUpdateResult = Annotated[
    SegmentSaveSuccess | InvalidInputError | NotFoundError,
    strawberry.union("SegmentUpdateResult", description="Result of `segmentUpdate`."),
]
SegmentDeleteResult = Annotated[
    SegmentDeleteSuccess | NotFoundError | SegmentInUseError,
    strawberry.union("SegmentDeleteResult", description="Result of `segmentDelete`."),
]
SegmentMembersResult = Annotated[
    SegmentMembersChangeSuccess | InvalidInputError | NotFoundError,
    strawberry.union("SegmentMembersResult", description="Result of `segmentMembersAdd` and `segmentMembersRemove`."),
]


@strawberry.type(description="The address is suppressed (now, or already was).")
class SuppressionAddSuccess:
    entry: SuppressionEntry = strawberry.field(description="The suppression entry.")
    created: bool = strawberry.field(description="False when the address was already suppressed (kept as is).")


@strawberry.type(description="The suppression was lifted.")
class SuppressionRemoveSuccess:
    removed_id: strawberry.ID = strawberry.field(description="Id of the removed entry.")


SuppressionAddResult = Annotated[
    SuppressionAddSuccess | InvalidInputError,
    strawberry.union("SuppressionAddResult", description="Result of `suppressionAdd`."),
]
SuppressionRemoveResult = Annotated[
    SuppressionRemoveSuccess | NotFoundError,
    strawberry.union("SuppressionRemoveResult", description="Result of `suppressionRemove`."),
]


@strawberry.type
class AudienceMutation:
    @strawberry.mutation(
        description="Create a custom identity namespace. Codes are unique and immutable; namespaces are never deleted.",
        permission_classes=ADMIN,
    )
    async def identity_namespace_create(
        self, info: Info, input: Annotated[IdentityNamespaceCreateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> IdentityNamespaceCreateResult:
        caller = info.context.require_caller()
        try:
            namespace = await create_namespace(
                caller.sandbox_id,
                code=input.code,
                name=input.name,
                type=input.type,
                description=input.description,
                actor=caller.actor,
            )
        except NamespaceRefused as refused:
            return invalid_input(refused.problems)
        return IdentityNamespaceCreateSuccess(namespace=IdentityNamespace.from_model(namespace))

    @strawberry.mutation(
        description="Create or update up to 1,000 profiles, each merged by any of its identities. Each item "
        "reports what happened; a refused item changes nothing and does not stop the others.",
        permission_classes=MANAGER,
    )
    async def profiles_upsert(
        self, info: Info, input: Annotated[ProfilesUpsertInput, strawberry.argument(description=INPUT_ARG)]
    ) -> ProfilesUpsertResult:
        if not 1 <= len(input.profiles) <= MAX_UPSERT_PROFILES:
            return invalid_input([FieldProblem("input.profiles", "COUNT", f"give 1 to {MAX_UPSERT_PROFILES} profiles")])
        caller = info.context.require_caller()
        outcomes = await upsert_profiles(
            caller.sandbox_id, [item.to_changes() for item in input.profiles], actor=caller.actor
        )
        counts = {status: 0 for status in UpsertStatus}
        for outcome in outcomes:
            counts[outcome.status] += 1
        return ProfilesUpsertSuccess(
            results=[
                ProfileUpsertItemResult(
                    index=o.index,
                    status=o.status,
                    profile=Profile.from_model(o.profile) if o.profile else None,
                    errors=[FieldError(field=p.field, code=p.code, message=p.message) for p in o.problems],
                )
                for o in outcomes
            ],
            created=counts[UpsertStatus.CREATED],
            updated=counts[UpsertStatus.UPDATED],
            unchanged=counts[UpsertStatus.UNCHANGED],
            failed=counts[UpsertStatus.ERROR],
        )

    @strawberry.mutation(description="Create a segment.", permission_classes=MANAGER)
    async def segment_create(
        self, info: Info, input: Annotated[SegmentCreateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> SegmentCreateResult:
        caller = info.context.require_caller()
        try:
            segment = await create_segment(
                caller.sandbox_id,
                name=input.name,
                description=input.description,
                kind=input.kind,
                rule=rule_from_input(input.rule) if input.rule is not None else None,
                actor=caller.actor,
            )
        except SegmentRefused as refused:
            return invalid_input(refused.problems)
        return SegmentSaveSuccess(segment=Segment.from_model(segment))

    @strawberry.mutation(description="Change a segment's name, description or rule.", permission_classes=MANAGER)
    async def segment_update(
        self, info: Info, input: Annotated[SegmentUpdateInput, strawberry.argument(description=INPUT_ARG)]
    ) -> SegmentUpdateResult:
        caller = info.context.require_caller()
        pk = decode_id(input.id, "Segment")
        if pk is None:
            return not_found(input.id)
        rule = KEEP
        if input.rule is not strawberry.UNSET:
            rule = rule_from_input(input.rule) if input.rule is not None else None
        try:
            segment = await update_segment(
                caller.sandbox_id,
                pk,
                name=KEEP if input.name in (strawberry.UNSET, None) else input.name,
                description=KEEP if input.description in (strawberry.UNSET, None) else input.description,
                rule=rule,
                actor=caller.actor,
            )
        except SegmentNotFound:
            return not_found(input.id)
        except SegmentRefused as refused:
            return invalid_input(refused.problems)
        return SegmentSaveSuccess(segment=Segment.from_model(segment))

    @strawberry.mutation(
        description="Delete a segment, unless a non-draft campaign or another segment's rule uses it.",
        permission_classes=MANAGER,
    )
    async def segment_delete(
        self, info: Info, input: Annotated[SegmentDeleteInput, strawberry.argument(description=INPUT_ARG)]
    ) -> SegmentDeleteResult:
        caller = info.context.require_caller()
        pk = decode_id(input.id, "Segment")
        if pk is None:
            return not_found(input.id)
        try:
            await delete_segment(caller.sandbox_id, pk, actor=caller.actor)
        except SegmentNotFound:
            return not_found(input.id)
        except SegmentInUse as in_use:
            return SegmentInUseError(message="The segment is in use and was not deleted.", used_by=in_use.users)
        return SegmentDeleteSuccess(deleted_id=input.id)

    @strawberry.mutation(
        description="Add the profiles named by these identities to a STATIC segment.",
        permission_classes=MANAGER,
    )
    async def segment_members_add(
        self, info: Info, input: Annotated[SegmentMembersInput, strawberry.argument(description=INPUT_ARG)]
    ) -> SegmentMembersResult:
        return await _change_members(info, input, add=True)

    @strawberry.mutation(
        description="Remove the profiles named by these identities from a STATIC segment.",
        permission_classes=MANAGER,
    )
    async def segment_members_remove(
        self, info: Info, input: Annotated[SegmentMembersInput, strawberry.argument(description=INPUT_ARG)]
    ) -> SegmentMembersResult:
        return await _change_members(info, input, add=False)

    @strawberry.mutation(
        description="Suppress an address on a channel (kept as is when already suppressed).",
        permission_classes=ADMIN,
    )
    async def suppression_add(
        self, info: Info, input: Annotated[SuppressionAddInput, strawberry.argument(description=INPUT_ARG)]
    ) -> SuppressionAddResult:
        caller = info.context.require_caller()
        try:
            entry, created = await add_suppression(
                caller.sandbox_id,
                ContactChannelEnum(input.channel),
                input.address,
                input.reason,
                actor=caller.actor,
            )
        except ValueProblem as problem:
            return invalid_input([FieldProblem("input.address", problem.code, problem.message)])
        return SuppressionAddSuccess(entry=SuppressionEntry.from_model(entry), created=created)

    @strawberry.mutation(description="Lift a suppression.", permission_classes=ADMIN)
    async def suppression_remove(
        self, info: Info, input: Annotated[SuppressionRemoveInput, strawberry.argument(description=INPUT_ARG)]
    ) -> SuppressionRemoveResult:
        caller = info.context.require_caller()
        pk = decode_id(input.id, "SuppressionEntry")
        if pk is None:
            return not_found(input.id)
        try:
            await remove_suppression(caller.sandbox_id, pk, actor=caller.actor)
        except SuppressionNotFound:
            return not_found(input.id)
        return SuppressionRemoveSuccess(removed_id=input.id)


async def _change_members(info: Info, input: SegmentMembersInput, *, add: bool) -> SegmentMembersResult:
    caller = info.context.require_caller()
    pk = decode_id(input.segment_id, "Segment")
    if pk is None:
        return not_found(input.segment_id)
    try:
        change = await change_members(
            caller.sandbox_id,
            pk,
            [identity.to_value() for identity in input.identities],
            add=add,
            actor=caller.actor,
        )
    except SegmentNotFound:
        return not_found(input.segment_id)
    except SegmentRefused as refused:
        return invalid_input(refused.problems)
    segment = await SegmentModel.get(id=pk)
    return SegmentMembersChangeSuccess(
        segment=Segment.from_model(segment),
        changed=change.changed,
        matched=change.matched,
        unmatched=[FieldError(field=p.field, code=p.code, message=p.message) for p in change.unmatched],
    )
