"""Versioned JSON (de)serialisation of Measurements (format ``parity-measurement``, version 1).

The schema is ``parity/schemas/measurement.schema.json``. Reading validates against it, so a bad file fails
with one line naming the file and the field (``BadInput``). Writing is atomic (temporary file + rename):
an interrupted write never leaves half a file behind.
"""

from __future__ import annotations

import json as _json
import os
import tempfile
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity.bounds import MAX_LATENCY_MS, check_count, check_number, check_unix_s, load_json
from parity.errors import BadInput, reading
from parity.model import (
    Endpoint,
    EndpointStats,
    GeneratorHealth,
    Latency,
    LatencyDistribution,
    LatencyKind,
    LatencySummary,
    LoadStage,
    Measurement,
    QueryShape,
    RequestTemplate,
    Source,
    SourceKind,
    Timeline,
    Window,
)
from parity.sketch import LatencySketch

if TYPE_CHECKING:
    import jsonschema

__all__ = [
    "FORMAT",
    "VERSION",
    "dumps",
    "from_dict",
    "loads",
    "looks_like_measurement",
    "read",
    "to_dict",
    "write",
]

FORMAT = "parity-measurement"
#: Permissions of written files (mkstemp's default 0600 would hide them from other users).
_FILE_MODE = 0o644
VERSION = 1
#: Rate scales and load factors a file may hold (a millionth to a million times the reproduced traffic).
MIN_SCALE, MAX_SCALE = 1e-6, 1e6
#: Timeline and generator intervals a file may hold, s (1 ms to about 116 days).
MIN_INTERVAL_S, MAX_INTERVAL_S = 1e-3, 1e7
#: Largest request rate (req/s) a stage's target may have.
MAX_RPS = 1e9
#: Longest a schema message may be in an error line (it quotes the offending value).
_MESSAGE_CHARS = 200


