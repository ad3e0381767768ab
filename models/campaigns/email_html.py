"""Links of an email body, found with the standard library's HTML parser (never regexes over HTML). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser

LINK_TAGS = frozenset({"a", "area"})


@dataclass(frozen=True)
class Link:
    """One `<a>`/`<area>` element: its href (None when the attribute is absent) and 1-based position."""

    href: str | None
    has_href: bool
    line: int
    column: int

    @property
    def empty(self) -> bool:
        """An href that leads nowhere: present but blank, or a bare "#"."""
        return self.has_href and (self.href or "").strip() in ("", "#")


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[Link] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in LINK_TAGS:
            return
        line, offset = self.getpos()
        hrefs = [value for name, value in attrs if name == "href"]
        self.links.append(Link(hrefs[0] if hrefs else None, bool(hrefs), line, offset + 1))

    handle_startendtag = handle_starttag


def links(html: str) -> list[Link]:
    """Every link element of `html`, in document order. Malformed HTML is read as browsers would, leniently."""
    collector = _LinkCollector()
    collector.feed(html)
    collector.close()
    return collector.links


# The usual hidden-preheader pattern: inbox clients show the first text of the body next to the subject;
# this span supplies it and stays invisible when the message is opened.
PREHEADER_STYLE = (
    "display:none!important;visibility:hidden;mso-hide:all;font-size:1px;line-height:1px;"
    "max-height:0;max-width:0;opacity:0;overflow:hidden;color:transparent"
)


class _BodyFinder(HTMLParser):
    """Where the `<body>` start tag ends, as an offset into the document (None when there is none)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        # HTMLParser counts lines by "\n" only.
        self.line_starts = [0, *(i + 1 for i, char in enumerate(html) if char == "\n")]
        self.body_end: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and self.body_end is None:
            line, column = self.getpos()
            self.body_end = self.line_starts[line - 1] + column + len(self.get_starttag_text() or "")


def with_preheader(html: str | None, preheader: str | None) -> str | None:
    """`html` with the (already rendered) preheader as a hidden span first in its body; unchanged without one."""
    if not html or not preheader or not preheader.strip():
        return html
    span = f'<span class="preheader" style="{PREHEADER_STYLE}">{escape(preheader.strip())}</span>'
    finder = _BodyFinder(html)
    finder.feed(html)
    finder.close()
    at = finder.body_end or 0
    return html[:at] + span + html[at:]
