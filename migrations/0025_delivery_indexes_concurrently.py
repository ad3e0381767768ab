from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

# Issue 17: the two `delivery` indexes of the shared trigger runs (0024), built on PostgreSQL with CREATE INDEX
# CONCURRENTLY, which writes to `delivery` (sends, acceptances) do not wait for while it reads a large table; it
# cannot run in a transaction, so this migration is not atomic (each statement commits on its own). IF NOT
# EXISTS: a database that ran 0024 when 0024 built them has them already. A build that failed half-way leaves an
# INVALID index that IF NOT EXISTS would keep: docs/operations.md says to drop it and migrate again.


class _AddIndexConcurrently(ops.AddIndex):
    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:  # type: ignore[no-untyped-def]
        if state_editor is None:
            return
        model = new_state.apps.get_model(f"{app_label}.{self.model_name}")
        name = state_editor._index_name_for_model(model, self.index)
        columns = ", ".join(f'"{field}"' for field in self.index.field_names)
        # SQLite has one writer at a time anyway: a plain build there.
        concurrently = "CONCURRENTLY " if state_editor.DIALECT == "postgres" else ""
        await state_editor._run_sql(
            f'CREATE INDEX {concurrently}IF NOT EXISTS "{name}" ON "{model._meta.db_table}" ({columns})'
        )


class Migration(migrations.Migration):
    dependencies = [("herald", "0024_trigger_runs")]

    initial = False
    atomic = False

    operations = [
        _AddIndexConcurrently(model_name="Delivery", index=Index(fields=["run_id", "profile_id"])),
        _AddIndexConcurrently(model_name="Delivery", index=Index(fields=["trigger_id"])),
    ]
