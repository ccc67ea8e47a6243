"""Route maps: APM resource names and concrete request paths → endpoints (method + route template).

A :class:`RouteMap` comes from ``bin/rails routes`` output (:func:`read_rails_routes`) or an OpenAPI 3
document (:func:`read_openapi`); :func:`read_route_map` picks by content. It answers two questions:

- :meth:`RouteMap.resolve`: which endpoint is the APM resource ``EmployeesController#show`` (raw, or as
  Datadog's normalised tag value ``employeescontroller_show``)?
- :meth:`RouteMap.match_path`: which route template does the request ``GET /api/employees/1042`` belong
  to? The most specific template wins (most literal segments).

Without a route map, :func:`template_path` guesses a template from the path alone (numeric ids, UUIDs,
hashes and long mixed tokens become placeholders). :func:`read_param_pools` reads parameter pools for
replaying endpoints whose placeholders no baseline filled.

Paths are compared as the server received them: percent-encoded bytes are never decoded for matching
or templating (``/api/employees/%E5%B1%B1%E7%94%B0`` stays as it is); only characters that cannot
appear raw in a URL path (non-ASCII, controls, space, braces) are percent-encoded (:func:`encode_path`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from parity.bounds import check_text, load_json
from parity.errors import BadInput, reading
from parity.model import Endpoint

__all__ = [
    "MAX_TAG_BYTES",
    "MIN_TOKEN_ID_LENGTH",
    "RouteMap",
    "RouteMatch",
    "SkipReason",
    "describe_route_map",
    "encode_path",
    "normalise_resource",
    "read_openapi",
    "read_param_pools",
    "read_rails_routes",
    "read_route_map",
    "template_path",
    "template_path_values",
]

#: Datadog truncates tag values to this many UTF-8 bytes before normalising them.
MAX_TAG_BYTES = 200
#: Shortest hex hash, or letters-and-digits token, that :func:`template_path` treats as an id (chars).
MIN_TOKEN_ID_LENGTH = 16
#: Examples of skipped lines / collisions a RouteMap keeps for the user.
MAX_EXAMPLES = 5
#: Placeholder name :func:`template_path` gives the first id segment; later ones get ``id2``, ``id3``…
ID_PLACEHOLDER = "id"

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PLACEHOLDER = re.compile(r"\{([^{}/]+)\}")


class SkipReason(StrEnum):
    """Why a route-map line gave no route (keys of :attr:`RouteMap.skipped_reasons`)."""

    MOUNT = "mounts (engine or Rack app)"
    REDIRECT = "redirects"
    NOT_ACTION = "targets not controller#action"
    UNMOUNTED = "engine routes without a mount line"
    NOT_ROUTE = "lines not a route"
    NOT_OPERATION = "paths not an object"


# --- resource names -------------------------------------------------------------------------------------


def _tag_char(c: str) -> str:
    return c if c.isalpha() or c in "0123456789_-:./" else "_"


def normalise_resource(name: str) -> str:
    """Datadog's tag-value normalisation of a resource name (what ``resource_name:`` tags hold).

    Follows the Trace Agent (``traceutil.NormalizeTag``): truncate to ``MAX_TAG_BYTES`` bytes, lowercase,
    every character other than a letter (any script), digit, ``_ - : . /`` becomes ``_``, leading
    characters other than letters, digits, ``: . /`` are dropped, runs of ``_`` collapse to one and a
    trailing ``_`` is stripped: ``EmployeesController#show`` → ``employeescontroller_show``,
    ``Api::V1::EmployeesController#show`` → ``api::v1::employeescontroller_show`` (colons are kept, as
    Datadog keeps them; :meth:`RouteMap.resolve` also accepts the colon-free spelling).
    """
    value = name.strip()
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_TAG_BYTES:
        value = raw[:MAX_TAG_BYTES].decode("utf-8", "ignore")
    value = "".join(_tag_char(c) for c in value.lower())
    start = 0
    while start < len(value) and not (value[start].isalpha() or value[start] in "0123456789:./"):
        start += 1
    return re.sub("_{2,}", "_", value[start:]).rstrip("_")


def _lookup_keys(name: str) -> tuple[str, ...]:
    """Spellings a resource name may arrive in: raw, Datadog-normalised, normalised without colons."""
    norm = normalise_resource(name)
    colon_free = re.sub("_{2,}", "_", norm.replace(":", "_")).strip("_")
    return (name, norm, colon_free)


_RAILS_SHORTHAND = re.compile(r"([a-z0-9_]+(?:/[a-z0-9_]+)*)#([A-Za-z_]\w*[!?]?)")


def _rails_resource(controller: str, action: str) -> str:
    """``api/v1/employees``, ``show`` → ``Api::V1::EmployeesController#show`` (Rails' camelize, no acronyms)."""
    parts = ["".join(w.capitalize() for w in part.split("_")) for part in controller.split("/")]
    return "::".join(parts) + "Controller#" + action


