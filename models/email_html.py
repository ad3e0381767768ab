"""Links of an email body, found with the standard library's HTML parser (never regexes over HTML). Pure."""

from __future__ import annotations

from dataclasses import dataclass
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
