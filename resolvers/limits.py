"""Checks every request passes before any resolver runs: validation (cached, suggestions optional), NUL bytes,
page sizes and query complexity. Limits come from settings through `SchemaOptions`."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
    validate,
)
from graphql.type import GraphQLCompositeType, is_composite_type
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from resolvers.cost import REQUESTED_COST_ATTR

NUL = "\x00"
DEFAULT_PAGE_SIZE = 20
# Lists without `first` count as this many items (the full introspection query then costs ~8,600); otherwise
# nested introspection lists (`fields { type { fields …`) would grow a response exponentially at a fixed cost.
UNPAGED_LIST_WEIGHT = 5
NUL_MESSAGE = "Strings must not contain NUL (\\u0000) characters."
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def bad_input(message: str, nodes: Any = None) -> GraphQLError:
    return GraphQLError(message, nodes, extensions={"code": "BAD_USER_INPUT"})


class NoNulStringsRule(ValidationRule):
    """PostgreSQL refuses NUL in text and jsonb; refuse string literals holding one as bad input."""

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        if NUL in node.value:
            self.report_error(bad_input(NUL_MESSAGE, node))


def contains_nul(value: Any) -> bool:
    """Any string (or object key) holding NUL, anywhere in a JSON value; iterative, so deep nesting is safe."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class _Complexity:
    """Cost of an operation: each field costs 1; a field taking `first` multiplies its children by it, and other
    list fields by UNPAGED_LIST_WEIGHT (except the page's own lists, `edges` and `nodes`, already counted)."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any], max_page_size: int
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.max_page_size = max_page_size
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.fragment_costs: dict[str, int] = {}
        self.errors: list[GraphQLError] = []

    def operation(self, operation: OperationDefinitionNode) -> int:
        root = self.schema.get_root_type(operation.operation)
        return self.selection_set(operation.selection_set, root) if root else 0

    def selection_set(
        self, selection_set: SelectionSetNode | None, parent: GraphQLCompositeType, in_page: bool = False
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, in_page)
            elif isinstance(selection, InlineFragmentNode):
                total += self.selection_set(selection.selection_set, self._condition(selection, parent), in_page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value)
        return total

    def fragment(self, name: str) -> int:
        # Validation has already refused unknown and cyclic fragments; memoised so repeated spreads cost one walk.
        if name not in self.fragment_costs:
            definition = self.fragments[name]
            self.fragment_costs[name] = self.selection_set(definition.selection_set, self._condition(definition, None))
        return self.fragment_costs[name]

    def field(self, node: FieldNode, parent: GraphQLCompositeType, in_page: bool = False) -> int:
        definition = self.schema.get_field(parent, node.name.value)
        if definition is None:
            return 1
        paged = "first" in definition.args
        child_type = get_named_type(definition.type)
        children = self.selection_set(node.selection_set, child_type, paged) if is_composite_type(child_type) else 0
        if paged:
            multiplier = self.page_size(node)
        elif is_list_type(get_nullable_type(definition.type)) and not in_page:
            multiplier = UNPAGED_LIST_WEIGHT
        else:
            multiplier = 1
        return 1 + multiplier * children

    def page_size(self, node: FieldNode) -> int:
        argument = next((a for a in node.arguments or () if a.name.value == "first"), None)
        value: Any = None
        if argument is not None:
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
        if not isinstance(value, int) or isinstance(value, bool):
            return min(DEFAULT_PAGE_SIZE, self.max_page_size)
        if not 0 <= value <= self.max_page_size:
            self.errors.append(bad_input(f"`first` must be between 0 and {self.max_page_size}.", argument))
            return 0
        return value

    def _condition(self, node: InlineFragmentNode | FragmentDefinitionNode, parent: Any) -> Any:
        if node.type_condition is None:
            return parent
        return self.schema.get_type(node.type_condition.name.value) or parent


def _selected_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def request_errors(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    max_page_size: int,
    max_complexity: int,
) -> tuple[list[GraphQLError], int | None]:
    """Checks that need the variables; run on documents that passed validation. Returns the errors and the
    operation's cost (None when it has none to report)."""
    variables = variables or {}
    if contains_nul(variables):
        return [bad_input(NUL_MESSAGE)], None
    operation = _selected_operation(document, operation_name)
    if operation is None:
        return [], None  # graphql-core reports the missing or ambiguous operation
    walker = _Complexity(schema, document, variables, max_page_size)
    cost = walker.operation(operation)
    if walker.errors:
        return walker.errors, None
    if cost > max_complexity:
        return [
            GraphQLError(
                f"Query complexity {cost} exceeds the limit of {max_complexity}: ask for smaller pages (`first`) "
                "or fewer fields.",
                operation,
                extensions={"code": "QUERY_TOO_COMPLEX", "complexity": cost, "limit": max_complexity},
            )
        ], cost
    return [], cost