# --- paths and templates --------------------------------------------------------------------------------


def _needs_encoding(c: str) -> bool:
    return not c.isascii() or not c.isprintable() or c in " {}"


def encode_path(path: str) -> str:
    """``path`` with characters that cannot appear raw in a URL path percent-encoded (UTF-8 bytes).

    Non-ASCII characters, controls, space and ``{ }`` are encoded; everything else, including existing
    ``%XX`` escapes, is kept byte for byte. Lone surrogates (undecodable log bytes read with
    ``surrogateescape``) become the original bytes' escapes.
    """
    if path.isascii() and path.isprintable() and "{" not in path and "}" not in path and " " not in path:
        return path
    out = []
    for c in path:
        if _needs_encoding(c):
            out.append(quote(c.encode("utf-8", "surrogateescape"), safe=""))
        else:
            out.append(c)
    return "".join(out)


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_MIXED_TOKEN = re.compile(r"[A-Za-z0-9]*[0-9][A-Za-z0-9]*")


def _looks_like_id(segment: str) -> bool:
    if not segment.isascii():
        return False
    if segment.isdigit() or _UUID.fullmatch(segment):
        return True
    if len(segment) < MIN_TOKEN_ID_LENGTH:
        return False
    return bool(_HEX.fullmatch(segment) or _MIXED_TOKEN.fullmatch(segment))


def template_path_values(path: str) -> tuple[str, dict[str, str]]:
    """:func:`template_path` plus the segment each placeholder replaced: ``{"id": "1042", "id2": …}``."""
    path = encode_path(path.split("?", 1)[0].split("#", 1)[0])
    values: dict[str, str] = {}
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if segment and _looks_like_id(segment):
            name = ID_PLACEHOLDER if not values else f"{ID_PLACEHOLDER}{len(values) + 1}"
            values[name] = segment
            segments[i] = "{" + name + "}"
    return "/".join(segments), values


def template_path(path: str) -> str:
    """A route template guessed from a concrete path, for logs read without a route map.

    A segment becomes a placeholder when it is all digits, a UUID, a hex hash of at least
    ``MIN_TOKEN_ID_LENGTH`` characters, or a letters-and-digits token of at least that length containing
    a digit. The first placeholder is ``{id}``, the next ``{id2}``, ``{id3}``… (names never repeat).
    The query string and fragment are dropped. Anything else is kept as the server received it —
    percent-encoded segments are not decoded (``/api/employees/%E5%B1%B1`` stays a literal route) — except
    characters that cannot appear raw in a path, which are percent-encoded (:func:`encode_path`).
    """
    return template_path_values(path)[0]


@dataclass(frozen=True)
class _CompiledRoute:
    endpoint: Endpoint
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    rank: tuple[int, int, int]  # (literal segments, -glob placeholders, literal characters): higher wins
    segments: int  # without globs: exact segment count; with globs: minimum
    glob: bool


def _compile(endpoint: Endpoint, globs: frozenset[str]) -> _CompiledRoute:
    route = endpoint.route.rstrip("/") or "/"
    parts: list[str] = []
    names: list[str] = []
    literal_segments = glob_count = literal_chars = 0
    segments = route.split("/")
    for segment in segments:
        pos, piece = 0, []
        found = False
        for m in _PLACEHOLDER.finditer(segment):
            found = True
            piece.append(re.escape(encode_path(segment[pos : m.start()])))
            literal_chars += m.start() - pos
            name = m.group(1)
            is_glob = name in globs and segment == m.group(0)
            glob_count += is_glob
            piece.append("(.+)" if is_glob else "([^/]+)")
            names.append(name)
            pos = m.end()
        piece.append(re.escape(encode_path(segment[pos:])))
        literal_chars += len(segment) - pos
        literal_segments += not found
        parts.append("".join(piece))
    return _CompiledRoute(
        endpoint=endpoint,
        pattern=re.compile("/".join(parts)),
        names=tuple(names),
        rank=(literal_segments, -glob_count, literal_chars),
        segments=len(segments),
        glob=glob_count > 0,
    )


_RAW_METHOD_PATH = re.compile(r"([A-Za-z]+) +(/\S*)")
_TAG_METHOD_PATH = re.compile(r"([a-z]+)_(/[^\s]*)")
#: A placeholder segment in a route shape (names are not compared).
_SHAPE_PARAM = "\x00"


def _route_shape(route: str) -> tuple[str, ...]:
    """Segments of a route template, lowercased, each placeholder segment as :data:`_SHAPE_PARAM`."""
    segments = (route.rstrip("/") or "/").split("/")
    return tuple(_SHAPE_PARAM if _PLACEHOLDER.search(seg) else seg.lower() for seg in segments)


