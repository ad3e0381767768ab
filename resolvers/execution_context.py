"""A leaner graphql-core execution for plain attribute fields (DESIGN §10: the read path).

A page of 20 campaigns resolves ~300 fields and ~260 of them are scalars or enums read straight off an attribute.
For each, graphql-core builds a resolve-info object, calls strawberry's default-resolver wrapper and walks
`complete_value`; that bookkeeping was most of a request's CPU. Such a field is completed here with one
`getattr` and the type's own output coercion, with the same errors and null handling. Every other field
(resolvers, arguments, lists, objects, middleware) takes graphql-core's path unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    Undefined,
    is_leaf_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types import Info
from strawberry.types.field import StrawberryField

# Per GraphQL field, by id() (GraphQLField is not hashable): python attribute name, leaf type, non-null, and for
# a list of leaves whether its items are non-null (None: not a list).
PlainLeaves = Mapping[int, tuple[str, GraphQLLeafType, bool, bool | None]]


def install_direct_resolvers(schema: GraphQLSchema, info_class: type[Info]) -> int:
    """For fields with a resolver but no arguments and no extensions (so no permission classes), call the resolver
    straight from graphql-core: strawberry's generic wrapper (argument conversion, the extension chain) costs more
    than e.g. `Campaign.preset` itself. The resolver gets the same `self`/`root`/`info` values as through
    strawberry. Returns how many fields were changed."""
    changed = 0
    for named_type in schema.type_map.values():
        if not is_object_type(named_type) or named_type.name.startswith("__"):
            continue
        for field in named_type.fields.values():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField) or definition.base_resolver is None:
                continue
            if definition.extensions or definition.arguments or field.args:
                continue
            field.resolve = _direct_resolver(definition, info_class)
            changed += 1
    return changed


def _direct_resolver(field: StrawberryField, info_class: type[Info]) -> Callable[..., Any]:
    resolver = field.base_resolver
    assert resolver is not None
    function = resolver.wrapped_func
    pass_self = resolver.self_parameter is not None
    source_names = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p is not None]
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None

    def resolve(source: Any, info: GraphQLResolveInfo) -> Any:
        kwargs = dict.fromkeys(source_names, source)
        if info_name is not None:
            kwargs[info_name] = info_class(_raw_info=info, _field=field)
        return function(source, **kwargs) if pass_self else function(**kwargs)

    return resolve


def plain_leaf_fields(schema: GraphQLSchema) -> dict[int, tuple[str, GraphQLLeafType, bool, bool | None]]:
    """Fields of object types that strawberry resolves by reading an attribute (no resolver, no extensions, no
    arguments, the default getattr resolver) and whose type is a scalar or an enum, or a list of them."""
    plain: dict[int, tuple[str, GraphQLLeafType, bool, bool | None]] = {}
    for named_type in schema.type_map.values():
        if not is_object_type(named_type) or named_type.name.startswith("__"):
            continue
        for field in named_type.fields.values():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField) or not definition.is_basic_field or field.args:
                continue
            if definition.default_resolver is not getattr:
                continue
            non_null = isinstance(field.type, GraphQLNonNull)
            inner = field.type.of_type if non_null else field.type
            item_non_null: bool | None = None
            if isinstance(inner, GraphQLList):
                item_non_null = isinstance(inner.of_type, GraphQLNonNull)
                inner = inner.of_type.of_type if item_non_null else inner.of_type
            if is_leaf_type(inner):
                plain[id(field)] = (definition.python_name, inner, non_null, item_non_null)
    return plain


class HeraldExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context plus the plain-leaf fast path. `plain_leaves` is set per schema."""

    plain_leaves: PlainLeaves = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        # graphql-core's execute_fields, with a plain leaf holding a value completed inline: no Path, no call to
        # execute_field, no awaitable check. Nulls, errors and everything else go through execute_field.
        plain_leaves = self.plain_leaves
        get_field = self.schema.get_field
        complete_leaf_value = self.complete_leaf_value
        middleware = self.middleware_manager
        inline = middleware is None or not middleware.middlewares
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                if inline:
                    node = field_details_list[0].node
                    field_def = get_field(parent_type, node.name.value)
                    plain = plain_leaves.get(id(field_def))
                    if plain is not None and plain[3] is None and not node.arguments:
                        value = getattr(source_value, plain[0], None)
                        if value is not None and value is not Undefined and not isinstance(value, Exception):
                            try:
                                results[response_name] = complete_leaf_value(plain[1], value)
                            except Exception:
                                pass
                            else:
                                continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        first_node = field_details_list[0].node
        field_def: GraphQLField | None = self.schema.get_field(parent_type, first_node.name.value)
        plain = self.plain_leaves.get(id(field_def)) if field_def is not None else None
        middleware = self.middleware_manager  # strawberry passes one per request, usually empty
        if plain is None or first_node.arguments or (middleware is not None and middleware.middlewares):
            return super().execute_field(parent_type, source, field_details_list, path, position_context)
        attribute, leaf_type, non_null, item_non_null = plain
        if item_non_null is not None:
            return self._plain_list(parent_type, source, field_details_list, path, position_context, plain)
        try:
            value = getattr(source, attribute)
            if isinstance(value, Exception):
                raise value
            if value is None or value is Undefined:
                if non_null:
                    raise TypeError(f"Cannot return null for non-nullable field {parent_type}.{first_node.name.value}.")
                return None
            return self.complete_leaf_value(leaf_type, value)
        except Exception as raw_error:
            self.handle_field_error(raw_error, field_def.type, field_details_list, path)  # type: ignore[union-attr]
            return None

    def _plain_list(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
        plain: tuple[str, GraphQLLeafType, bool, bool | None],
    ) -> Any:
        attribute, leaf_type, _, item_non_null = plain
        try:
            value = getattr(source, attribute)
            if isinstance(value, list | tuple) and not (item_non_null and None in value):
                return [None if item is None else self.complete_leaf_value(leaf_type, item) for item in value]
        except Exception:
            pass
        # Anything unusual (null, not a list, a null or invalid item): graphql-core's own path, for its exact errors.
        return super().execute_field(parent_type, source, field_details_list, path, position_context)


def execution_context_for(schema: GraphQLSchema) -> type[HeraldExecutionContext]:
    return type("HeraldExecutionContext", (HeraldExecutionContext,), {"plain_leaves": plain_leaf_fields(schema)})
