"""What the executor needs to know about each field of the schema, worked out once per schema (DESIGN §10: the
read path).

graphql-core asks the same questions for every value it completes: which resolver, does it want arguments, is the
type non-null, a list, a leaf, an object with an `is_type_of` check. A page of 20 campaigns asks them ~400 times.
`FieldPlan` holds the answers per field definition, so `resolvers/execution_context.py` can resolve and complete
the common shapes (an attribute, a direct resolver; a leaf, an object, a list of either) in a few steps and hand
anything else to graphql-core unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    TypeNameMetaFieldDef,
    is_leaf_type,
    is_object_type,
)
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField


class Resolve(IntEnum):
    ATTRIBUTE = 0  # strawberry's basic field: getattr(source, python_name)
    DIRECT = 1  # a direct resolver (resolvers/execution_context.py) that takes no info
    DIRECT_WITH_INFO = 2  # a direct resolver that takes info
    TYPENAME = 3  # __typename: the parent type's name
    GENERIC = 4  # anything else: graphql-core's execute_field


class Complete(IntEnum):
    LEAF = 0
    OBJECT = 1
    LEAF_LIST = 2
    OBJECT_LIST = 3
    GENERIC = 4  # abstract types, nested lists, objects with their own is_type_of: graphql-core's complete_value


@dataclass(frozen=True, slots=True)
class FieldPlan:
    resolve: Resolve
    attribute: str | None  # Resolve.ATTRIBUTE
    resolver: Callable[[Any, Any], Any] | None  # Resolve.DIRECT*: resolver(source, raw_info or None)
    complete: Complete
    non_null: bool  # the field's type
    item_non_null: bool  # the items' type, for lists
    leaf_type: GraphQLLeafType | None  # Complete.LEAF / LEAF_LIST
    object_type: GraphQLObjectType | None  # Complete.OBJECT / OBJECT_LIST
    # The object type's strawberry-made `is_type_of` (an isinstance check that ignores its info argument), if any.
    is_type_of: Callable[[Any, Any], bool] | None
    # The leaf type's `coerce_output_value`, with shortcuts for plain values (`leaf_serializer`).
    serialize: Callable[[Any], Any] | None = None


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def leaf_serializer(leaf_type: GraphQLLeafType) -> Callable[[Any], Any]:
    """`leaf_type.coerce_output_value`, answering plain values without its checks: a str for String and ID, an
    int in range for Int, a bool for Boolean, an enum member seen before for an enum type (its name is kept).
    Anything else, and every error, goes through `coerce_output_value` itself."""
    coerce = leaf_type.coerce_output_value
    if leaf_type is GraphQLString or leaf_type is GraphQLID:
        return lambda value: value if type(value) is str else coerce(value)
    if leaf_type is GraphQLInt:
        return lambda value: value if type(value) is int and _INT_MIN <= value <= _INT_MAX else coerce(value)
    if leaf_type is GraphQLBoolean:
        return lambda value: value if type(value) is bool else coerce(value)
    if isinstance(leaf_type, GraphQLEnumType):
        names: dict[Any, Any] = {}

        def serialize_enum(value: Any) -> Any:
            name = names.get(value) if isinstance(value, Enum) else None
            if name is None:
                name = coerce(value)
                if isinstance(value, Enum) and len(names) < 1000:
                    names[value] = name
            return name

        return serialize_enum
    return coerce


def strawberry_made_is_type_of(object_type: GraphQLObjectType) -> bool:
    """True if the type's `is_type_of` is the check strawberry builds for types implementing interfaces: it reads
    only the value (`_info` unused), so it can be called without building a resolve info."""
    check = object_type.is_type_of
    return (
        check is not None
        and check.__module__ == GraphQLCoreConverter.__module__
        and check.__qualname__.endswith("._get_is_type_of.<locals>.is_type_of")
    )


def _completion(
    return_type: GraphQLOutputType,
) -> tuple[Complete, bool, bool, GraphQLLeafType | None, GraphQLObjectType | None, Any]:
    non_null = isinstance(return_type, GraphQLNonNull)
    inner = return_type.of_type if non_null else return_type
    is_list = isinstance(inner, GraphQLList)
    item_non_null = False
    if is_list:
        item_non_null = isinstance(inner.of_type, GraphQLNonNull)
        inner = inner.of_type.of_type if item_non_null else inner.of_type
    if is_leaf_type(inner):
        kind = Complete.LEAF_LIST if is_list else Complete.LEAF
        return kind, non_null, item_non_null, inner, None, None
    if is_object_type(inner):
        if inner.is_type_of is not None and not strawberry_made_is_type_of(inner):
            return Complete.GENERIC, non_null, item_non_null, None, None, None
        kind = Complete.OBJECT_LIST if is_list else Complete.OBJECT
        return kind, non_null, item_non_null, None, inner, inner.is_type_of
    return Complete.GENERIC, non_null, item_non_null, None, None, None


def _resolution(field: GraphQLField) -> tuple[Resolve, str | None, Callable[[Any, Any], Any] | None]:
    if field.args:
        return Resolve.GENERIC, None, None
    resolve = field.resolve
    needs_info = getattr(resolve, "herald_needs_info", None)
    if needs_info is not None:
        return (Resolve.DIRECT_WITH_INFO if needs_info else Resolve.DIRECT), None, resolve
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        isinstance(definition, StrawberryField)
        and definition.is_basic_field
        and definition.default_resolver is getattr
        and type(definition).get_result is StrawberryField.get_result
        # strawberry's resolver for a basic field without exception handlers: `field.get_result(source, …)`
        and getattr(resolve, "_is_default", False)
    ):
        return Resolve.ATTRIBUTE, definition.python_name, None
    return Resolve.GENERIC, None, None


def field_plan(field: GraphQLField) -> FieldPlan:
    if field is TypeNameMetaFieldDef:
        return FieldPlan(Resolve.TYPENAME, None, None, Complete.GENERIC, True, False, None, None, None)
    resolve, attribute, resolver = _resolution(field)
    complete, non_null, item_non_null, leaf_type, object_type, is_type_of = _completion(field.type)
    serialize = leaf_serializer(leaf_type) if leaf_type is not None else None
    return FieldPlan(
        resolve, attribute, resolver, complete, non_null, item_non_null, leaf_type, object_type, is_type_of, serialize
    )


def field_plans(schema: GraphQLSchema) -> dict[int, FieldPlan]:
    """Plans for every field of the schema's object types (and __typename), by id() of the GraphQLField (which is
    not hashable; the schema keeps each alive)."""
    plans = {id(TypeNameMetaFieldDef): field_plan(TypeNameMetaFieldDef)}
    for named_type in schema.type_map.values():
        if is_object_type(named_type) and not named_type.name.startswith("__"):
            for field in named_type.fields.values():
                plans[id(field)] = field_plan(field)
    return plans