class _Identity:
    """A document as a cache key by identity. The parser cache hands out the same document for the same text, and
    the cache entry keeps it alive, so its id is not reused while the entry lives."""

    __slots__ = ("document",)

    def __init__(self, document: DocumentNode) -> None:
        self.document = document

    def __hash__(self) -> int:
        return id(self.document)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.document is self.document


def make_request_limits(
    rules: tuple[type[ValidationRule], ...],
    *,
    max_page_size: int,
    max_complexity: int,
    hide_suggestions: bool,
    cache_size: int,
) -> type[SchemaExtension]:
    """A schema extension class doing validation and the request checks. The rules are fixed per schema, so
    validation results are cached by document alone."""

    # Keyed by the document's identity: graphql-core hashes a node by hashing its whole tree, on every lookup.
    @lru_cache(maxsize=cache_size)
    def _validate_by_identity(schema: GraphQLSchema, key: _Identity, all_rules: tuple) -> tuple[GraphQLError, ...]:
        return tuple(validate(schema, key.document, all_rules, hide_suggestions=hide_suggestions))

    def _validate_cached(schema: GraphQLSchema, document: DocumentNode, all_rules: tuple) -> tuple[GraphQLError, ...]:
        return _validate_by_identity(schema, _Identity(document), all_rules)

    @lru_cache(maxsize=cache_size)
    def _request_errors_by_identity(
        schema: GraphQLSchema, key: _Identity, operation_name: str | None
    ) -> tuple[tuple[GraphQLError, ...], int | None]:
        errors, cost = request_errors(
            schema, key.document, operation_name, None, max_page_size=max_page_size, max_complexity=max_complexity
        )
        return tuple(errors), cost

    def _request_errors_cached(
        schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
    ) -> tuple[tuple[GraphQLError, ...], int | None]:
        return _request_errors_by_identity(schema, _Identity(document), operation_name)

    class RequestLimits(SchemaExtension):
        validate_cached = staticmethod(_validate_by_identity)  # its cache_info, for tests

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            schema = context.schema._schema
            document = context.graphql_document
            assert document is not None
            all_rules = (*context.validation_rules, *rules, MaybeNullValidationRule, OneOfInputValidationRule)
            errors = list(_validate_cached(schema, document, all_rules))
            cost = None
            if not errors and not context.variables:
                # Without variables the checks depend on the document alone (e.g. a persisted query's).
                cached, cost = _request_errors_cached(schema, document, context.operation_name)
                errors = list(cached)
            elif not errors:
                errors, cost = request_errors(
                    schema,
                    document,
                    context.operation_name,
                    context.variables,
                    max_page_size=max_page_size,
                    max_complexity=max_complexity,
                )
            # Not None: strawberry then skips its own (uncached) validation.
            context.pre_execution_errors = errors
            if not errors:
                setattr(context, REQUESTED_COST_ATTR, cost)  # paid from the key's budget by QueryCost
            yield

        def on_operation(self) -> Iterator[None]:
            yield
            result = self.execution_context.result
            if hide_suggestions and result is not None and getattr(result, "errors", None):
                # Variable coercion (enum values, input fields) happens in graphql-core's executor, which
                # strawberry does not let us configure: drop its "Did you mean …?" hints here.
                for error in result.errors:
                    error.message = _SUGGESTION.sub("", error.message)

    return RequestLimits