def _resource_shape(path: str, *, tag: bool) -> tuple[str, ...]:
    """Segments of a resource's path with ``:id``, ``{id}``, ``*path`` and ``?`` as placeholders; in a tag
    value (``tag``: Datadog turned ``{ } ? *`` into ``_``) a segment made of ``_`` and a name is one too."""
    segments = (path.split("#", 1)[0].rstrip("/") or "/").split("/")
    out = []
    for seg in segments:
        placeholder = seg.startswith((":", "*")) or _PLACEHOLDER.fullmatch(seg) is not None or seg == "?"
        if tag and re.fullmatch(r"_[a-z0-9_]*", seg):
            placeholder = True
        out.append(_SHAPE_PARAM if placeholder else seg.lower())
    return tuple(out)


@dataclass(frozen=True)
class RouteMatch:
    """A concrete path matched to a route: the endpoint, the raw (still percent-encoded) value of every
    placeholder, and the resource name the route map gives that endpoint (None when it has none)."""

    endpoint: Endpoint
    params: Mapping[str, str]
    resource: str | None


@dataclass(frozen=True)
class RouteMap:
    """Resource names and route templates of a service.

    ``entries`` maps a resource name (raw, as the route map spells it; aliases included) to its endpoint;
    when several routes claim one name the first keeps it and the others are listed in ``collisions``.
    ``routes`` holds every method + template (also those that lost a name collision), for
    :meth:`match_path`. ``globs`` maps a template to its placeholders that span several segments (Rails
    ``*path``). ``skipped`` counts route-map lines that describe no routable endpoint (mounted engines,
    redirects, Rack apps), ``skipped_reasons`` the same lines by :class:`SkipReason`; ``skipped_examples``
    shows a few as ``line N: why``. ``unnamed`` counts OpenAPI operations with neither ``operationId`` nor
    ``x-datadog-resource``: they resolve by method + path only (see :meth:`resolve`).
    """

    entries: Mapping[str, Endpoint] = field(default_factory=dict)
    routes: tuple[Endpoint, ...] = ()
    globs: Mapping[str, frozenset[str]] = field(default_factory=dict)
    skipped: int = 0
    skipped_examples: tuple[str, ...] = ()
    collisions: tuple[str, ...] = ()
    source: str = ""
    skipped_reasons: Mapping[str, int] = field(default_factory=dict)
    unnamed: int = 0

    @cached_property
    def _by_shape(self) -> dict[tuple[str, tuple[str, ...]], Endpoint]:
        index: dict[tuple[str, tuple[str, ...]], Endpoint] = {}
        for endpoint in self.routes:
            index.setdefault((endpoint.method, _route_shape(endpoint.route)), endpoint)
        return index

    @cached_property
    def _by_spelling(self) -> dict[str, Endpoint]:
        index: dict[str, Endpoint] = {}
        for name, endpoint in self.entries.items():
            for key in _lookup_keys(name):
                index.setdefault(key, endpoint)
        return index

    @cached_property
    def _resource_of(self) -> dict[Endpoint, str]:
        reverse: dict[Endpoint, str] = {}
        for name, endpoint in self.entries.items():
            reverse.setdefault(endpoint, name)
        return reverse

    @cached_property
    def _compiled(self) -> tuple[_CompiledRoute, ...]:
        compiled = [_compile(e, self.globs.get(e.route, frozenset())) for e in self.routes]
        return tuple(sorted(compiled, key=lambda c: c.rank, reverse=True))  # stable: first route wins ties

    @cached_property
    def _candidates_cache(self) -> dict[tuple[str, int], tuple[_CompiledRoute, ...]]:
        return {}

    def _candidates(self, method: str, segments: int) -> tuple[_CompiledRoute, ...]:
        key = (method, segments)
        cached = self._candidates_cache.get(key)
        if cached is None:
            cached = tuple(
                c
                for c in self._compiled
                if c.endpoint.method == method and (c.segments == segments if not c.glob else c.segments <= segments)
            )
            self._candidates_cache[key] = cached
        return cached

    def resolve(self, resource: str) -> Endpoint | None:
        """The endpoint of an APM resource name, raw (``EmployeesController#show``) or normalised
        (``employeescontroller_show``, ``api::v1::…`` or ``api_v1_…``); None when the map lacks it.

        A resource named by method and path (tracers other than Rails' name them so) resolves by method +
        path when no name matches: ``GET /api/employees/:id``, ``GET /api/employees/{id}``, Datadog's
        quantised ``GET /api/employees/?`` and their tag spellings (``get_/api/employees/:id``) match the
        route ``GET /api/employees/{id}`` whatever its placeholder is called (same method, same literal
        segments, placeholders in the same places); a concrete ``GET /api/employees/1042`` matches as
        :meth:`match` would. A tag value ending in ``/`` (``get_/api/employees/``) is read first as a
        quantised ``?`` there, then as a trailing slash. A ``Controller#action`` name can only resolve
        through a name the map gives.
        """
        hit = self.entries.get(resource)
        if hit is not None:
            return hit
        for key in _lookup_keys(resource):
            hit = self._by_spelling.get(key)
            if hit is not None:
                return hit
        return self._resolve_method_path(resource)

    def _resolve_method_path(self, resource: str) -> Endpoint | None:
        """``METHOD /path`` (raw) or ``method_/path`` (tag value) → the route of that shape; None otherwise."""
        raw = _RAW_METHOD_PATH.fullmatch(resource.strip())
        normalised = None if raw else _TAG_METHOD_PATH.fullmatch(resource.strip())
        found = raw or normalised
        if found is None:
            return None
        method, path = found.group(1).upper(), found.group(2)
        if method.lower() not in _HTTP_METHODS:
            return None
        shapes = [_resource_shape(path, tag=normalised is not None)]
        if normalised is not None and path.endswith("/") and path != "/":
            # a tag value's trailing `/` is most often a quantised `?` (turned into `_`, then stripped)
            shapes.insert(0, (*shapes[0], _SHAPE_PARAM))
        for shape in shapes:
            for lookup in (method, "GET") if method == "HEAD" else (method,):
                hit = self._by_shape.get((lookup, shape))
                if hit is not None:
                    return hit if lookup == method else Endpoint(method, hit.route)
        if raw is not None and not any(c in path for c in ":{}?*"):
            return self.match_path(method, path)
        return None

    def resource_for(self, endpoint: Endpoint) -> str | None:
        """The (first) resource name the map gives ``endpoint``; None when no name maps to it."""
        return self._resource_of.get(endpoint)

    def match(self, method: str, path: str) -> RouteMatch | None:
        """Match a concrete path (no query string; percent-encoded as received) to a route of ``method``.

        The most specific route wins: most literal segments, then fewest multi-segment placeholders, then
        most literal characters, then the route listed first. A trailing ``/`` is ignored. ``HEAD`` falls
        back to the ``GET`` routes (as Rails does) and keeps ``HEAD`` as the endpoint's method.
        Returns None when no route of that method matches.
        """
        method = method.upper()
        path = path.split("?", 1)[0].rstrip("/") or "/"
        segments = path.count("/") + 1
        for lookup in (method, "GET") if method == "HEAD" else (method,):
            for c in self._candidates(lookup, segments):
                m = c.pattern.fullmatch(path)
                if m is not None:
                    endpoint = c.endpoint if lookup == method else Endpoint(method, c.endpoint.route)
                    return RouteMatch(
                        endpoint=endpoint,
                        params=dict(zip(c.names, m.groups(), strict=True)),
                        resource=self.resource_for(c.endpoint),
                    )
        return None

    def match_path(self, method: str, path: str) -> Endpoint | None:
        """The endpoint whose template matches ``path`` (see :meth:`match`); None when none does."""
        found = self.match(method, path)
        return None if found is None else found.endpoint


