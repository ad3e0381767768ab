"""The templates of the message: they parse, name known roots, and read profile paths the audience has."""

from __future__ import annotations

from collections.abc import Iterator

from models.campaigns.review.alerts import Alert, AlertCode, alert, blank
from models.campaigns.review.trigger_context import check_trigger_context
from models.campaigns.review_snapshot import CampaignSnapshot
from models.campaigns.rules import Channel
from models.campaigns.templates import CompiledTemplate, parse_template, profile_paths, unknown_roots


def template_fields(s: CampaignSnapshot) -> list[tuple[str, str]]:
    """(field path, template source) of the content of the campaign's channel."""
    c = s.content
    if s.channel is Channel.EMAIL and c.email:
        e = c.email
        return [
            ("content.email.subject", e.subject),
            ("content.email.preheader", e.preheader),
            ("content.email.html", e.html),
            ("content.email.text", e.text),
        ]
    if s.channel is Channel.SMS and c.sms:
        return [("content.sms.text", c.sms.text)]
    if s.channel is Channel.PUSH and c.push:
        p = c.push
        fields = [
            ("content.push.title", p.title),
            ("content.push.body", p.body),
            ("content.push.deepLink", p.deep_link),
        ]
        return fields + [(f"content.push.data.{key}", value) for key, value in p.data]
    if s.channel is Channel.IN_APP and c.in_app:
        fields = [("content.inApp.title", c.in_app.title), ("content.inApp.body", c.in_app.body)]
        for i, button in enumerate(c.in_app.buttons):
            fields += [
                (f"content.inApp.buttons.{i}.label", button.label),
                (f"content.inApp.buttons.{i}.url", button.url),
            ]
        return fields
    return []


def _path_seen(segments: tuple[str | int, ...], seen: frozenset[str]) -> bool:
    """Whether an audience profile has the path, or something under it (array indexes are ignored)."""
    keys = [segment for segment in segments if isinstance(segment, str)]

    def has(prefix: list[str]) -> bool:
        dotted = ".".join(prefix)
        return bool(prefix) and (dotted in seen or any(path.startswith(dotted + ".") for path in seen))

    # `orders.size`, `.first`, `.last` are Liquid properties of the parent.
    return has(keys) or (len(keys) > 1 and keys[-1] in ("size", "first", "last") and has(keys[:-1]))


def check_templates(s: CampaignSnapshot) -> Iterator[Alert]:
    seen = s.audience.profile_paths_seen
    for field_path, source in template_fields(s):
        if blank(source):
            continue
        compiled = parse_template(source, field_path)
        if not isinstance(compiled, CompiledTemplate):
            yield alert(
                AlertCode.TEMPLATE_SYNTAX,
                field_path,
                f"Line {compiled.line}, column {compiled.column}: {compiled.message}",
            )
            continue
        reported: set[str] = set()
        for path in unknown_roots(compiled):
            if path.root not in reported:
                reported.add(path.root)
                yield alert(
                    AlertCode.TEMPLATE_UNKNOWN_ROOT,
                    field_path,
                    f"Line {path.line}, column {path.column}: {path.root!r} is not available; "
                    "use profile, campaign or context.",
                )
        yield from check_trigger_context(s, field_path, compiled, reported)
        if seen is None:
            continue
        for path in profile_paths(compiled):
            if path.segments and not _path_seen(path.segments, seen) and path.dotted not in reported:
                reported.add(path.dotted)
                yield alert(
                    AlertCode.TEMPLATE_PATH_UNSEEN,
                    field_path,
                    f"Line {path.line}, column {path.column}: no profile of the audience has profile.{path.dotted}.",
                )
