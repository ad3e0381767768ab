"""The root types and the Schema. `build_schema(options)` applies limits from settings; `schema` uses defaults."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import relay
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from resolvers.approvals.schema import ApprovalMutation, ApprovalQuery
from resolvers.approvals.version_schema import CampaignVersionApprovalMutation
from resolvers.audience.mutations import AudienceMutation
from resolvers.audience.schema import NODE_TYPES as AUDIENCE_NODE_TYPES
from resolvers.audience.schema import AudienceQuery
from resolvers.business_rules.schema import BusinessRulesMutation, BusinessRulesQuery
from resolvers.campaigns.calendar import CampaignCalendarQuery
from resolvers.campaigns.experiment_schema import ExperimentMutation, ExperimentQuery
from resolvers.campaigns.mutations import CampaignMutation
from resolvers.campaigns.proofs import CampaignProofMutation
from resolvers.campaigns.reads import campaign_by_pk, one_statement_reads
from resolvers.campaigns.run_types import CampaignRun
from resolvers.campaigns.schema import CampaignQuery
from resolvers.campaigns.subscriptions import CampaignSubscription
from resolvers.campaigns.types import Campaign
from resolvers.campaigns.versions import CampaignVersionMutation, CampaignVersionQuery
from resolvers.context import Info
from resolvers.cost import QueryCost, without_async_cost
from resolvers.direct_resolvers import install_direct_resolvers
from resolvers.errors import ClientError
from resolvers.execution.schema import ExecutionQuery, ExecutionSubscription
from resolvers.execution_context import execution_context_for
from resolvers.execution_support import per_field_extensions, version_mismatch
from resolvers.imports.schema import NODE_TYPES as IMPORT_NODE_TYPES
from resolvers.imports.schema import ImportsQuery, ImportsSubscription
from resolvers.limits import NoNulStringsRule, make_request_limits
from resolvers.nodes import parse_pk
from resolvers.people.schema import PeopleMutation, PeopleQuery
from resolvers.permissions import VIEWER
from resolvers.presets.schema import PresetMutation, PresetQuery, PresetSubscription
from resolvers.presets.types import MessagePreset
from resolvers.reports.schema import ReportsMutation, ReportsQuery
from resolvers.request_id import current_request_id
from resolvers.tenancy.schema import TenancyMutation, TenancyQuery, TenancySubscription
from resolvers.tenancy.types import AuditEvent, IdentityNamespace
from resolvers.triggers.schema import CampaignTrigger, TriggerMutation, TriggerQuery, TriggerSubscription
from resolvers.webhooks.schema import WebhookMutation, WebhookQuery

logger = logging.getLogger("herald.graphql")

NODE_TYPES = [
    AuditEvent,
    IdentityNamespace,
    MessagePreset,
    *AUDIENCE_NODE_TYPES,
    *IMPORT_NODE_TYPES,
    Campaign,
    CampaignRun,
    CampaignTrigger,
]


NODE_TYPES_BY_NAME = {cls.__name__: cls for cls in NODE_TYPES}


@strawberry.type(description="Read access to everything in the caller's sandbox.")
class Query(
    TenancyQuery,
    AudienceQuery,
    ImportsQuery,
    PresetQuery,
    CampaignQuery,
    CampaignVersionQuery,
    CampaignCalendarQuery,
    ExperimentQuery,
    ExecutionQuery,
    ReportsQuery,
    WebhookQuery,
    PeopleQuery,
    ApprovalQuery,
    BusinessRulesQuery,
    TriggerQuery,
):
    @strawberry.field(
        description="Any object by its global id. Unknown, malformed and other sandboxes' ids read as null.",
        permission_classes=VIEWER,
    )
    async def node(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")]
    ) -> relay.Node | None:
        try:
            global_id = relay.GlobalID.from_id(id)
        except relay.GlobalIDValueError:
            return None
        node_type = NODE_TYPES_BY_NAME.get(global_id.type_name)
        if node_type is None:
            return None
        if node_type is Campaign and one_statement_reads(info):
            pk = parse_pk(global_id.node_id)
            return await campaign_by_pk(info, pk) if pk is not None else None
        return (await node_type.resolve_nodes(info=info, node_ids=[global_id.node_id]))[0]


@strawberry.type(description="Changes. Each takes one `input` and returns a union of success and typed errors.")
class Mutation(
    TenancyMutation,
    AudienceMutation,
    PresetMutation,
    CampaignMutation,
    CampaignVersionMutation,
    ReportsMutation,
    CampaignProofMutation,
    ExperimentMutation,
    WebhookMutation,
    PeopleMutation,
    ApprovalMutation,
    CampaignVersionApprovalMutation,
    BusinessRulesMutation,
    TriggerMutation,
):
    pass


@strawberry.type(description="Live updates over graphql-transport-ws (or legacy graphql-ws).")
class Subscription(
    TenancySubscription,
    ImportsSubscription,
    PresetSubscription,
    CampaignSubscription,
    ExecutionSubscription,
    TriggerSubscription,
):
    pass


@dataclass(frozen=True, slots=True)
class SchemaOptions:
    max_depth: int = 12
    max_tokens: int = 3000
    max_aliases: int = 30
    max_complexity: int = 20_000
    max_page_size: int = 100
    introspection: bool = True
    cache_size: int = 1000
    # Direct resolvers and planned field execution (resolvers/execution_context.py): GRAPHQL_PLANNED_EXECUTION.
    # Off, strawberry's and graphql-core's own execution answer (CI runs the GraphQL tests both ways).
    planned_execution: bool = True


def _is_expected(error: GraphQLError) -> bool:
    original = error.original_error
    return (
        original is None
        or isinstance(original, (ClientError, GraphQLError))
        or (
            # Strawberry's permission and input-coercion errors carry extensions meant for the client.
            type(original).__module__.startswith("strawberry.")
        )
    )


class HeraldMaskErrors(MaskErrors):
    """Masks unexpected errors; logs each in full with the request id the client is shown."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: not _is_expected(error))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = current_request_id()
        logger.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path or ()),
            exc_info=error.original_error,
            extra={"request_id": request_id},
        )
        return GraphQLError(
            message=f"Unexpected error. Request id: {request_id}",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


_version_warning_logged = False


def planned_execution_allowed(wanted: bool, extensions: list[Any], installed: Mapping[str, str] | None = None) -> bool:
    """Planned execution when wanted, on the tested library versions, without a per-field extension.
    `installed` stands in for the installed versions (tests)."""
    global _version_warning_logged
    if not wanted:
        return False
    mismatch = version_mismatch(installed)
    if mismatch is not None:
        # Once per process for the real versions (the schema is built more than once); every time when simulated.
        if installed is not None or not _version_warning_logged:
            _version_warning_logged = _version_warning_logged or installed is None
            logger.warning("planned GraphQL execution off: untested versions %s", mismatch)
        return False
    per_field = per_field_extensions(extensions)
    if per_field:
        logger.info("planned GraphQL execution off: extension %s needs a hook per field", ", ".join(per_field))
        return False
    return True


class HeraldSchema(strawberry.Schema):
    def __init__(
        self,
        *args: Any,
        planned_execution: bool = True,
        installed_versions: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.planned_execution = planned_execution_allowed(
            planned_execution, list(kwargs.get("extensions") or ()), installed_versions
        )
        if self.planned_execution:
            # Both need the built GraphQL schema, hence done after construction.
            install_direct_resolvers(self._schema, self.config.info_class)
            self.execution_context_class = execution_context_for(self._schema)

    def get_extensions(self, sync: bool = False) -> list:
        extensions = super().get_extensions(sync)
        # The cost budget lives in Redis (async); synchronous execution (tests, tools) runs without it.
        return list(without_async_cost(extensions)) if sync else extensions

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Unexpected errors are logged by HeraldMaskErrors; expected ones are the client's business. Errors of
        # a request that never ran get the code clients switch on (Apollo's names), over HTTP and WebSocket.
        parsed = execution_context is not None and execution_context.graphql_document is not None
        for error in errors:
            if error.path or (error.extensions or {}).get("code"):
                continue
            error.extensions = {**(error.extensions or {}), "code": request_error_code(error, parsed=parsed)}


def request_error_code(error: GraphQLError, *, parsed: bool) -> str:
    if not parsed or isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable '$"):
        return "BAD_USER_INPUT"  # the document is valid; a variable's value is not
    return "GRAPHQL_VALIDATION_FAILED"


def build_schema(
    options: SchemaOptions = SchemaOptions(),
    *,
    extra_extensions: tuple[Any, ...] = (),
    installed_versions: Mapping[str, str] | None = None,
) -> HeraldSchema:
    # The limiters' rule classes are built once, so validation results can be cached per document.
    rules = (
        *QueryDepthLimiter(max_depth=options.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=options.max_aliases).validation_rules,
        NoNulStringsRule,
        *([] if options.introspection else [NoSchemaIntrospectionCustomRule]),
    )
    request_limits = make_request_limits(
        tuple(rules),
        max_page_size=options.max_page_size,
        max_complexity=options.max_complexity,
        # Field suggestions would reveal the schema that turning introspection off hides.
        hide_suggestions=not options.introspection,
        cache_size=options.cache_size,
    )
    extensions: list = [
        lambda: ParserCache(maxsize=options.cache_size),
        lambda: MaxTokensLimiter(max_token_count=options.max_tokens),
        request_limits,
        QueryCost,  # after request_limits, whose validation measures the requested cost
        HeraldMaskErrors,
        *extra_extensions,
    ]
    return HeraldSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=NODE_TYPES,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
        planned_execution=options.planned_execution,
        installed_versions=installed_versions,
    )


schema = build_schema()
