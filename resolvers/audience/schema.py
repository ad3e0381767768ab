"""Audience queries: profiles, segments and their estimates, the suppression list (mutations.py holds the
changes)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from models.audience.entities import ContactChannel as ContactChannelEnum
from models.audience.entities import Segment as SegmentModel
from models.audience.entities import SuppressionEntry as SuppressionEntryModel
from models.audience.profile_queries import ProfileFilter, count_profiles, profile_page
from models.audience.profiles import namespaces_by_code, prepare_identities, profile_by_identity
from models.audience.segments import estimate_segment
from models.audience.suppression import normalize_address
from models.audience.values import ValueProblem
from models.tenancy.identity import IdentityNamespace as IdentityNamespaceModel
from resolvers.audience.inputs import ProfileFilterInput, decode_id
from resolvers.audience.types import ContactChannel, Profile, Segment, SegmentEstimate, SuppressionEntry
from resolvers.context import Info
from resolvers.errors import ClientError
from resolvers.pagination import Connection, Edge, PageInfo, _decode_cursor, _encode_cursor, check_page_size, paginate
from resolvers.permissions import VIEWER

First = Annotated[int | None, strawberry.argument(description="Page size, 0 to 100 (default 20).")]
After = Annotated[str | None, strawberry.argument(description="Cursor to continue from.")]


async def _segment(info: Info, global_id: str) -> SegmentModel | None:
    pk = decode_id(global_id, "Segment")
    if pk is None:
        return None
    return await SegmentModel.get_or_none(id=pk, sandbox_id=info.context.require_caller().sandbox_id)


@strawberry.type
class AudienceQuery:
    @strawberry.field(description="A profile by id; null when unknown here.", permission_classes=VIEWER)
    async def profile(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A Profile id.")]
    ) -> Profile | None:
        pk = decode_id(id, "Profile")
        row = await Profile.scoped(info).get_or_none(id=pk) if pk else None
        return Profile.from_model(row) if row else None

    @strawberry.field(
        description="The profile holding an identity (the value is normalised first); null when none.",
        permission_classes=VIEWER,
    )
    async def profile_by_identity(
        self,
        info: Info,
        namespace: Annotated[str, strawberry.argument(description="Namespace code, e.g. `Email`.")],
        value: Annotated[str, strawberry.argument(description="The identity value.")],
    ) -> Profile | None:
        row = await profile_by_identity(info.context.require_caller().sandbox_id, namespace, value)
        return Profile.from_model(row) if row else None

    @strawberry.field(description="Profiles of this sandbox, newest first.", permission_classes=VIEWER)
    async def profiles(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        filter: Annotated[ProfileFilterInput | None, strawberry.argument(description="Filters.")] = None,
    ) -> Connection[Profile]:
        sandbox_id = info.context.require_caller().sandbox_id
        size = check_page_size(first, info.context.limits.max_page_size)
        before_id = _decode_cursor(after, 1)[0] if after else None
        if before_id is not None and not isinstance(before_id, int):
            raise ClientError("`after` is not a cursor of this list.", code="BAD_USER_INPUT")
        filters = await _profile_filter(info, sandbox_id, filter)
        if filters is None:
            return Connection(
                edges=[],
                page_info=PageInfo(
                    has_next_page=False,
                    has_previous_page=bool(after),
                    start_cursor=None,
                    end_cursor=None,
                ),
                _count_query=None,
            )
        rows = await profile_page(sandbox_id, filters, before_id=before_id, limit=size + 1) if size else []
        edges = [Edge(cursor=_encode_cursor([row.id]), node=Profile.from_model(row)) for row in rows[:size]]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size,
                has_previous_page=bool(after),
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            _count_query=None,
            _count=lambda: count_profiles(sandbox_id, filters),
        )

    @strawberry.field(description="A segment by id; null when unknown here.", permission_classes=VIEWER)
    async def segment(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A Segment id.")]
    ) -> Segment | None:
        row = await _segment(info, id)
        return Segment.from_model(row) if row else None

    @strawberry.field(description="Segments of this sandbox, newest first.", permission_classes=VIEWER)
    async def segments(self, info: Info, first: First = None, after: After = None) -> Connection[Segment]:
        return await paginate(
            Segment.scoped(info),
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=Segment.from_model,
        )

    @strawberry.field(
        description="How many profiles a segment reaches now: members, members with an identity in the "
        "namespace, and members contactable on the channel. Null when the segment is unknown here.",
        permission_classes=VIEWER,
    )
    async def segment_estimate(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A Segment id.")],
        namespace: Annotated[str, strawberry.argument(description="Identity namespace code, e.g. `Email`.")],
        channel: Annotated[ContactChannel, strawberry.argument(description="The channel to reach them on.")],
    ) -> SegmentEstimate | None:
        segment = await _segment(info, id)
        if segment is None:
            return None
        ns = await IdentityNamespaceModel.get_or_none(sandbox_id=segment.sandbox_id, code=namespace)
        if ns is None:
            raise ClientError(f"No identity namespace {namespace!r} in this sandbox.", code="BAD_USER_INPUT")
        estimate = await estimate_segment(segment, ns, ContactChannelEnum(channel))
        return SegmentEstimate(
            qualified=estimate.qualified,
            with_identity=estimate.with_identity,
            contactable=estimate.contactable,
        )

    @strawberry.field(description="The suppression list, newest first.", permission_classes=VIEWER)
    async def suppressions(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        channel: Annotated[ContactChannel | None, strawberry.argument(description="Only this channel.")] = None,
        address: Annotated[
            str | None, strawberry.argument(description="Only this address (normalised for the channel).")
        ] = None,
    ) -> Connection[SuppressionEntry]:
        query = SuppressionEntryModel.filter(sandbox_id=info.context.require_caller().sandbox_id)
        if channel is not None:
            query = query.filter(channel=channel)
        if address is not None:
            try:
                values = (
                    [normalize_address(ContactChannelEnum(channel), address)]
                    if channel is not None
                    else sorted({_try_normalize(c, address) for c in ContactChannelEnum} - {None})
                )
            except ValueProblem:
                values = []
            query = query.filter(address__in=values)
        return await paginate(
            query,
            first=first,
            after=after,
            max_page_size=info.context.limits.max_page_size,
            to_node=SuppressionEntry.from_model,
        )


def _try_normalize(channel: ContactChannelEnum, address: str) -> str | None:
    try:
        return normalize_address(channel, address)
    except ValueProblem:
        return None


async def _profile_filter(info: Info, sandbox_id: int, given: ProfileFilterInput | None) -> ProfileFilter | None:
    """The filters as model values; None when they can match nothing (unknown segment or identity)."""
    if given is None:
        return ProfileFilter()
    segment = None
    if given.segment_id is not None:
        segment = await _segment(info, given.segment_id)
        if segment is None:
            return None
    identity = None
    if given.identity is not None:
        pairs, problems = prepare_identities(
            [given.identity.to_value()], await namespaces_by_code(sandbox_id), "filter.identity"
        )
        if problems:
            return None
        identity = pairs[0]
    return ProfileFilter(segment=segment, test_profile=given.test_profile, identity=identity)


NODE_TYPES = [Profile, Segment, SuppressionEntry]
