"""Shared builders for tests: import them from here.

Each builds through the public API (GraphQL in-process) what a test needs, and runs the jobs it queues
(`gql.drain_jobs()`), so what it returns is finished: a validated preset is ACTIVE or FAILED, a finished run is
over. They are defined beside the tests that check them in depth (test_profiles, test_presets, test_segments,
test_campaigns, test_runs); this module is the one name to import them by, so those modules can move them here
without touching their users.
"""

from __future__ import annotations

from tests.conftest import GraphQLClient, SandboxKeys, new_sandbox
from tests.graphql.test_campaigns import ACTIVATE as CAMPAIGN_ACTIVATE
from tests.graphql.test_campaigns import CAMPAIGN_FIELDS, active_in_app_preset, audience, ready_input
from tests.graphql.test_campaigns import CREATE as CAMPAIGN_CREATE
from tests.graphql.test_campaigns import activate as activate_campaign
from tests.graphql.test_campaigns import create as create_campaign
from tests.graphql.test_presets import CREATE as PRESET_CREATE
from tests.graphql.test_presets import create as create_preset
from tests.graphql.test_presets import email_input as email_preset_input
from tests.graphql.test_presets import in_app_input as in_app_preset_input
from tests.graphql.test_presets import validated as validated_preset
from tests.graphql.test_profiles import email as email_profile
from tests.graphql.test_profiles import upsert as upsert_profiles
from tests.graphql.test_segments import CREATE as SEGMENT_CREATE
from tests.graphql.test_segments import cond as segment_condition
from tests.graphql.test_segments import create as create_segment
from tests.jobs.test_runs import email_preset, finished_run, gold, gold_segment

__all__ = [
    "CAMPAIGN_ACTIVATE",
    "CAMPAIGN_CREATE",
    "CAMPAIGN_FIELDS",
    "PRESET_CREATE",
    "SEGMENT_CREATE",
    "GraphQLClient",
    "SandboxKeys",
    "activate_campaign",
    "active_in_app_preset",
    "audience",
    "create_campaign",
    "create_preset",
    "create_segment",
    "email_preset",
    "email_preset_input",
    "email_profile",
    "finished_run",
    "gold",
    "gold_segment",
    "in_app_preset_input",
    "new_sandbox",
    "ready_input",
    "segment_condition",
    "upsert_profiles",
    "validated_preset",
]
