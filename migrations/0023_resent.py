from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# Issue 22: messages sent again after a crash. A delivery counts its hand-offs to the provider within one claim
# (kept when an expired lease is claimed again), the run counts the hand-offs that were not the first.


class Migration(migrations.Migration):
    dependencies = [("herald", "0022_sandbox_time_zone")]

    initial = False

    operations = [
        ops.AddField(model_name="Delivery", name="hand_offs", field=fields.SmallIntField(default=0, db_default=0)),
        ops.AddField(model_name="CampaignRun", name="resent", field=fields.IntField(default=0, db_default=0)),
    ]
