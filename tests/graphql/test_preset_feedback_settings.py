"""Email presets carry the credentials of the provider feedback webhooks: refused with field errors when
malformed, stored sealed, shown only as "set"."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from models.presets.preset import MessagePreset
from models.presets.secret_box import SecretBox
from tests.conftest import TEST_SECRET, GraphQLClient, SandboxKeys
from tests.graphql.test_presets import email_input

FEEDBACK = """mutation($input: MessagePresetCreateInput!) { messagePresetCreate(input: $input) { __typename
  ... on MessagePresetCreateSuccess { preset { id settings { ... on EmailPresetSettings {
    sesTopicArn sendgridWebhookPublicKeySet mailgunWebhookSigningKeySet postmarkWebhookUsername
    postmarkWebhookPasswordSet } } } }
  ... on InvalidInputError { fieldErrors { field code } } } }"""
PUBLIC_KEY = base64.b64encode(
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()
PREFIX = "input.settings.email."


@pytest.mark.parametrize(
    ("email", "field", "code"),
    [
        ({"sesTopicArn": "arn:aws:sqs:us-east-1:123456789012:q"}, "sesTopicArn", "INVALID_FORMAT"),
        ({"sendgridWebhookPublicKey": "bm90IGEga2V5"}, "sendgridWebhookPublicKey", "INVALID_FORMAT"),
        ({"postmarkWebhookUsername": "pm"}, "postmarkWebhookPassword", "REQUIRED"),
        ({"postmarkWebhookPassword": "secret"}, "postmarkWebhookUsername", "REQUIRED"),
        ({"postmarkWebhookUsername": "a:b", "postmarkWebhookPassword": "s"}, "postmarkWebhookUsername",
         "INVALID_CHARACTERS"),
    ],
)  # fmt: skip
async def test_bad_feedback_settings_are_field_errors(
    gql: GraphQLClient, sandbox: SandboxKeys, email: dict, field: str, code: str
) -> None:
    result = (await gql(FEEDBACK, {"input": email_input("Fb", 2525, email=email)}, key=sandbox.admin))[
        "messagePresetCreate"
    ]
    assert result == {"__typename": "InvalidInputError", "fieldErrors": [{"field": PREFIX + field, "code": code}]}


async def test_feedback_credentials_are_sealed_and_shown_as_set(gql: GraphQLClient, sandbox: SandboxKeys) -> None:
    email = {
        "sesTopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-feedback",
        "sendgridWebhookPublicKey": PUBLIC_KEY,
        "mailgunWebhookSigningKey": "mailgun-signing-key",
        "postmarkWebhookUsername": "postmark",
        "postmarkWebhookPassword": "postmark-password",
    }
    result = (await gql(FEEDBACK, {"input": email_input("Fb", 2525, email=email)}, key=sandbox.admin))[
        "messagePresetCreate"
    ]
    assert result["__typename"] == "MessagePresetCreateSuccess", result
    assert result["preset"]["settings"] == {
        "sesTopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-feedback",
        "sendgridWebhookPublicKeySet": True,
        "mailgunWebhookSigningKeySet": True,
        "postmarkWebhookUsername": "postmark",
        "postmarkWebhookPasswordSet": True,
    }
    row = await MessagePreset.get(name="Fb", sandbox__name=sandbox.name)
    assert "mailgun-signing-key" not in (row.secrets or "") and "mailgun-signing-key" not in str(row.settings)
    opened = SecretBox(TEST_SECRET).open(row.secrets, sandbox_id=row.sandbox_id)
    assert opened["mailgun_webhook_signing_key"] == "mailgun-signing-key"
    assert opened["sendgrid_webhook_public_key"] == PUBLIC_KEY