@cache
def _validator() -> jsonschema.protocols.Validator:
    # jsonschema costs ~70 ms of imports: only a Measurement file being read needs it, not every command
    import jsonschema.validators

    text = resources.files("parity").joinpath("schemas/measurement.schema.json").read_text("utf-8")
    schema = load_json(text, "measurement.schema.json")
    cls = jsonschema.validators.validator_for(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def looks_like_measurement(data: object) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT


# -- writing -------------------------------------------------------------------------------------


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _latency_to_dict(latency: Latency | None) -> dict[str, Any] | None:
    if latency is None:
        return None
    if isinstance(latency, LatencySummary):
        return {
            "kind": "summary",
            "avg_ms": latency.avg_ms,
            "max_ms": latency.max_ms,
            "p50_ms": latency.p50_ms,
            "p75_ms": latency.p75_ms,
            "p90_ms": latency.p90_ms,
            "p95_ms": latency.p95_ms,
            "p99_ms": latency.p99_ms,
        } | ({} if latency.quantile_digits is None else {"quantile_digits": latency.quantile_digits})
    return {"kind": "ddsketch", **latency.sketch.to_dict()}


def _round_list(values: tuple[float | None, ...] | None) -> list[float | None] | None:
    if values is None:
        return None
    return [None if v is None else round(v, 3) for v in values]


def _timeline_to_dict(t: Timeline | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "start_s": t.start_s,
        "interval_s": t.interval_s,
        "counts": list(t.counts),
        "errors": None if t.errors is None else list(t.errors),
        "avg_ms": _round_list(t.avg_ms),
        "p95_ms": _round_list(t.p95_ms),
        "max_ms": _round_list(t.max_ms),
    }


def _request_to_dict(r: RequestTemplate | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "path": r.path,
        "query": dict(r.query),
        "params": {k: list(v) for k, v in r.params.items()},
        "body": r.body,
        "headers": dict(r.headers),
        **({"query_shapes": [_shape_to_dict(q) for q in r.query_shapes]} if r.query_shapes else {}),
    }


def _shape_to_dict(q: QueryShape) -> dict[str, Any]:
    return {"params": [[name, value] for name, value in q.params], "weight": q.weight}


def _endpoint_to_dict(e: EndpointStats) -> dict[str, Any]:
    return {
        "endpoint": e.endpoint.key,
        "resource": e.resource,
        "count": e.count,
        "errors": e.errors,
        "latency": _latency_to_dict(e.latency),
        "intended_latency": _latency_to_dict(e.intended),
        "timeline": _timeline_to_dict(e.timeline),
        "request": _request_to_dict(e.request),
        **({"load_factor": e.load_factor} if e.load_factor != 1.0 else {}),
    }


def _stage_to_dict(s: LoadStage) -> dict[str, Any]:
    return {
        "name": s.name,
        "start_s": s.start_s,
        "end_s": s.end_s,
        "target_rps": round(s.target_rps, 6),
        "endpoints": [_endpoint_to_dict(e) for e in s.endpoints],
    }


def _generator_to_dict(g: GeneratorHealth | None) -> dict[str, Any] | None:
    if g is None:
        return None
    return {
        "start_s": g.start_s,
        "interval_s": g.interval_s,
        "cpu_percent": [None if c is None else round(c, 1) for c in g.cpu_percent],
        "late": list(g.late),
        "processes": g.processes,
        "sent": g.sent,
        "late_sends": g.late_sends,
        "dropped": g.dropped,
        "unsent": g.unsent,
        "in_flight": g.in_flight,
        "late_after_ms": g.late_after_ms,
        "saturation_percent": g.saturation_percent,
        **({"lag_ms": [None if x is None else round(x, 1) for x in g.lag_ms]} if g.lag_ms else {}),
    }


def to_dict(m: Measurement) -> dict[str, Any]:
    """The JSON-ready form of ``m`` (round-trips through :func:`from_dict`)."""
    out = {
        "format": FORMAT,
        "version": VERSION,
        "source": {
            "kind": m.source.kind.value,
            "description": m.source.description,
            "service": m.source.service,
            "env": m.source.env,
            "target": m.source.target,
        },
        "window": {"start": _iso(m.window.start), "end": _iso(m.window.end)},
        "latency_kind": m.latency_kind.value,
        "rate_scale": m.rate_scale,
        "pair_id": m.pair_id,
        "labels": dict(m.labels),
        "endpoints": [_endpoint_to_dict(e) for e in m.endpoints],
    }
    if m.stages:
        out["stages"] = [_stage_to_dict(s) for s in m.stages]
    if m.generator is not None:
        out["generator"] = _generator_to_dict(m.generator)
    return out


def _layout(value: Any, indent: str = "") -> str:
    """Indented JSON whose lists of scalars stay on one line (timelines and sketch bins stay readable)."""
    inner = indent + " "
    if isinstance(value, dict) and value:
        items = ",\n".join(f"{inner}{_json.dumps(k)}: {_layout(v, inner)}" for k, v in value.items())
        return "{\n" + items + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = ",\n".join(inner + _layout(v, inner) for v in value)
        return "[\n" + items + "\n" + indent + "]"
    return _json.dumps(
        value, allow_nan=False, ensure_ascii=False, separators=(",", ":") if isinstance(value, list) else None
    )


def dumps(m: Measurement) -> str:
    """The file text of ``m``: indented JSON, lists of numbers on one line, trailing newline."""
    return _layout(to_dict(m)) + "\n"


def write(m: Measurement, path: str | os.PathLike[str]) -> Path:
    """Write ``m`` to ``path`` atomically; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(m)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# -- reading -------------------------------------------------------------------------------------


def _field_path(error: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "(top level)"


def _parse_time(text: str, where: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{where}: not an ISO-8601 time: {text[:40]!r}") from exc
    if t.tzinfo is None:
        raise ValueError(f"{where}: time {text[:40]!r} has no time zone (use Z or +00:00)")
    try:
        check_unix_s(t.timestamp(), where)
        return t.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"{where}: time {text[:40]!r} is not between 1970 and 2100") from None


def _ms(value: Any, where: str) -> float | None:
    """A latency in ms (None stays None): finite, in [0, MAX_LATENCY_MS]."""
    return None if value is None else check_number(value, where, lo=0.0, hi=MAX_LATENCY_MS)


def _counts(values: list[Any] | None, where: str) -> tuple[int | None, ...] | None:
    return (
        None
        if values is None
        else tuple(None if v is None else check_count(v, f"{where}[{i}]") for i, v in enumerate(values))
    )


def _ms_list(values: list[Any] | None, where: str) -> tuple[float | None, ...] | None:
    return None if values is None else tuple(_ms(v, f"{where}[{i}]") for i, v in enumerate(values))


def _latency_from_dict(d: dict[str, Any] | None, where: str, count: int) -> Latency | None:
    """A summary (every figure a latency in ms) or a sketch (see :func:`parity.sketch.check_sketch_dict`)
    holding at most the endpoint's ``count`` requests; ValueError naming ``where`` and the part."""
    if d is None:
        return None
    if d["kind"] == "summary":
        digits = d.get("quantile_digits")
        figures = {k: _ms(v, f"{where}.{k}") for k, v in d.items() if k not in ("kind", "quantile_digits")}
        rounded = None if digits is None else check_count(digits, f"{where}.quantile_digits")
        return LatencySummary(**figures, quantile_digits=rounded)
    try:
        sketch = LatencySketch.from_dict(d)
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}") from None
    if sketch.count > count + 1e-6:
        raise ValueError(f"{where}.count: {sketch.count:g} latencies, more than the endpoint's {count} requests")
    return LatencyDistribution(sketch)


