"""Personalization templates: Liquid (python-liquid 2.x) locked down for untrusted authors. Pure module.

A template is parsed once (`parse_template`) and rendered many times (`render`). The render context
has three roots only: `profile` (the profile's attributes), `campaign` and `context` (values the sender
supplies, e.g. `context.unsubscribeUrl`). Anything else is TEMPLATE_UNKNOWN_ROOT at review time.

Bounds, because authors are not trusted:
- source size (MAX_TEMPLATE_CHARS), block nesting, no `include`/`render` (there is no loader);
- Liquid's own limits: loop iterations, output size, local namespace, context depth;
- range literals: `(a..b)` with literal bounds larger than MAX_RANGE_SIZE are a parse problem, and every
  range is checked again when evaluated (bounds may come from data) — Liquid leaves ranges unbounded
  inside filters (`(1..100000000) | join` ran 32 s);
- every filter call checks the render deadline first and the size of its result after; `replace` and
  `join` are checked before they allocate, since their result can outgrow their input many times over.
A single filter call on bounded input cannot be interrupted, so the deadline is checked between calls;
with the bounds above one call stays well under a millisecond-scale budget.

Undefined values are strict: printing or filtering a missing path is an error, except `| default:` and
truthiness tests (`{% if profile.loyalty %}`), which see it as nil.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from liquid import BoundTemplate, Environment, RenderContext
from liquid.builtin.expressions.primitive import IntegerLiteral, RangeLiteral
from liquid.exceptions import LiquidError, LiquidValueError
from liquid.expression import Expression
from liquid.static_analysis import Variable
from liquid.token import Token
from liquid.undefined import FalsyStrictUndefined

from models.campaigns.plain_templates import PlainPieces, plain_pieces, render_plain

ALLOWED_ROOTS = frozenset({"profile", "campaign", "context"})
MAX_TEMPLATE_CHARS = 262_144  # above EMAIL_TOO_LARGE's 100 KB so that warning can fire
MAX_RANGE_SIZE = 1_000
MAX_VALUE_SIZE = 1_000_000  # characters of a string or items of a list produced by one filter
MAX_INT_BITS = 1_024
DEFAULT_RENDER_SECONDS = 0.25


class TemplateRenderError(Exception):
    """Rendering failed: a missing value, a limit reached, the deadline passed."""


@dataclass(frozen=True)
class TemplateProblem:
    """Why a template does not parse. Line and column are 1-based."""

    line: int
    column: int
    message: str


@dataclass(frozen=True)
class TemplatePath:
    """A variable a template reads from its context, e.g. segments ("profile", "person", "name")."""

    segments: tuple[str | int, ...]  # a dynamic segment (profile[context.key]) is cut off
    line: int
    column: int

    @property
    def root(self) -> str:
        return str(self.segments[0])

    @property
    def dotted(self) -> str:
        return ".".join(str(s) for s in self.segments)


class PersonalizationUndefined(FalsyStrictUndefined):
    """Strict, but `| default:` works and `{% if %}` / `== nil` see a missing value as nil."""

    force_liquid_default = True

    def __eq__(self, other: object) -> bool:
        return other is None or other is False or isinstance(other, FalsyStrictUndefined)

    def __hash__(self) -> int:
        return hash(None)


class _BoundedRange(RangeLiteral):
    """A range literal whose size is checked each time it is evaluated."""

    __slots__ = ()

    def _make_range(self, start: Any, stop: Any) -> range:
        made = super()._make_range(start, stop)
        if len(made) > MAX_RANGE_SIZE:
            raise LiquidValueError(f"range has {len(made)} items, more than {MAX_RANGE_SIZE}", token=self.token)
        return made


def _check_size(name: str, value: object, token: Token | None) -> None:
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_VALUE_SIZE:
        raise LiquidValueError(f"filter {name!r} produced more than {MAX_VALUE_SIZE} items", token=token)
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise LiquidValueError(f"filter {name!r} produced a number too large", token=token)


def _precheck(name: str, args: tuple[Any, ...], token: Token | None) -> None:
    """Refuse `replace` and `join` calls whose result would be too large, before they build it."""
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        seq, sub = str(args[1]), str(args[2]) if len(args) > 2 else ""
        count = args[0].count(seq) if seq else len(args[0]) + 1
        estimate = len(args[0]) + count * (len(sub) - len(seq))
    elif name == "join" and args and isinstance(args[0], list | tuple):
        sep = str(args[1]) if len(args) > 1 else " "
        estimate = len(sep) * max(len(args[0]) - 1, 0) + sum(len(str(item)) for item in args[0][:MAX_VALUE_SIZE])
    else:
        return
    if estimate > MAX_VALUE_SIZE:
        raise LiquidValueError(f"filter {name!r} would produce more than {MAX_VALUE_SIZE} characters", token=token)


class _GuardedContext(RenderContext):
    """A render context that enforces the deadline and the size of every filter result."""

    deadline: float = float("inf")

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise LiquidValueError("template took too long to render", token=None)

    def filter(self, name: str, token: Token | None) -> Callable[..., object]:
        func = super().filter(name, token)
        self.check_deadline()

        def guarded(*args: Any, **kwargs: Any) -> object:
            _precheck(name, args, token)
            result = func(*args, **kwargs)
            _check_size(name, result, token)
            return result

        return guarded

    def raise_for_loop_limit(self, length: int = 1) -> None:
        self.check_deadline()
        super().raise_for_loop_limit(length)


class _GuardedTemplate(BoundTemplate):
    context_class = _GuardedContext


class PersonalizationEnvironment(Environment):
    """The only Liquid environment Herald renders untrusted templates with."""

    template_class = _GuardedTemplate
    block_nesting_limit = 20
    context_depth_limit = 10
    loop_iteration_limit = 10_000
    local_namespace_limit = 1_000_000
    output_stream_limit = 1_000_000

    def __init__(self) -> None:
        super().__init__(undefined=PersonalizationUndefined, strict_filters=True)
        # No loader: partials would only fail at render time; make them a parse error instead.
        for tag in ("include", "render"):
            self.tags.pop(tag, None)

    def error(self, exc: Any, msg: str | None = None, token: Token | None = None) -> None:
        # Errors raised inside an expression carry the stream's end token (no position); the
        # enclosing tag's token locates them.
        if isinstance(exc, LiquidError) and (exc.token is None or exc.token.start_index < 0):
            if token is not None and token.start_index >= 0:
                exc.token = token
        super().error(exc, msg, token)


ENVIRONMENT = PersonalizationEnvironment()


@dataclass(frozen=True, eq=False)
class CompiledTemplate:
    """A parsed template, ready to render many times."""

    source: str
    field: str
    template: BoundTemplate
    paths: tuple[TemplatePath, ...]
    # Text and unfiltered outputs only: rendered without Liquid when the values allow (plain_templates).
    plain: PlainPieces | None = None


def _line_col(source: str, index: int) -> tuple[int, int]:
    index = max(0, min(index, len(source)))
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return line, column


def _problem_at(source: str, exc: LiquidError) -> TemplateProblem:
    token = exc.token
    # Errors found at the end of the source (a missing {% endif %}) have no token: point at the end.
    message = str(exc.message)
    if token is None or token.start_index < 0:
        index, message = len(source), message.replace("end of expression", "end of template")
    else:
        index = token.start_index
    line, column = _line_col(source, index)
    return TemplateProblem(line, column, message)


def _expressions(nodes: Iterable[Any], static_context: RenderContext) -> Iterable[Expression]:
    stack = list(nodes)
    while stack:
        node = stack.pop()
        exprs = list(node.expressions())
        while exprs:
            expr = exprs.pop()
            yield expr
            exprs.extend(expr.children())
        stack.extend(node.children(static_context, include_partials=False))


def _bound_ranges(source: str, template: BoundTemplate) -> TemplateProblem | None:
    """Re-class every range literal to the bounded one; refuse literal ranges that are too large."""
    for expr in _expressions(template.nodes, RenderContext(template)):
        if isinstance(expr, RangeLiteral):
            start, stop = expr.start, expr.stop
            if isinstance(start, IntegerLiteral) and isinstance(stop, IntegerLiteral):
                if stop.value - start.value + 1 > MAX_RANGE_SIZE:
                    line, column = _line_col(source, expr.token.start_index)
                    return TemplateProblem(line, column, f"a range may have at most {MAX_RANGE_SIZE} items")
            expr.__class__ = _BoundedRange
    return None


def _paths(source: str, variables: dict[str, list[Variable]]) -> tuple[TemplatePath, ...]:
    found: list[TemplatePath] = []
    for occurrences in variables.values():
        for variable in occurrences:
            segments: list[str | int] = []
            for segment in variable.segments:
                if not isinstance(segment, str | int):
                    break  # dynamic: profile[context.key]
                segments.append(segment)
            line, column = _line_col(source, variable.span.index)
            found.append(TemplatePath(tuple(segments), line, column))
    return tuple(sorted(found, key=lambda p: (p.line, p.column)))


# Parsed templates kept per process, by (source, field): a trigger campaign's sender built its renderer at every
# wake-up job, 20 a second, and parsing and analysing an email's parts took more CPU than sending its messages
# (issue 17). Parsed templates are only read once built (a run already renders thousands of messages with one).
# Bounded in entries and in source size, so a process holds a few MB at most.
PARSED_CACHE_ENTRIES = 64
PARSED_CACHE_MAX_CHARS = 65_536


def parse_template(source: str, field: str = "") -> CompiledTemplate | TemplateProblem:
    """Parse `source` once; the problem (with 1-based line and column) when it is not a valid template."""
    if len(source) <= PARSED_CACHE_MAX_CHARS:
        return _parse_cached(source, field)
    return _parse(source, field)


@functools.lru_cache(maxsize=PARSED_CACHE_ENTRIES)
def _parse_cached(source: str, field: str) -> CompiledTemplate | TemplateProblem:
    return _parse(source, field)


def _parse(source: str, field: str) -> CompiledTemplate | TemplateProblem:
    if len(source) > MAX_TEMPLATE_CHARS:
        return TemplateProblem(1, 1, f"template is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        template = ENVIRONMENT.from_string(source, name=field)
        problem = _bound_ranges(source, template)
        if problem is not None:
            return problem
        analysis = template.analyze(include_partials=False)
        for name, spans in analysis.filters.items():
            if name not in ENVIRONMENT.filters:
                line, column = _line_col(source, spans[0].index)
                return TemplateProblem(line, column, f"unknown filter '{name}'")
        paths = _paths(source, analysis.globals)
    except LiquidError as exc:
        return _problem_at(source, exc)
    except RecursionError:
        return TemplateProblem(1, 1, "template is nested too deeply")
    return CompiledTemplate(source, field, template, paths, plain_pieces(template))


def unknown_roots(compiled: CompiledTemplate) -> list[TemplatePath]:
    """Paths whose root is not one of ALLOWED_ROOTS (TEMPLATE_UNKNOWN_ROOT)."""
    return [path for path in compiled.paths if path.root not in ALLOWED_ROOTS]


def profile_paths(compiled: CompiledTemplate) -> list[TemplatePath]:
    """Paths under `profile`, without the root: ("person", "name", "firstName")."""
    return [
        TemplatePath(path.segments[1:], path.line, path.column)
        for path in compiled.paths
        if path.root == "profile" and len(path.segments) > 1
    ]


def references(compiled: CompiledTemplate, dotted: str) -> bool:
    """Whether the template reads the variable `dotted`, e.g. "context.unsubscribeUrl"."""
    return any(path.dotted == dotted for path in compiled.paths)


def render(
    compiled: CompiledTemplate,
    context: Mapping[str, object],
    *,
    max_seconds: float = DEFAULT_RENDER_SECONDS,
) -> str:
    """Render with `context` ({"profile": …, "campaign": …, "context": …}); TemplateRenderError on failure."""
    template = compiled.template
    if compiled.plain is not None:
        text = render_plain(compiled.plain, context, ENVIRONMENT.output_stream_limit)
        if text is not None:
            return text
    render_context = _GuardedContext(template, globals=template.make_globals(dict(context)))
    render_context.deadline = time.monotonic() + max_seconds
    buffer = template._get_buffer()
    try:
        template.render_with_context(render_context, buffer)
    except LiquidError as exc:
        raise TemplateRenderError(_render_message(compiled, exc)) from exc
    except RecursionError as exc:
        raise TemplateRenderError("template is nested too deeply") from exc
    except (ArithmeticError, ValueError, TypeError) as exc:  # a filter failing outside Liquid's own errors
        raise TemplateRenderError(f"template failed to render: {exc}") from exc
    return buffer.getvalue()


def _render_message(compiled: CompiledTemplate, exc: LiquidError) -> str:
    if exc.token is not None and exc.token.start_index >= 0:
        line, column = _line_col(compiled.source, exc.token.start_index)
        return f"{exc.message} (line {line}, column {column})"
    return str(exc.message)
