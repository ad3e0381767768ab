"""The rule modules stay pure: importing them pulls in neither Tortoise nor Strawberry (STYLE: layout)."""

import subprocess
import sys
from pathlib import Path

PURE_MODULES = [
    "models.campaigns.rules",
    "models.campaigns.run_rules",
    "models.ledger.delivery_rules",
    "models.campaigns.templates",
    "models.campaigns.schedule",
    "models.campaigns.email_html",
    "models.campaigns.review_snapshot",
    "models.campaigns.review",
    "models.audience.segment_rules",
    "models.audience.segment_sql",
    "models.presets.rules",
    "models.presets.channel_rules",
    "models.presets.secret_box",
    "models.reporting.link_tracking",
    "models.reporting.tracking_tokens",
    "models.sql.params",
    "models.outbox.payloads",
    "models.webhooks.rules",
]
FORBIDDEN = ("tortoise", "strawberry", "api", "resolvers", "jobs")


def test_rule_modules_import_no_framework() -> None:
    code = (
        "import sys\n"
        f"for name in {PURE_MODULES!r}: __import__(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "[]"
