"""Herald's FCM v1 request body equals firebase-admin's encoding of the same message (built offline)."""

from __future__ import annotations

import pytest
from firebase_admin import messaging

from jobs.channels.base import PushContent
from jobs.channels.push import fcm_request_body

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")


@pytest.mark.parametrize(
    "content",
    [
        PushContent(title="Sale", body="50% off today", data={"deepLink": "shop://sale", "payload": '{"a": 1}'}),
        PushContent(title="Ünïcode ✓", body="Line one\nline two", data={}),
        PushContent(title="", body="No title", data={"flag": "true"}),
    ],
)
def test_body_equals_firebase_admins(content: PushContent) -> None:
    token = "fcm-device-token:APA91bH-example"
    reference = messaging.Message(
        token=token,
        notification=messaging.Notification(title=content.title or None, body=content.body),
        data=dict(content.data) or None,
    )
    expected = {"message": messaging._MessagingService.encode_message(reference)}
    assert fcm_request_body(token, content) == expected
