"""Custom identity namespaces: codes are immutable and unique per sandbox; namespaces are never deleted."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from models.audience.profiles import FieldProblem
from models.audience.values import ValueProblem, check_namespace_code
from models.tenancy.audit import record_audit
from models.tenancy.identity import IdentityNamespace, IdentityType

MAX_NAME_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 2000


class NamespaceRefused(Exception):
    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


async def create_namespace(
    sandbox_id: int, *, code: str, name: str, type: IdentityType, description: str, actor: str
) -> IdentityNamespace:
    problems: list[FieldProblem] = []
    try:
        check_namespace_code(code)
    except ValueProblem as problem:
        problems.append(FieldProblem("input.code", problem.code, problem.message))
    if not name.strip() or len(name) > MAX_NAME_LENGTH or "\x00" in name:
        problems.append(FieldProblem("input.name", "INVALID", f"1 to {MAX_NAME_LENGTH} characters, no NUL"))
    if len(description) > MAX_DESCRIPTION_LENGTH or "\x00" in description:
        problems.append(
            FieldProblem("input.description", "INVALID", f"at most {MAX_DESCRIPTION_LENGTH} characters, no NUL")
        )
    if problems:
        raise NamespaceRefused(problems)
    async with in_transaction() as conn:
        # Codes differing only in case would be confusing in CSV headers and templates: refuse them too.
        codes = await IdentityNamespace.filter(sandbox_id=sandbox_id).using_db(conn).values_list("code", flat=True)
        if code.lower() in {c.lower() for c in codes}:
            raise NamespaceRefused([FieldProblem("input.code", "TAKEN", "a namespace with this code exists")])
        namespace = await IdentityNamespace.create(
            sandbox_id=sandbox_id,
            code=code,
            name=name.strip(),
            type=type,
            description=description,
            standard=False,
            using_db=conn,
        )
        await record_audit(
            sandbox_id=sandbox_id,
            actor=actor,
            action="CREATE",
            object_type="IdentityNamespace",
            object_id=namespace.id,
            after={"code": code, "name": namespace.name, "type": type.value},
            using_db=conn,
        )
    return namespace
