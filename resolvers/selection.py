"""What a query selects on the object a field returns, read off graphql-core's syntax tree and kept per field
node: the same persisted document yields the same nodes request after request (the parser cache), so the walk is
done once per document instead of building strawberry's `info.selected_fields` each time (issue 22: 6% of a
`campaign(id:)` request)."""

from __future__ import annotations

from graphql import FieldNode, FragmentSpreadNode, GraphQLResolveInfo, InlineFragmentNode, SelectionSetNode

from resolvers.context import Info

_CACHE_SIZE = 512
# (ids of the field nodes, type name) -> (the nodes, kept so their ids stay theirs; the tree)
_trees: dict[tuple[tuple[int, ...], str], tuple[tuple[FieldNode, ...], dict[str, frozenset[str]]]] = {}


def selected_object_tree(info: Info, type_name: str) -> dict[str, frozenset[str]]:
    """The fields the query selects on the object the current field returns, as an object of type `type_name`
    (fragments on other types of an interface or union left out), each with the names of the fields selected
    under it (through fragments): what a single-object field may read in one statement. @skip and @include are
    not evaluated: a field they leave out is still read, never one they keep missed."""
    raw: GraphQLResolveInfo = info._raw_info
    nodes = tuple(raw.field_nodes)
    key = (tuple(id(node) for node in nodes), type_name)
    cached = _trees.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], nodes, strict=True)):
        return cached[1]
    tree = _object_tree(nodes, raw, type_name)
    if len(_trees) >= _CACHE_SIZE:
        _trees.clear()
    _trees[key] = (nodes, tree)
    return tree


def _object_tree(nodes: tuple[FieldNode, ...], raw: GraphQLResolveInfo, type_name: str) -> dict[str, frozenset[str]]:
    fragments = raw.fragments
    tree: dict[str, set[str]] = {}

    def applies(condition: object) -> bool:
        return condition is None or condition.name.value in (type_name, "Node")  # type: ignore[attr-defined]

    def names_under(selection_set: SelectionSetNode | None, into: set[str]) -> None:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                into.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                names_under(selection.selection_set, into)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
                names_under(fragments[selection.name.value].selection_set, into)

    def walk(selection_set: SelectionSetNode | None) -> None:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                names_under(selection.selection_set, tree.setdefault(selection.name.value, set()))
            elif isinstance(selection, InlineFragmentNode):
                if applies(selection.type_condition):
                    walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None and applies(fragment.type_condition):
                    walk(fragment.selection_set)

    for node in nodes:
        walk(node.selection_set)
    return {name: frozenset(under) for name, under in tree.items()}
