from pathlib import Path

from graphql import GraphQLEnumType
from strawberry.printer import print_schema

from resolvers.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    assert print_schema(schema).strip() == SCHEMA_FILE.read_text().strip(), (
        "schema.graphql is out of date: regenerate it with `herald export-schema -o schema.graphql`"
    )


def test_every_type_and_field_has_a_description() -> None:
    missing = []
    for name, graphql_type in schema._schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for argument_name, argument in getattr(field, "args", {}).items():
                if not argument.description:
                    missing.append(f"{name}.{field_name}({argument_name})")
    assert missing == []


def test_every_enum_value_has_a_description() -> None:
    missing = [
        f"{name}.{value_name}"
        for name, graphql_type in schema._schema.type_map.items()
        if isinstance(graphql_type, GraphQLEnumType) and not name.startswith("__")
        for value_name, value in graphql_type.values.items()
        if not value.description
    ]
    assert missing == []
