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


@pytest.mark.parametrize("platforms", [("ANDROID",), ("IOS",), ("ANDROID", "IOS")], ids=["android", "ios", "both"])
def test_the_presets_app_id_pins_each_platform_as_firebase_admin_encodes_it(platforms: tuple[str, ...]) -> None:
    token, app_id = "fcm-device-token:APA91bH-example", "com.example.app"
    content = PushContent(title="Sale", body="50% off", data={"k": "v"})
    reference = messaging.Message(
        token=token,
        notification=messaging.Notification(title=content.title, body=content.body),
        data=dict(content.data),
        android=messaging.AndroidConfig(restricted_package_name=app_id) if "ANDROID" in platforms else None,
        apns=messaging.APNSConfig(headers={"apns-topic": app_id}) if "IOS" in platforms else None,
    )
    expected = {"message": messaging._MessagingService.encode_message(reference)}
    assert fcm_request_body(token, content, app_id=app_id, platforms=platforms) == expected
