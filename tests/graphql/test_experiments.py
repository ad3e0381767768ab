"""Content experiments through GraphQL: the experiment stored and read back, its input refused field by field,
the review of every treatment and the plan's arms, proofs of a chosen treatment."""

from __future__ import annotations

from typing import Any

from models.tenancy.sandbox import Role
from tests.conftest import GraphQLClient, SandboxKeys
from tests.graphql.test_campaigns import ERRORS, active_in_app_preset, audience, create, key, ready_input

EXPERIMENT_FIELDS = """
fragment X on Campaign { id version
  experiment { holdoutShare metric mode testShare testDurationSeconds fallback winner
    treatments { key name weight control content { inApp { title body } email { subject } } } } }
"""
CREATE = (
    "mutation($input: CampaignCreateInput!) { campaignCreate(input: $input) { __typename "
    "... on CampaignSuccess { campaign { ...X } } " + ERRORS + " } }" + EXPERIMENT_FIELDS
)
UPDATE = (
    "mutation($input: CampaignUpdateInput!) { campaignUpdate(input: $input) { __typename "
    "... on CampaignSuccess { campaign { ...X } } " + ERRORS + " } }" + EXPERIMENT_FIELDS
)
REVIEW = """
query($id: ID!) { campaignReview(id: $id) { __typename
  ... on CampaignReview { canActivate alerts { severity code field message }
    plan { contactable experimentArms { treatment arm expected } } } } }
"""


def in_app(title: str, body: str = "Body") -> dict[str, Any]:
    return {"inApp": {"title": title, "body": body}}


def experiment(**overrides: Any) -> dict[str, Any]:
    return {
        "treatments": [
            {"key": "A", "name": "Control", "content": in_app("Hello A")},
            {"key": "B", "name": "Bold", "weight": 3, "content": in_app("Hello B")},
        ],
        "holdoutShare": 0.1,
        "metric": "UNIQUE_CLICKS",
        **overrides,
    }


async def test_experiment_is_stored_and_read_back(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox)
    created = (
        await gql(
            CREATE,
            {"input": ready_input(preset_id, segment_id, experiment=experiment())},
            key=key(sandbox, Role.MANAGER),
        )
    )["campaignCreate"]
    assert created["__typename"] == "CampaignSuccess", created
    got = created["campaign"]["experiment"]
    assert got == {
        "holdoutShare": 0.1,
        "metric": "UNIQUE_CLICKS",
        "mode": "SPLIT",
        "testShare": None,
        "testDurationSeconds": None,
        "fallback": "CONTROL",
        "winner": None,
        "treatments": [
            {
                "key": "A",
                "name": "Control",
                "weight": 1,
                "control": True,
                "content": {"inApp": {"title": "Hello A", "body": "Body"}, "email": None},
            },
            {
                "key": "B",
                "name": "Bold",
                "weight": 3,
                "control": False,
                "content": {"inApp": {"title": "Hello B", "body": "Body"}, "email": None},
            },
        ],
    }
    # An edit keeps the assignment key (the stored salt), null removes the experiment.
    from models.campaigns.campaign import Campaign
    from tests.jobs.test_dispatcher import pk

    salt = (await Campaign.get(id=pk(created["campaign"]["id"]))).experiment["key"]
    changed = experiment(mode="TEST_THEN_WINNER", testShare=0.2, testDurationSeconds=3600, fallback="BEST_SO_FAR")
    update = {"id": created["campaign"]["id"], "version": created["campaign"]["version"], "experiment": changed}
    updated = (await gql(UPDATE, {"input": update}, key=key(sandbox, Role.MANAGER)))["campaignUpdate"]
    assert updated["campaign"]["experiment"]["mode"] == "TEST_THEN_WINNER", updated
    assert updated["campaign"]["experiment"]["fallback"] == "BEST_SO_FAR"
    assert (await Campaign.get(id=pk(created["campaign"]["id"]))).experiment["key"] == salt
    cleared = {"id": created["campaign"]["id"], "version": updated["campaign"]["version"], "experiment": None}
    removed = (await gql(UPDATE, {"input": cleared}, key=key(sandbox, Role.MANAGER)))["campaignUpdate"]
    assert removed["campaign"]["experiment"] is None