def _timeline_from_dict(d: dict[str, Any] | None) -> Timeline | None:
    if d is None:
        return None
    return Timeline(
        start_s=check_unix_s(d["start_s"], "timeline.start_s"),
        interval_s=check_number(d["interval_s"], "timeline.interval_s", lo=MIN_INTERVAL_S, hi=MAX_INTERVAL_S),
        counts=_counts(d["counts"], "timeline.counts") or (),
        errors=_counts(d.get("errors"), "timeline.errors"),
        avg_ms=_ms_list(d.get("avg_ms"), "timeline.avg_ms"),
        p95_ms=_ms_list(d.get("p95_ms"), "timeline.p95_ms"),
        max_ms=_ms_list(d.get("max_ms"), "timeline.max_ms"),
    )


def _request_from_dict(d: dict[str, Any] | None) -> RequestTemplate | None:
    if d is None:
        return None
    return RequestTemplate(
        path=d["path"],
        query=dict(d.get("query", {})),
        params={k: tuple(v) for k, v in d.get("params", {}).items()},
        body=d.get("body"),
        headers=dict(d.get("headers", {})),
        query_shapes=tuple(
            QueryShape(
                params=tuple((name, value) for name, value in q["params"]),
                weight=check_number(q["weight"], "request.query_shapes.weight", lo=0.0, hi=2.0**53, lo_open=True),
            )
            for q in d.get("query_shapes", ())
        ),
    )


def _endpoint_from_dict(d: dict[str, Any]) -> EndpointStats:
    count = check_count(d["count"], "count")
    errors = d.get("errors")
    return EndpointStats(
        endpoint=Endpoint.parse(d["endpoint"]),
        count=count,
        errors=None if errors is None else check_count(errors, "errors"),
        latency=_latency_from_dict(d.get("latency"), "latency", count),
        intended=_latency_from_dict(d.get("intended_latency"), "intended_latency", count),
        timeline=_timeline_from_dict(d.get("timeline")),
        request=_request_from_dict(d.get("request")),
        resource=d.get("resource"),
        load_factor=check_number(d.get("load_factor", 1.0), "load_factor", lo=MIN_SCALE, hi=MAX_SCALE),
    )


def _stage_from_dict(d: dict[str, Any]) -> LoadStage:
    return LoadStage(
        name=d["name"],
        start_s=check_unix_s(d["start_s"], "start_s"),
        end_s=check_unix_s(d["end_s"], "end_s"),
        target_rps=check_number(d["target_rps"], "target_rps", lo=0.0, hi=MAX_RPS),
        endpoints=tuple(_endpoint_from_dict(e) for e in d["endpoints"]),
    )


