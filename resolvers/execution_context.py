"""A leaner graphql-core execution for the common shapes of fields (DESIGN §10: the read path).

A page of 20 campaigns completes ~100 objects and ~320 fields. For each field graphql-core looks up the definition,
builds a Path and a resolve info, calls strawberry's resolver wrapper and walks `complete_value` through the
non-null, list, leaf and object cases; for each object it collects the subfields again (memoized) through four
calls. That bookkeeping was most of a request's CPU.

Here `execute_fields` works from a per-request list of entries per selection set (response key, field definition,
the field's `FieldPlan` from resolvers/execution_plan.py, the collected subfields of an object field), built the
first time the selection set is met and reused for every object of the page. Fields read off an attribute or
through a direct resolver, completed as a leaf, an object or a list of them, are resolved and completed here; the
field's and its items' errors go through graphql-core's `handle_field_error` at the same places and with the
same messages as graphql-core would raise them. Everything else takes graphql-core's own path: resolvers with
arguments or strawberry's wrapper, abstract types, awaitables (once resolved), odd values (not a list, a
coercion that fails), @defer/@stream, field middleware. Field collection (fragments, @skip/@include with their
variables) stays graphql-core's, memoized per request as graphql-core does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import collect_iterator_awaitables, invalid_return_type_error
from graphql.language import FieldNode
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.execution_plan import Complete, FieldPlan, Resolve, field_plans

# One per response key of a selection set: key, field details, definition, plan, how to complete (the plan's, or
# GENERIC where this selection needs graphql-core: @defer below it, @stream on it), field nodes, and for an object
# field the collected subfields of its type.
Entry = tuple[str, FieldDetailsList, GraphQLField, FieldPlan, Complete, list[FieldNode], GroupedFieldSet | None]

_ATTRIBUTE, _DIRECT, _TYPENAME, _GENERIC = Resolve.ATTRIBUTE, Resolve.DIRECT, Resolve.TYPENAME, Resolve.GENERIC
_LEAF, _OBJECT, _LEAF_LIST, _OBJECT_LIST = Complete.LEAF, Complete.OBJECT, Complete.LEAF_LIST, Complete.OBJECT_LIST
# Values a resolver returns that are neither awaitable nor an error: serialized on the spot.
_PLAIN_TYPES = frozenset({str, int, bool, float})
_UNSET: Any = object()


class HeraldExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with planned field execution. `field_plans` is set per schema."""

    field_plans: Mapping[int, FieldPlan] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        middleware = self.middleware_manager  # strawberry passes one per request, usually without middlewares
        self._planned = middleware is None or not middleware.middlewares
        # id(grouped field set) -> (the set, its parent type, its entries). The sets live as long as the request
        # (graphql-core memoizes them); keeping each here too means its id cannot be reused meanwhile.
        self._entries: dict[int, tuple[GroupedFieldSet, GraphQLObjectType, list[Entry]]] = {}

    def _plan_entries(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet, keep: bool
    ) -> list[Entry]:
        entries: list[Entry] = []
        get_field = self.schema.get_field
        plans = self.field_plans
        for response_name, field_details_list in grouped_field_set.items():
            nodes = [details.node for details in field_details_list]
            field_def = get_field(parent_type, nodes[0].name.value)
            plan = plans.get(id(field_def)) if field_def is not None else None
            if field_def is None or plan is None:
                plan = _GENERIC_PLAN
            complete = plan.complete
            sub_fields = None
            if complete in (_OBJECT, _OBJECT_LIST):
                assert plan.object_type is not None
                collected = self.collect_subfields(plan.object_type, field_details_list)
                if collected.new_defer_usages:
                    complete = Complete.GENERIC
                sub_fields = collected.grouped_field_set
            if complete in (_LEAF_LIST, _OBJECT_LIST) and any(
                directive.name.value == "stream" for node in nodes for directive in node.directives or ()
            ):
                complete = Complete.GENERIC
            entries.append((response_name, field_details_list, field_def, plan, complete, nodes, sub_fields))  # type: ignore[arg-type]
        if keep:
            self._entries[id(grouped_field_set)] = (grouped_field_set, parent_type, entries)
        return entries

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if position_context is not None or not self._planned:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        cached = self._entries.get(id(grouped_field_set))
        if cached is not None and cached[0] is grouped_field_set and cached[1] is parent_type:
            entries = cached[2]
        else:
            # Root fields run once per operation (or per subscription event, each with a new set): not kept.
            entries = self._plan_entries(parent_type, grouped_field_set, keep=path is not None)
        parent_name = parent_type.name
        is_awaitable = self.is_awaitable
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        try:
            for entry in entries:
                response_name, field_details_list, _, plan, complete, _, _ = entry
                resolve = plan.resolve
                if resolve is _ATTRIBUTE and complete is _LEAF:
                    # The commonest field: a scalar or enum attribute holding a value. Nulls, exceptions and failed
                    # coercions are left to the planned path below, which raises them as graphql-core does.
                    value = getattr(source_value, plan.attribute, None)  # type: ignore[arg-type]
                    if value is not None and value is not Undefined and not isinstance(value, Exception):
                        try:
                            coerced = plan.serialize(value)  # type: ignore[misc]
                        except Exception:
                            coerced = None
                        if coerced is not None and coerced is not Undefined:
                            results[response_name] = coerced
                            continue
                elif resolve is _DIRECT and complete is _LEAF:
                    # A leaf through a resolver without info (e.g. Node.id): resolved once here, then completed
                    # here when plain, else by the planned path with the value already resolved.
                    try:
                        value = plan.resolver(source_value, None)  # type: ignore[misc]
                        coerced = None
                        if value is not None and value is not Undefined and type(value) in _PLAIN_TYPES:
                            coerced = plan.serialize(value)  # type: ignore[misc]
                    except Exception as raw_error:
                        self.handle_field_error(
                            raw_error, entry[2].type, field_details_list, Path(path, response_name, parent_name)
                        )
                        results[response_name] = None
                        continue
                    if coerced is not None and coerced is not Undefined:
                        results[response_name] = coerced
                        continue
                    result = self._execute_planned_field(parent_type, source_value, path, entry, value)
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
                    continue
                elif resolve is _TYPENAME:
                    results[response_name] = parent_name
                    continue
                if resolve is _GENERIC:
                    result = self.execute_field(
                        parent_type, source_value, field_details_list, Path(path, response_name, parent_name), None
                    )
                    if result is Undefined:
                        continue
                else:
                    result = self._execute_planned_field(parent_type, source_value, path, entry)
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

    def _execute_planned_field(
        self, parent_type: GraphQLObjectType, source: Any, path: Path | None, entry: Entry, resolved: Any = _UNSET
    ) -> Any:
        """graphql-core's execute_field for a field read off an attribute or through a direct resolver: the same
        resolve call (unless `resolved` holds its result already), then the completion of the plan or
        graphql-core's `complete_value`."""
        response_name, field_details_list, field_def, plan, complete, nodes, sub_fields = entry
        field_path = Path(path, response_name, parent_type.name)
        return_type = field_def.type
        info = None
        try:
            resolve = plan.resolve
            if resolved is not _UNSET:
                result = resolved
            elif resolve is _ATTRIBUTE:
                result = getattr(source, plan.attribute)  # type: ignore[arg-type]
            elif resolve is _DIRECT:
                result = plan.resolver(source, None)  # type: ignore[misc]
            else:
                info = self.build_resolve_info(field_def, nodes, parent_type, field_path)
                result = plan.resolver(source, info)  # type: ignore[misc]

            if self.is_awaitable(result):
                if info is None:
                    info = self.build_resolve_info(field_def, nodes, parent_type, field_path)
                return self.complete_awaitable_value(return_type, field_details_list, info, field_path, result, None)

            if complete is _OBJECT or complete is _LEAF:
                # complete_value's first steps: an exception is raised, null checked against non-null
                if isinstance(result, Exception):
                    raise result
                if result is None or result is Undefined:
                    if plan.non_null:
                        raise _non_null_error(parent_type, nodes)
                    return None
                if complete is _LEAF:
                    if type(result) in _PLAIN_TYPES:
                        serialized = plan.serialize(result)  # type: ignore[misc]
                        if serialized is not None and serialized is not Undefined:
                            return serialized
                    return self.complete_leaf_value(plan.leaf_type, result)  # type: ignore[arg-type]
                completed = self._complete_object(plan, field_details_list, field_path, result, sub_fields)  # type: ignore[arg-type]
            elif (
                (complete is _OBJECT_LIST or complete is _LEAF_LIST)
                and (type(result) is list or type(result) is tuple)
                and not isinstance(result, Exception)
            ):
                if complete is _LEAF_LIST:
                    completed = self._complete_leaf_list(plan, result)
                    if completed is None:  # something unusual in it: graphql-core's path, for its exact errors
                        info = info or self.build_resolve_info(field_def, nodes, parent_type, field_path)
                        completed = self.complete_value(return_type, field_details_list, info, field_path, result, None)
                else:
                    completed = self._complete_object_list(
                        plan,
                        parent_type,
                        field_def,
                        field_details_list,
                        nodes,
                        field_path,
                        result,
                        sub_fields,
                        info,  # type: ignore[arg-type]
                    )
            else:
                if info is None:
                    info = self.build_resolve_info(field_def, nodes, parent_type, field_path)
                completed = self.complete_value(return_type, field_details_list, info, field_path, result, None)
            if self.is_awaitable(completed):
                return self._await_completed(completed, return_type, field_details_list, field_path)
            return completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, field_path)
            return None

    def _complete_object(
        self,
        plan: FieldPlan,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        sub_fields: GroupedFieldSet,
    ) -> Any:
        """complete_object_value for a concrete type: its is_type_of check, then its subfields."""
        object_type = plan.object_type
        assert object_type is not None
        is_type_of = plan.is_type_of
        if is_type_of is not None and not is_type_of(result, None):
            raise invalid_return_type_error(object_type, result, field_details_list)
        return self.execute_fields(object_type, result, path, sub_fields, None)

    def _complete_leaf_list(self, plan: FieldPlan, items: list[Any] | tuple[Any, ...]) -> list[Any] | None:
        """A list of scalars or enums with nothing unusual in it, or None (then graphql-core's path decides)."""
        coerce = plan.serialize
        is_awaitable = self.is_awaitable
        completed: list[Any] = []
        for item in items:
            if item is None or item is Undefined:
                if plan.item_non_null:
                    return None
                completed.append(None)
                continue
            if isinstance(item, Exception) or is_awaitable(item):
                return None
            try:
                coerced = coerce(item)
            except Exception:
                return None
            if coerced is None or coerced is Undefined:
                return None
            completed.append(coerced)
        return completed

    def _complete_object_list(
        self,
        plan: FieldPlan,
        parent_type: GraphQLObjectType,
        field_def: GraphQLField,
        field_details_list: FieldDetailsList,
        nodes: list[FieldNode],
        path: Path,
        items: list[Any] | tuple[Any, ...],
        sub_fields: GroupedFieldSet,
        info: GraphQLResolveInfo | None,
    ) -> Any:
        """graphql-core's complete_iterable_value and complete_list_item_value for a list of a concrete type."""
        return_type = field_def.type
        list_type = return_type.of_type if plan.non_null else return_type  # type: ignore[union-attr]
        item_type: GraphQLOutputType = list_type.of_type  # type: ignore[union-attr]
        object_type = plan.object_type
        assert object_type is not None
        is_type_of = plan.is_type_of
        is_awaitable = self.is_awaitable
        completed_results: list[Any] = []
        awaitable_indices: list[int] = []
        iterator = iter(items)
        index = 0
        try:
            for item in iterator:
                item_path = Path(path, index, None)
                if is_awaitable(item):
                    if info is None:
                        info = self.build_resolve_info(field_def, nodes, parent_type, path)
                    completed_results.append(
                        self.complete_awaitable_list_item_value(
                            item, item_type, field_details_list, info, item_path, None
                        )
                    )
                    awaitable_indices.append(index)
                else:
                    try:
                        if isinstance(item, Exception):
                            raise item
                        if item is None or item is Undefined:
                            if plan.item_non_null:
                                raise _non_null_error(parent_type, nodes)
                            completed = None
                        else:
                            if is_type_of is not None and not is_type_of(item, None):
                                raise invalid_return_type_error(object_type, item, field_details_list)
                            completed = self.execute_fields(object_type, item, item_path, sub_fields, None)
                            if is_awaitable(completed):
                                completed = self._await_completed(completed, item_type, field_details_list, item_path)
                                awaitable_indices.append(index)
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                        completed = None
                    completed_results.append(completed)
                index += 1
        except Exception:
            pending = [completed_results[i] for i in awaitable_indices]
            pending.extend(collect_iterator_awaitables(iterator, is_awaitable))
            if pending:
                self.settle_in_background(pending)
            raise
        if not awaitable_indices:
            return completed_results

        async def get_completed_results() -> list[Any]:
            if len(awaitable_indices) == 1:
                index = awaitable_indices[0]
                completed_results[index] = await completed_results[index]
            else:
                awaited = await gather_with_cancel(*(completed_results[i] for i in awaitable_indices))
                for i, value in zip(awaitable_indices, awaited, strict=True):
                    completed_results[i] = value
            return completed_results

        return get_completed_results()

    async def _await_completed(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None


_GENERIC_PLAN = FieldPlan(Resolve.GENERIC, None, None, Complete.GENERIC, False, False, None, None, None)


def _non_null_error(parent_type: GraphQLObjectType, nodes: list[FieldNode]) -> TypeError:
    return TypeError(f"Cannot return null for non-nullable field {parent_type}.{nodes[0].name.value}.")


def execution_context_for(schema: GraphQLSchema) -> type[HeraldExecutionContext]:
    return type("HeraldExecutionContext", (HeraldExecutionContext,), {"field_plans": field_plans(schema)})