async def test_bad_experiment_is_refused_naming_each_field(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    bad = {
        "treatments": [
            {"key": "A", "content": in_app("A")},
            {"key": "A", "weight": 0, "content": in_app("B")},
            {"key": "c d", "content": {"email": {"subject": "x" * 500_001}}},
        ],
        "holdoutShare": 0.6,
        "mode": "TEST_THEN_WINNER",
    }
    result = (await gql(CREATE, {"input": {"name": "X", "experiment": bad}}, key=key(sandbox, Role.MANAGER)))[
        "campaignCreate"
    ]
    assert result["__typename"] == "InvalidInputError", result
    assert sorted((e["field"], e["code"]) for e in result["fieldErrors"]) == [
        ("input.experiment.holdoutShare", "OUT_OF_RANGE"),
        ("input.experiment.testDuration", "REQUIRED"),
        ("input.experiment.testShare", "REQUIRED"),
        ("input.experiment.treatments[1].key", "TAKEN"),
        ("input.experiment.treatments[1].weight", "OUT_OF_RANGE"),
        ("input.experiment.treatments[2].content.email.subject", "TOO_LONG"),
        ("input.experiment.treatments[2].key", "INVALID_CHARACTER"),
    ]
    one = {"treatments": [{"key": "A", "content": in_app("A")}]}
    result = (await gql(CREATE, {"input": {"name": "X", "experiment": one}}, key=key(sandbox, Role.MANAGER)))[
        "campaignCreate"
    ]
    assert [(e["field"], e["code"]) for e in result["fieldErrors"]] == [("input.experiment.treatments", "OUT_OF_RANGE")]


async def test_review_checks_every_treatment_and_plans_the_arms(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=8)
    treatments = [
        {"key": "A", "content": in_app("Hi {{ profile.person.name.firstName }}")},
        {"key": "B", "weight": 3, "content": {"inApp": {"title": "", "body": "Body"}}},
        {"key": "C", "content": in_app("{% if %}")},
    ]
    campaign = await create(
        gql,
        sandbox,
        ready_input(preset_id, segment_id, experiment={"treatments": treatments, "holdoutShare": 0.25}),
    )
    review = (await gql(REVIEW, {"id": campaign["id"]}, key=key(sandbox, Role.MANAGER)))["campaignReview"]
    assert review["canActivate"] is False
    errors = {(a["code"], a["field"]) for a in review["alerts"] if a["severity"] == "ERROR"}
    assert ("IN_APP_CONTENT_MISSING", "experiment.treatments[1].content.inApp.title") in errors
    assert ("TEMPLATE_SYNTAX", "experiment.treatments[2].content.inApp.title") in errors
    assert not [a for a in review["alerts"] if a["field"].startswith("experiment.treatments[0]")]
    assert any(a["message"].startswith("Treatment B: ") for a in review["alerts"])
    # 8 contactable: 2 expected in the holdout, the other 6 split 1:3:1.
    plan = review["plan"]
    assert plan["contactable"] == 8
    assert plan["experimentArms"] == [
        {"treatment": "A", "arm": "TEST", "expected": 6 * 1 / 5},
        {"treatment": "B", "arm": "TEST", "expected": 6 * 3 / 5},
        {"treatment": "C", "arm": "TEST", "expected": 6 * 1 / 5},
        {"treatment": None, "arm": "HOLDOUT", "expected": 2.0},
    ]


RESULTS = """query($id: ID!) { campaignExperimentResults(id: $id) { __typename
  ... on ExperimentResults { status winner chosen chosenReason winnerChosenBy heldOut
    treatments { key control recipients count rate pValue } }
  ... on NotFoundError { id } } }"""
SELECT = """mutation($input: CampaignExperimentSelectWinnerInput!) { campaignExperimentSelectWinner(input: $input) {
  __typename ... on CampaignExperimentSelectWinnerSuccess { campaign { experiment { winner } } run { id } }
  ... on InvalidStateError { message currentStatus } ... on InvalidInputError { fieldErrors { field code } }
  ... on NotFoundError { id } } }"""


async def test_results_and_the_manual_winner(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    from models.tenancy.audit import AuditEvent
    from tests.graphql.test_campaigns import activate
    from tests.jobs.test_dispatcher import pk

    preset_id = await active_in_app_preset(gql, sandbox)
    segment_id = await audience(gql, sandbox, size=12)
    campaign = await create(gql, sandbox, ready_input(preset_id, segment_id, experiment=experiment(holdoutShare=0.0)))
    publisher = key(sandbox, Role.PUBLISHER)
    # A draft: nothing to choose from yet.
    draft = await gql(SELECT, {"input": {"id": campaign["id"], "treatment": "B"}}, key=publisher)
    assert draft["campaignExperimentSelectWinner"]["__typename"] == "InvalidStateError"
    assert (await activate(gql, sandbox, campaign["id"]))["__typename"] == "CampaignActivateSuccess"
    viewer = key(sandbox, Role.VIEWER)
    running = (await gql(RESULTS, {"id": campaign["id"]}, key=viewer))["campaignExperimentResults"]
    assert running["status"] == "RUNNING", running
    await gql.drain_jobs()
    over = (await gql(RESULTS, {"id": campaign["id"]}, key=viewer))["campaignExperimentResults"]
    # In-app messages have no clicks here: nothing significant, every one of the 12 sent.
    assert over["status"] == "INCONCLUSIVE" and over["heldOut"] == 0
    assert [t["key"] for t in over["treatments"]] == ["A", "B"]
    assert sum(t["recipients"] for t in over["treatments"]) == 12 and {t["count"] for t in over["treatments"]} == {0}

    unknown = await gql(SELECT, {"input": {"id": campaign["id"], "treatment": "Z"}}, key=publisher)
    assert unknown["campaignExperimentSelectWinner"]["fieldErrors"] == [
        {"field": "input.treatment", "code": "NOT_FOUND"}
    ]
    chosen = (await gql(SELECT, {"input": {"id": campaign["id"], "treatment": "B"}}, key=publisher))[
        "campaignExperimentSelectWinner"
    ]
    assert chosen["__typename"] == "CampaignExperimentSelectWinnerSuccess", chosen
    assert chosen["campaign"]["experiment"]["winner"] == "B" and chosen["run"] is None  # SPLIT: no second run
    again = await gql(SELECT, {"input": {"id": campaign["id"], "treatment": "A"}}, key=publisher)
    assert again["campaignExperimentSelectWinner"]["__typename"] == "InvalidStateError"
    final = (await gql(RESULTS, {"id": campaign["id"]}, key=viewer))["campaignExperimentResults"]
    assert (final["status"], final["winner"], final["chosenReason"]) == ("WINNER", "B", "MANUAL")
    assert final["winnerChosenBy"] is not None and final["winnerChosenBy"].startswith("apikey:")
    audit = await AuditEvent.filter(action="SELECT_WINNER", object_id=str(pk(campaign["id"]))).values("after")
    assert [a["after"]["winner"] for a in audit] == ["B"]

    # A copy is a new experiment: same treatments, no winner, its own assignment key.
    from models.campaigns.campaign import Campaign as CampaignModel

    copied = await gql(
        "mutation($id: ID!) { campaignDuplicate(input: {id: $id}) { ... on CampaignSuccess { campaign { id "
        "experiment { winner treatments { key } } } } } }",
        {"id": campaign["id"]},
        key=key(sandbox, Role.MANAGER),
    )
    copy = copied["campaignDuplicate"]["campaign"]
    assert copy["experiment"] == {"winner": None, "treatments": [{"key": "A"}, {"key": "B"}]}
    salts = {(await CampaignModel.get(id=pk(c))).experiment["key"] for c in (campaign["id"], copy["id"])}
    assert len(salts) == 2

    # A campaign without an experiment has no results.
    plain = await create(gql, sandbox, ready_input(preset_id, segment_id))
    none = (await gql(RESULTS, {"id": plain["id"]}, key=viewer))["campaignExperimentResults"]
    assert none["__typename"] == "NotFoundError"