def _check_generator(d: dict[str, Any] | None) -> None:
    """The generator's times and intervals are sane and its figures finite (the schema gives the minimums)."""
    if d is None:
        return
    check_unix_s(d["start_s"], "start_s")
    check_number(d["interval_s"], "interval_s", lo=MIN_INTERVAL_S, hi=MAX_INTERVAL_S)
    for key, value in d.items():
        if isinstance(value, list):
            for i, v in enumerate(value):
                if v is not None:
                    check_number(v, f"{key}[{i}]", lo=0.0)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            check_number(value, key, hi=MAX_LATENCY_MS if isinstance(value, float) else 2**53)


def _generator_from_dict(d: dict[str, Any] | None) -> GeneratorHealth | None:
    if d is None:
        return None
    defaults = GeneratorHealth(0.0, 1.0, (), ())
    return GeneratorHealth(
        start_s=float(d["start_s"]),
        interval_s=float(d["interval_s"]),
        cpu_percent=tuple(None if c is None else float(c) for c in d["cpu_percent"]),
        late=tuple(int(n) for n in d["late"]),
        processes=int(d.get("processes", defaults.processes)),
        sent=int(d.get("sent", defaults.sent)),
        late_sends=int(d.get("late_sends", defaults.late_sends)),
        dropped=int(d.get("dropped", defaults.dropped)),
        unsent=int(d.get("unsent", defaults.unsent)),
        in_flight=int(d.get("in_flight", defaults.in_flight)),
        late_after_ms=float(d.get("late_after_ms", defaults.late_after_ms)),
        saturation_percent=float(d.get("saturation_percent", defaults.saturation_percent)),
        lag_ms=tuple(None if x is None else float(x) for x in d.get("lag_ms", ())),
    )


def from_dict(data: Any, name: str = "<data>") -> Measurement:
    """Validate and build a Measurement; raises BadInput naming ``name`` and the offending field."""
    if isinstance(data, dict) and data.get("format") == FORMAT and data.get("version") != VERSION:
        raise BadInput(f"{name}: version: unsupported Measurement version {data.get('version')!r} (expected 1)")
    import jsonschema.exceptions  # see _validator

    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        message = error.message if len(error.message) <= _MESSAGE_CHARS else error.message[: _MESSAGE_CHARS - 3] + "..."
        raise BadInput(f"{name}: {_field_path(error)}: {message}")
    field = "endpoints"
    try:
        field = "window"
        window = Window(_parse_time(data["window"]["start"], "start"), _parse_time(data["window"]["end"], "end"))
        endpoints = []
        for i, e in enumerate(data["endpoints"]):
            field = f"endpoints[{i}]"
            endpoints.append(_endpoint_from_dict(e))
        stages = []
        for i, st in enumerate(data.get("stages", [])):
            field = f"stages[{i}]"
            stages.append(_stage_from_dict(st))
        field = "generator"
        _check_generator(data.get("generator"))
        generator = _generator_from_dict(data.get("generator"))
        field = "endpoints"
        src = data["source"]
        return Measurement(
            source=Source(
                kind=SourceKind(src["kind"]),
                description=src.get("description", ""),
                service=src.get("service"),
                env=src.get("env"),
                target=src.get("target"),
            ),
            window=window,
            endpoints=tuple(endpoints),
            latency_kind=LatencyKind(data["latency_kind"]),
            rate_scale=check_number(data.get("rate_scale", 1.0), "rate_scale", lo=MIN_SCALE, hi=MAX_SCALE),
            pair_id=data.get("pair_id"),
            labels=dict(data.get("labels", {})),
            stages=tuple(stages),
            generator=generator,
        )
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        raise BadInput(f"{name}: {field}: {exc}") from None


def read(path: str | os.PathLike[str]) -> Measurement:
    """Read a Measurement file; raises BadInput (one line naming the file and field) when it is unusable."""
    p = Path(path)
    with reading(p, "a Measurement file"):
        text = p.read_text("utf-8")
    return loads(text, str(p))


def loads(text: str, name: str = "<data>") -> Measurement:
    """Parse a Measurement file's text; raises BadInput naming ``name`` and the field when it is unusable.

    A leading byte-order mark is skipped; NaN, infinities, numbers beyond the float range, nesting deeper
    than ``parity.bounds.MAX_JSON_DEPTH`` and lone surrogates in strings are refused (``load_json``)."""
    return from_dict(load_json(text, name), name)
