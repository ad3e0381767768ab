"""Fields whose resolver graphql-core calls directly (DESIGN §10: the read path), installed once on the schema.

For fields with a resolver but no arguments and no extensions (so no permission classes), strawberry's generic
wrapper (argument conversion, the extension chain) costs more than e.g. `Campaign.preset` itself; `Node.id` of a
type that keeps strawberry's defaults is computed without a resolve info. resolvers/execution_context.py executes
the result; resolvers/execution_plan.py reads `herald_needs_info`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema, is_object_type
from strawberry import relay
from strawberry.relay.utils import to_base64
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types import Info
from strawberry.types.field import StrawberryField

# strawberry's resolver of `Node.id` (a classmethod taking root and info).
_NODE_ID_FUNCTION = relay.Node.__dict__["_id"].__func__


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
            node_id = _node_id_resolver(named_type, definition)
            field.resolve = node_id or _direct_resolver(definition, info_class)
            changed += 1
    return changed


def _node_id_resolver(object_type: GraphQLObjectType, field: StrawberryField) -> Callable[..., Any] | None:
    """`Node.id` of a type that keeps strawberry's `resolve_id` and `resolve_typename`: the same GlobalID
    (the GraphQL type's name and `str` of the NodeID attribute) without building a resolve info for each id."""
    resolver = field.base_resolver
    if resolver is None or getattr(resolver.wrapped_func, "__func__", None) is not _NODE_ID_FUNCTION:
        return None
    type_definition = (object_type.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    origin = getattr(type_definition, "origin", None)
    if not (
        isinstance(origin, type)
        and issubclass(origin, relay.Node)
        and origin.resolve_id.__func__ is relay.Node.resolve_id.__func__  # type: ignore[attr-defined]
        and origin.resolve_typename.__func__ is relay.Node.resolve_typename.__func__  # type: ignore[attr-defined]
    ):
        return None
    type_name, id_attr = object_type.name, origin.resolve_id_attr()

    def resolve(source: Any, info: GraphQLResolveInfo) -> Any:
        # The ID as the GlobalID would serialize (ID takes a str as it is).
        return to_base64(type_name, str(getattr(source, id_attr)))

    resolve.herald_needs_info = False  # type: ignore[attr-defined]
    return resolve


def _direct_resolver(field: StrawberryField, info_class: type[Info]) -> Callable[..., Any]:
    resolver = field.base_resolver
    assert resolver is not None
    function = resolver.wrapped_func
    pass_self = resolver.self_parameter is not None
    source_names = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p is not None]
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None

    parameters = list(inspect.signature(function).parameters.values())
    positional = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
    names = [p.name for p in parameters]

    # The two shapes of most resolvers, `def f(self)` and `def f(self, info)`, called without building kwargs.
    if pass_self and positional and info_name is None and len(names) == 1:

        def resolve(source: Any, info: GraphQLResolveInfo) -> Any:
            return function(source)

    elif pass_self and positional and info_name is not None and names[1:] == [info_name]:

        def resolve(source: Any, info: GraphQLResolveInfo) -> Any:
            return function(source, info_class(_raw_info=info, _field=field))

    else:

        def resolve(source: Any, info: GraphQLResolveInfo) -> Any:
            kwargs = dict.fromkeys(source_names, source)
            if info_name is not None:
                kwargs[info_name] = info_class(_raw_info=info, _field=field)
            return function(source, **kwargs) if pass_self else function(**kwargs)

    # Read by resolvers/execution_plan.py: without an info parameter, the executor need not build a resolve info.
    resolve.herald_needs_info = info_name is not None  # type: ignore[attr-defined]
    return resolve
