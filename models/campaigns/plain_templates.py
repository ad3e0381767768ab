"""A fast path for the commonest personalization template: text and `{{ a.b.c }}` outputs, no tags, no filters.
Pure module.

Liquid renders such a template node by node through its context machinery (~10 µs an output); here it is a
join of the text pieces and the values looked up with plain dict indexing. Only cases whose result is certain
are taken: every path segment a string key present in a dict (Liquid's special `size`/`first`/`last` left
out), every value a `str` or an `int` (not `bool`), written as Liquid writes them (no autoescape in this
environment). Anything else — a missing value, a list, a float, a carriage return (Liquid's output stream
translates newlines), an output past Liquid's limit — returns None
and the caller renders with Liquid, which gives the same text or raises the same error as it always did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from liquid import BoundTemplate
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions.filtered import FilteredExpression
from liquid.builtin.expressions.path import Path
from liquid.builtin.output import OutputNode

# Properties Liquid computes rather than looks up (`list.size`, `hash.first`): never on the fast path.
_COMPUTED = frozenset({"size", "first", "last"})

# A plain template: text pieces (str) and paths (tuples of keys), in document order.
PlainPieces = tuple[str | tuple[str, ...], ...]


def plain_pieces(template: BoundTemplate) -> PlainPieces | None:
    """The template as pieces when it is only text and unfiltered outputs of fixed paths; None otherwise."""
    pieces: list[str | tuple[str, ...]] = []
    for node in template.nodes:
        if type(node) is ContentNode:
            pieces.append(node.text)
            continue
        if type(node) is not OutputNode:
            return None
        expression = node.expression
        if type(expression) is not FilteredExpression or expression.filters or type(expression.left) is not Path:
            return None
        segments = expression.left.path
        if not segments or not all(type(s) is str and s not in _COMPUTED for s in segments):
            return None
        pieces.append(tuple(segments))  # type: ignore[arg-type]
    return tuple(pieces)


def render_plain(pieces: PlainPieces, context: Mapping[str, Any], limit: int) -> str | None:
    """The template's text for `context`, or None when Liquid must decide (see the module docstring)."""
    out: list[str] = []
    for piece in pieces:
        if type(piece) is str:
            out.append(piece)
            continue
        value: Any = context
        for key in piece:
            if type(value) is not dict or key not in value:
                return None
            value = value[key]
        if type(value) is str:
            out.append(value)
        elif type(value) is int:
            out.append(str(value))
        else:
            return None
    text = "".join(out)
    # Liquid's output stream translates CR and CRLF to LF and counts UTF-8 bytes against its limit.
    if "\r" in text or (len(text) * 4 > limit and len(text.encode("utf-8")) > limit):
        return None
    return text
