"""The arguments compiled reads take (resolvers/compiled_reads.py): the operation's variables (only `ID`s, as
the id of `campaign` or `node`) and the campaign pk an id stands for, resolved as stock execution resolves it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    VariableNode,
)
from strawberry import relay

from resolvers.compiled_sql import Unsupported
from resolvers.nodes import parse_pk


@dataclass(frozen=True, slots=True)
class VariableId:
    """A parameter holding the campaign pk of the request's variable `name` (`campaign(id: $x)` takes a global or
    a plain id, `node(id: $x)` a campaign's global id only)."""

    name: str
    global_only: bool

    def pk(self, variables: dict[str, Any]) -> int | None:
        value = variables.get(self.name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # ID's input coercion
        if not isinstance(value, str):
            return None
        if not self.global_only:
            from resolvers.campaigns.refusals import campaign_pk

            return campaign_pk(value)
        return campaign_node_pk(value)


def campaign_node_pk(value: str) -> int | None:
    """The pk of a campaign's global id (`node(id:)`); None for anything else."""
    try:
        global_id = relay.GlobalID.from_id(value)
    except relay.GlobalIDValueError:
        return None
    return parse_pk(global_id.node_id) if global_id.type_name == "Campaign" else None


def operation_of(document: DocumentNode) -> tuple[OperationDefinitionNode, frozenset[str]]:
    """The one query operation, and its variables: only `ID` or `ID!` ones without a default (the compiler takes
    them only as the id of `campaign` or `node`)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
        raise Unsupported("one query operation")
    operation = operations[0]
    if operation.directives:
        raise Unsupported("directives")
    names = set()
    for definition in operation.variable_definitions or ():
        type_node = definition.type.type if isinstance(definition.type, NonNullTypeNode) else definition.type
        if (
            not isinstance(type_node, NamedTypeNode)
            or type_node.name.value != "ID"
            or definition.default_value is not None
            or definition.directives
        ):
            raise Unsupported("a variable other than an ID")
        names.add(definition.variable.name.value)
    return operation, frozenset(names)


def id_argument(node: FieldNode, variables: frozenset[str]) -> str | VariableId:
    """The literal id of `campaign`/`node`, or the variable holding it."""
    if len(node.arguments) != 1 or node.arguments[0].name.value != "id":
        raise Unsupported("id argument")
    value = node.arguments[0].value
    if isinstance(value, VariableNode) and value.name.value in variables:
        return VariableId(value.name.value, global_only=node.name.value == "node")
    if not isinstance(value, StringValueNode):
        raise Unsupported("id not a string literal or an ID variable")
    return value.value
