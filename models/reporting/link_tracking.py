"""Finding and rewriting the links of a rendered message for click tracking, and the open pixel. Pure.

This runs once per message on the sending path, so it is one compiled regular expression per part rather
than an HTML parser (models/campaigns/email_html.py, the pure-Python parser the review uses, costs far more). Only the
`href` of `<a>`/`<area>` start tags is rewritten, quoted with `"` or `'`; the URL recorded is the attribute
value as a browser reads it (character references decoded).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

# Group 1: everything up to the value; group 2/3: the value in double/single quotes.
_HREF = re.compile(r"""(<(?:a|area)\b[^>]*?\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
# A URL in plain text: up to whitespace or a character that cannot end one unescaped.
_TEXT_URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
# Punctuation that ends a sentence rather than the URL ("see https://x.example/a.").
_TRAILING = ".,;:!?)]}'\""
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def is_trackable(url: str, own_prefix: str) -> bool:
    """An http(s) URL that is not one of ours (unsubscribe, pixel, an already-tracked link)."""
    head = url[:8].lower()
    return (head.startswith("http://") or head.startswith("https://")) and not url.startswith(own_prefix)


def _href_value(match: re.Match[str]) -> str:
    raw = match.group(2) if match.group(2) is not None else match.group(3)
    return _unquoted(raw)


def _unquoted(raw: str) -> str:
    return html.unescape(raw).strip() if "&" in raw else raw.strip()


@dataclass(frozen=True, slots=True)
class FoundLinks:
    """A part's trackable links, found in one scan: listing their URLs and rewriting them need no other.

    Each span is (start, end, head, url): `part[start:end]` is replaced by `head` + the tracked URL (quoted in
    HTML, where `head` is the tag up to the attribute value; as is in text, where `head` is empty)."""

    part: str
    spans: tuple[tuple[int, int, str, str], ...]
    quoted: bool

    @property
    def urls(self) -> list[str]:
        return [span[3] for span in self.spans]

    def rewrite(self, tracked_url: Callable[[str], str | None]) -> str:
        """The part with each link replaced by `tracked_url(url)` (left alone when it returns None), called once
        per distinct URL."""
        part, out, at = self.part, [], 0
        append = out.append
        replacements: dict[str, str | None] = {}
        for start, end, head, url in self.spans:
            if url in replacements:
                target = replacements[url]
            else:
                target = tracked_url(url)
                if target is not None and self.quoted:
                    target = f'"{target}"'
                replacements[url] = target
            if target is None:
                continue
            append(part[at:start])
            append(head)
            append(target)
            at = end
        if not out:
            return part
        append(part[at:])
        return "".join(out)


# Past this many attribute values remembered (personalised links), `find_html_links`' memo starts again.
_MEMO_MAX = 10_000


def find_html_links(body: str, own_prefix: str, memo: dict[str, str | None] | None = None) -> FoundLinks:
    """The trackable link elements of `body`, in document order (repeats kept). `memo` (raw attribute value →
    its URL, None when not trackable) spares a run's messages deciding each repeated link again: pass one per
    `own_prefix`."""
    memo = {} if memo is None else memo
    if len(memo) > _MEMO_MAX:
        memo.clear()
    spans = []
    append = spans.append
    for match in _HREF.finditer(body):
        head, double, single = match.groups()
        raw = double if double is not None else single
        if raw in memo:
            url = memo[raw]
        else:
            value = _unquoted(raw)
            url = memo[raw] = value if is_trackable(value, own_prefix) else None
        if url is not None:
            start, end = match.span()
            append((start, end, head, url))
    return FoundLinks(body, tuple(spans), quoted=True)


def find_text_links(text: str, own_prefix: str) -> FoundLinks:
    """The trackable URLs of plain text; the sentence punctuation after one stays outside its span."""
    spans = []
    for match in _TEXT_URL.finditer(text):
        url, _tail = _split_text_url(match.group(0))
        if is_trackable(url, own_prefix):
            spans.append((match.start(), match.start() + len(url), "", url))
    return FoundLinks(text, tuple(spans), quoted=False)


def html_links(body: str, own_prefix: str) -> list[str]:
    """The trackable URLs of `body`'s link elements, in document order (repeats kept)."""
    return find_html_links(body, own_prefix).urls


def rewrite_html(body: str, own_prefix: str, tracked_url: Callable[[str], str | None]) -> str:
    """Each trackable href replaced by `tracked_url(url)` (left alone when it returns None).

    `tracked_url` must return a URL needing no HTML escaping (ours are base64url tokens under PUBLIC_URL).
    """
    return find_html_links(body, own_prefix).rewrite(tracked_url)


def _split_text_url(found: str) -> tuple[str, str]:
    url = found.rstrip(_TRAILING)
    # A closing parenthesis belongs to the URL when it opened one inside it (Wikipedia-style links).
    while found[len(url) : len(url) + 1] == ")" and url.count("(") > url.count(")"):
        url += ")"
    return url, found[len(url) :]


def text_links(text: str, own_prefix: str) -> list[str]:
    return find_text_links(text, own_prefix).urls


def rewrite_text(text: str, own_prefix: str, tracked_url: Callable[[str], str | None]) -> str:
    return find_text_links(text, own_prefix).rewrite(tracked_url)


def add_open_pixel(body: str, pixel_url: str) -> str:
    """A 1x1 image before the last `</body>`, or at the end when there is none."""
    pixel = f'<img src="{pixel_url}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">'
    ends = list(_BODY_END.finditer(body))
    if not ends:
        return body + pixel
    at = ends[-1].start()
    return body[:at] + pixel + body[at:]