class _Builder:
    """Accumulates routes in order; the first route claiming a resource name keeps it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.entries: dict[str, Endpoint] = {}
        self.routes: dict[Endpoint, None] = {}
        self.globs: dict[str, frozenset[str]] = {}
        self.skipped = 0
        self.skipped_examples: list[str] = []
        self.skipped_reasons: dict[str, int] = {}
        self.collisions: list[str] = []
        self.unnamed = 0

    def add(self, names: Iterable[str], endpoint: Endpoint, globs: frozenset[str] = frozenset()) -> None:
        self.routes.setdefault(endpoint, None)
        if globs:
            self.globs[endpoint.route] = globs
        for name in names:
            kept = self.entries.setdefault(name, endpoint)
            if kept != endpoint:
                self.collisions.append(f"{name}: {endpoint.key} (kept {kept.key})")

    def skip(self, where: str, why: str, reason: SkipReason) -> None:
        self.skipped += 1
        self.skipped_reasons[reason.value] = self.skipped_reasons.get(reason.value, 0) + 1
        if len(self.skipped_examples) < MAX_EXAMPLES:
            self.skipped_examples.append(f"{where}: {why}")

    def build(self, path: Path, expected: str) -> RouteMap:
        if not self.routes:
            raise BadInput(f"{path}: no routes found (expected {expected})")
        return RouteMap(
            entries=self.entries,
            routes=tuple(self.routes),
            globs=self.globs,
            skipped=self.skipped,
            skipped_examples=tuple(self.skipped_examples),
            collisions=tuple(self.collisions),
            source=self.source,
            skipped_reasons=dict(self.skipped_reasons),
            unnamed=self.unnamed,
        )


def _read_text(path: Path) -> str:
    with reading(path, "a route map file"):
        return path.read_text(encoding="utf-8-sig")


# --- bin/rails routes -----------------------------------------------------------------------------------

_RAILS_VERB = re.compile(r"[A-Z]+(?:\|[A-Z]+)*")
_RAILS_PARAM = re.compile(r"([:*])([A-Za-z_]\w*)")
_RAILS_SECTION = re.compile(r"^\[?\s*Routes for (\S+?)\s*:?\s*\]?$")
_RAILS_EXPANDED = re.compile(r"^--\[ Route \d+ \]")
#: annotate's header line: ``# == Route Map`` (``# ## Route Map`` in its Markdown layout), maybe with
#: `` (Updated 2024-05-01 12:00)`` after it.
_ANNOTATE_HEADER = re.compile(r"^\s*#\s*(==|##) Route Map\b")
_COMMENT = re.compile(r"^\s*#")
#: A verb of annotate's Markdown layout, which writes ``GET|POST`` as ``GET-POST``.
_MARKDOWN_VERB = re.compile(r"[A-Z]+(?:-[A-Z]+)+")

_Line = tuple[int, str]  # (line number in the file, text)


@dataclass(frozen=True)
class _RailsRow:
    where: str
    verb: str
    uri: str
    target: str


@dataclass(frozen=True)
class _RailsSection:
    """``Routes for SomeEngine:``: the rows after it belong to that engine."""

    engine: str


@dataclass(frozen=True)
class _RailsSkip:
    where: str
    why: str
    reason: SkipReason = SkipReason.NOT_ROUTE


_RailsItem = _RailsRow | _RailsSection | _RailsSkip


def _drop_optional_groups(uri: str) -> str:
    """``/a(.:format)`` → ``/a``; nested and several groups too."""
    out, depth = [], 0
    for c in uri:
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(c)
    return re.sub("/{2,}", "/", "".join(out)) or "/"


def _rails_template(uri: str) -> tuple[str, frozenset[str]]:
    """``/files/*path(.:format)`` → (``/files/{path}``, {"path"}); ``:id`` → ``{id}``."""
    uri = _drop_optional_groups(uri)
    globs = frozenset(name for kind, name in _RAILS_PARAM.findall(uri) if kind == "*")
    return _RAILS_PARAM.sub(lambda m: "{" + m.group(2) + "}", uri), globs


def _annotate_block(lines: Sequence[str]) -> tuple[list[_Line], bool] | None:
    """The lines of annotate's Route Map comments in a ``routes.rb`` and whether it used the Markdown layout.

    annotate (and annotaterb) write ``# == Route Map`` (``# ## Route Map`` for Markdown), ``#``, then every
    line of ``rails routes`` as ``# <line>`` (an empty line as ``#``). The block runs to the first line that
    is not a comment; the ``#`` and the one space after it are removed. None when the file has no header.
    """
    out: list[_Line] = []
    found = inside = markdown = False
    for n, raw in enumerate(lines, 1):
        header = _ANNOTATE_HEADER.match(raw)
        if header:
            found = inside = True
            markdown = markdown or header.group(1) == "##"
            continue
        if inside and _COMMENT.match(raw):
            text = raw.lstrip()[1:]
            out.append((n, text[1:] if text.startswith(" ") else text))
        else:
            inside = False
    return (out, markdown) if found else None


def _markdown_row(text: str) -> str:
    """A row of annotate's Markdown layout (``prefix | GET-POST | /uri | c#a``) as a plain table row; the
    ``--- | ---`` rule under the header becomes an empty line."""
    if "|" not in text:
        return text
    cells = [c.strip() for c in text.split("|")]
    if all(c and set(c) == {"-"} for c in cells):
        return ""
    tokens = " ".join(cells).split()
    return " ".join(t.replace("-", "|") if _MARKDOWN_VERB.fullmatch(t) else t for t in tokens)


def _rails_compact_rows(lines: Iterable[_Line]) -> Iterable[_RailsItem]:
    """Rows of the default table layout (Prefix, Verb, URI Pattern, Controller#Action)."""
    for n, raw in lines:
        line = raw.strip()
        if not line or (line.startswith("Prefix") and "URI Pattern" in line):
            continue
        section = _RAILS_SECTION.match(line)
        if section:
            yield _RailsSection(section.group(1))
            continue
        tokens = line.split()
        uri_at = next((i for i, t in enumerate(tokens) if t.startswith(("/", "(/"))), None)
        # before the URI: [prefix] [verb]; a prefix alone (no verb) is a mount line
        verb = tokens[uri_at - 1] if uri_at and _RAILS_VERB.fullmatch(tokens[uri_at - 1]) else ""
        if uri_at is None or uri_at > (2 if verb else 1):
            yield _RailsSkip(f"line {n}", f"not a route line: {line[:60]!r}")
            continue
        yield _RailsRow(f"line {n}", verb, tokens[uri_at], " ".join(tokens[uri_at + 1 :]))


def _rails_expanded_rows(lines: Iterable[_Line]) -> Iterable[_RailsItem]:
    """Rows of ``bin/rails routes --expanded`` (``--[ Route N ]--`` blocks of ``Key | value`` lines)."""
    block: dict[str, str] = {}
    where = ""
    for n, raw in [*lines, (0, "--[ Route 0 ]--")]:  # a sentinel block header flushes the last
        line = raw.strip()
        section = _RAILS_SECTION.match(line)
        if _RAILS_EXPANDED.match(line) or section:
            if block:
                yield _RailsRow(where, block.get("Verb", ""), block.get("URI", ""), block.get("Controller#Action", ""))
            block, where = {}, f"line {n}"
            if section:
                yield _RailsSection(section.group(1))
            continue
        key, sep, value = line.partition("|")
        if sep:
            block[key.strip()] = value.strip()


def _mount_prefixes(mounts: Mapping[str, Sequence[tuple[str | None, str]]]) -> dict[str, tuple[str, ...]]:
    """Engine → the paths it is mounted at, from its mount lines ``(section, path)``: a mount line in the main
    table gives its path; one inside another engine's section gives that engine's paths + its path (Rails
    lists an inner engine's section before the outer one's, so every mount line is read first). An engine
    mounted twice has two paths; an engine whose mount line is missing (or mounted in a cycle) has none."""

    def paths(engine: str, seen: frozenset[str]) -> list[str]:
        if engine in seen:
            return []
        out: list[str] = []
        for section, path in mounts.get(engine, ()):
            outer = [""] if section is None else paths(section, seen | {engine})
            out.extend(prefix + path for prefix in outer)
        return list(dict.fromkeys(out))

    return {engine: tuple(paths(engine, frozenset())) for engine in mounts}


def _rails_route(row: _RailsRow, builder: _Builder, prefixes: Mapping[str, Sequence[str]], engine: str | None) -> None:
    """Add one route row to ``builder`` (or count it as skipped); an engine's row once per mount path."""
    target = row.target.split(" ", 1)[0]
    if not row.verb:
        why = f"no verb (mounted engine or Rack app {target or '?'} at {row.uri})"
        builder.skip(row.where, why, SkipReason.MOUNT)
        return
    if target.startswith("redirect("):
        builder.skip(row.where, f"redirect at {row.uri}", SkipReason.REDIRECT)
        return
    action = _RAILS_SHORTHAND.fullmatch(target)
    if action is None:
        builder.skip(row.where, f"not a controller#action: {target[:60]!r}", SkipReason.NOT_ACTION)
        return
    uris = [row.uri]
    if engine is not None:
        if not prefixes.get(engine):
            builder.skip(row.where, f"route of {engine}, whose mount line is not listed", SkipReason.UNMOUNTED)
            return
        uris = [prefix + row.uri if row.uri != "/" else prefix or "/" for prefix in prefixes[engine]]
    resource = _rails_resource(action.group(1), action.group(2))
    for uri in uris:
        template, globs = _rails_template(uri)
        for verb in row.verb.split("|"):
            builder.add([resource], Endpoint(verb, template), globs)


def _rails_from_text(path: Path, text: str) -> RouteMap:
    lines = text.splitlines()
    annotated = _annotate_block(lines)
    numbered: list[_Line] = list(enumerate(lines, 1))
    builder = _Builder(f"rails routes {path.name}")
    if annotated is not None:
        numbered, markdown = annotated
        if markdown:
            numbered = [(n, _markdown_row(t)) for n, t in numbered]
        builder.source = f"annotate Route Map {path.name}"
    expanded = any(_RAILS_EXPANDED.match(t.strip()) for _, t in numbered)
    items = _rails_expanded_rows(numbered) if expanded else _rails_compact_rows(numbered)
    placed: list[tuple[str | None, _RailsRow | _RailsSkip]] = []
    mounts: dict[str, list[tuple[str | None, str]]] = {}  # engine class → (section of its mount line, path)
    engine: str | None = None
    for item in items:
        if isinstance(item, _RailsSection):
            engine = item.engine
            continue
        placed.append((engine, item))
        if isinstance(item, _RailsRow) and not item.verb:
            target = item.target.split(" ", 1)[0]
            if target and not target.startswith("#<"):
                mounts.setdefault(target, []).append((engine, _drop_optional_groups(item.uri).rstrip("/")))
    prefixes = _mount_prefixes(mounts)
    for section, row in placed:
        if isinstance(row, _RailsSkip):
            builder.skip(row.where, row.why, row.reason)
        else:
            _rails_route(row, builder, prefixes, section)
    if not builder.routes and annotated is None and "routes.draw" in text:
        raise BadInput(
            f"{path}: a routes.rb without annotate's `# == Route Map` comments: "
            "give the output of `bin/rails routes` saved to a file"
        )
    return builder.build(path, "`bin/rails routes` output or annotate's Route Map comments")


def read_rails_routes(path: str | Path) -> RouteMap:
    """Read the text output of ``bin/rails routes`` (the default table, or ``--expanded``).

    Columns Prefix / Verb / URI Pattern / Controller#Action; continuation lines have no prefix. Optional
    groups such as ``(.:format)`` are dropped, ``:id`` / ``*path`` become ``{id}`` / ``{path}`` (a
    ``*glob`` matches several segments in :meth:`RouteMap.match_path`), and ``api/v1/employees#show``
    becomes the resource ``Api::V1::EmployeesController#show`` (plain camelize: acronym inflections such
    as ``API`` are not known here). Routes listed under ``Routes for SomeEngine:`` get the engine's mount
    path when its mount line is present. Lines with no verb (mounted engines, Rack apps), redirects and
    other targets that are not ``controller#action`` are skipped and counted.

    A ``GET|POST`` line gives one route per verb; as all of them carry the same resource name, only the
    first verb gets the name (the others stay matchable by path). Likewise ``PATCH`` and ``PUT`` lines of
    one ``#update``: the first listed keeps the resource name; each collision is listed in
    ``RouteMap.collisions``. Raises BadInput when the file has no route at all.
    """
    p = Path(path)
    return _rails_from_text(p, _read_text(p))


# --- OpenAPI --------------------------------------------------------------------------------------------

_YAML_OPENAPI = re.compile(r"^['\"]?(openapi|swagger)['\"]?\s*:", re.MULTILINE)


def _load_openapi_document(path: Path, text: str) -> Any:
    """The document as JSON or YAML data; BadInput for invalid text, nesting too deep to read, or (YAML) a
    lone surrogate in a string (JSON input: ``parity.bounds.load_json`` refuses those itself)."""
    if text.lstrip().startswith("{"):
        return load_json(text, str(path))
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of more than 4300 digits
        raise BadInput(f"{path}: not valid YAML: {(str(exc).splitlines() or ['?'])[0][:200]}") from None
    except RecursionError:
        raise BadInput(f"{path}: not valid YAML: nested too deeply to read") from None
    if "\\u" in text or "\\U" in text:  # only escapes can make a lone surrogate (the text itself is UTF-8)
        _check_strings(doc, path)
    return doc


def _check_strings(doc: Any, path: Path) -> None:
    """BadInput when a string or key anywhere in ``doc`` holds a lone surrogate; iterative (no recursion)."""
    stack, seen = [doc], set()
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list) and id(node) in seen:  # YAML aliases share nodes
            continue
        if isinstance(node, dict):
            seen.add(id(node))
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            seen.add(id(node))
            stack.extend(node)
        elif isinstance(node, str):
            try:
                check_text(node, "a string")
            except ValueError as exc:
                raise BadInput(f"{path}: {exc}: {node[:40]!r}") from None


def _expand_server_url(server: Mapping[str, Any]) -> str:
    url = str(server.get("url", ""))
    variables = server.get("variables")
    if isinstance(variables, Mapping):
        for name, spec in variables.items():
            default = spec.get("default", "") if isinstance(spec, Mapping) else ""
            url = url.replace("{" + str(name) + "}", str(default))
    return url


def _server_prefix(doc: Mapping[str, Any]) -> str:
    """The base path every server shares (``https://api.example.com/v1`` → ``/v1``); "" when they differ."""
    servers = doc.get("servers")
    if not isinstance(servers, list) or not servers:
        return ""
    prefixes = {urlsplit(_expand_server_url(s)).path.rstrip("/") for s in servers if isinstance(s, Mapping)}
    return prefixes.pop() if len(prefixes) == 1 else ""


def _operation_names(operation: Mapping[str, Any]) -> list[str] | None:
    """The resource names an operation gives its endpoint; None when it names none (no ``operationId``)."""
    explicit = operation.get("x-datadog-resource")
    if isinstance(explicit, str) and explicit.strip():
        return [explicit.strip()]
    op_id = operation.get("operationId")
    if isinstance(op_id, str) and op_id.strip():
        op_id = op_id.strip()
        shorthand = _RAILS_SHORTHAND.fullmatch(op_id)
        if shorthand:  # `employees#show` names the Rails action EmployeesController#show
            return [_rails_resource(shorthand.group(1), shorthand.group(2)), op_id]
        return [op_id]
    return None


def _openapi_from_text(path: Path, text: str) -> RouteMap:
    doc = _load_openapi_document(path, text)
    if not isinstance(doc, dict) or "openapi" not in doc:
        if isinstance(doc, dict) and "swagger" in doc:
            raise BadInput(f"{path}: swagger: Swagger 2 is not supported, convert it to OpenAPI 3")
        raise BadInput(f"{path}: not an OpenAPI document (no 'openapi' key)")
    version = str(doc["openapi"])
    if not version.startswith("3"):
        raise BadInput(f"{path}: openapi: version {version!r} is not 3.x")
    paths = doc.get("paths")
    if not isinstance(paths, dict):
        raise BadInput(f"{path}: paths: expected an object")
    prefix = _server_prefix(doc)
    builder = _Builder(f"OpenAPI {path.name}")
    for route, item in paths.items():
        if not isinstance(item, dict):
            builder.skip(f"paths[{route!r}]", "not an object", SkipReason.NOT_OPERATION)
            continue
        for method in _HTTP_METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            endpoint = Endpoint(method.upper(), prefix + str(route) if prefix else str(route))
            names = _operation_names(operation)
            if names is None:
                builder.unnamed += 1
            builder.add(names or [endpoint.key], endpoint)
    return builder.build(path, "an OpenAPI document with paths and operations")


def read_openapi(path: str | Path) -> RouteMap:
    """Read an OpenAPI 3 document (JSON or YAML).

    Every operation becomes ``Endpoint(METHOD, path)`` with OpenAPI's ``{name}`` templates kept as they
    are, prefixed by the servers' common base path (``servers: [{url: https://x/v1}]`` → ``/v1/...``;
    no prefix when servers disagree). Its resource name is ``x-datadog-resource`` when present, else
    ``operationId`` (a Rails-style ``employees#show`` is also registered as
    ``EmployeesController#show``), else the endpoint key (``GET /api/employees/{id}``), counted in
    ``RouteMap.unnamed``. Such operations (rspec-openapi writes none: ``summary``/``tags`` only) resolve
    resources named by method and path (``GET /api/employees/:id``, see :meth:`RouteMap.resolve`), never a
    ``Controller#action`` name: nothing in the document says which controller serves a path (rspec-openapi's
    tag is the singular model name, ``Api::V1::Employee``, and guessing plurals would map some resources to
    the wrong route); those need ``bin/rails routes`` output.
    """
    p = Path(path)
    return _openapi_from_text(p, _read_text(p))


def read_route_map(path: str | Path) -> RouteMap:
    """A route map picked by content: a JSON object (or a YAML document with an ``openapi:`` key) is
    read as OpenAPI, anything else as ``bin/rails routes`` output. BadInput when neither yields routes."""
    p = Path(path)
    text = _read_text(p)
    if text.lstrip().startswith("{") or _YAML_OPENAPI.search(text[:4096]):
        return _openapi_from_text(p, text)
    return _rails_from_text(p, text)


def describe_route_map(route_map: RouteMap) -> str:
    """One line for the user: routes read, route-map lines skipped by reason (with one example), and for an
    OpenAPI document with operations that name no resource, that they map by method + path only."""
    text = f"route map {route_map.source}: {len(route_map.routes)} routes"
    if route_map.skipped:
        reasons = sorted(route_map.skipped_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        text += f"; {route_map.skipped} lines skipped: " + ", ".join(f"{n} {why}" for why, n in reasons)
        if route_map.skipped_examples:
            text += f" (e.g. {route_map.skipped_examples[0]})"
    else:
        text += "; no line skipped"
    if route_map.unnamed:
        text += (
            f"; {route_map.unnamed} operations without operationId map by method + path only "
            "(Controller#action resources need `bin/rails routes` output)"
        )
    return text


# --- parameter pools ------------------------------------------------------------------------------------


def _read_pool(path: Path) -> tuple[str, ...]:
    name = path.stem
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            values = [row[0].strip() for row in csv.reader(fh) if row and row[0].strip()]
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise BadInput(f"{path}: not a readable CSV: {exc}") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    if values and values[0] == name:
        values = values[1:]
    if not values:
        raise BadInput(f"{path}: no values (expected one {name} value per line)")
    return tuple(values)


def read_param_pools(directory: str | Path) -> dict[str, tuple[str, ...]]:
    """Parameter pools from a directory holding one ``<param>.csv`` per parameter.

    Each pool is the file's first column in file order (surrounding spaces and blank rows dropped;
    duplicates kept, so they weigh more when drawn); a first row equal to the parameter name is a header
    and skipped. BadInput names the directory when it has no CSV file, and the file when one has no value.
    """
    d = Path(directory)
    if not d.exists():
        raise BadInput(f"{d}: no such directory")
    if not d.is_dir():
        raise BadInput(f"{d}: not a directory (expected one <param>.csv per parameter)")
    files = sorted(f for f in d.iterdir() if f.suffix.lower() == ".csv" and f.is_file())
    if not files:
        raise BadInput(f"{d}: no <param>.csv files")
    return {f.stem: _read_pool(f) for f in files}
