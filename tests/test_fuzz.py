"""Fuzz tests: every reader on generated hostile input ends in a valid result or one BadInput — nothing else.

Readers: Measurement JSON (and what is built from it: JSON text, a judgement), Locust request CSV, nginx and ALB
access logs, route maps (``bin/rails routes`` text, OpenAPI JSON and YAML), Datadog answer parsing and
parity.toml. Inputs: random bytes, and valid files mutated (numbers replaced by NaN/inf/1e400/-1/huge integers,
truncated, a byte-order mark, deep nesting, lone surrogates, huge sketch offsets).

Hypothesis runs derandomized (the same examples on every run, no example database) with ``FUZZ_EXAMPLES``
examples per test (default below: all tests together take about 15 s idle). For a long local hunt:
``FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import measurement_json
from parity.config import load_config
from parity.datadog import DatadogError, _latency_ms, _scalar_answer, _series
from parity.errors import BadInput
from parity.judge.compare import compare
from parity.judge.policy import Policy
from parity.model import GeneratorHealth, LoadStage, Timeline
from parity.sources import load_measurement
from parity.sources.access_log import read_access_logs
from parity.sources.routes import read_route_map
from tests.conftest import lognormal_side

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
#: Seconds one example may take before the test calls it a hang (generous: the machine is shared).
MAX_EXAMPLE_S = 30.0
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # timing is checked with a generous bound instead: a deadline flakes on a busy machine
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
ROUTES = Path(__file__).parent / "fixtures" / "routes"

#: Numbers no reader may trust, as JSON/CSV/TOML text.
HOSTILE_NUMBERS = (
    "NaN", "nan", "Infinity", "-Infinity", "inf", "-inf", "1e400", "-1e400", "-1", "-0.5", "0", "1e-320",
    "1e308", "99999999999999999999999999999", "1" + "0" * 5000, "100000000", "-100000000", "4e9", "1.5",
)  # fmt: skip
#: For JSON: mostly numbers JSON allows (so that the checks behind the parser are reached), some it refuses.
JSON_NUMBERS = tuple(n for n in HOSTILE_NUMBERS if n[-1].isdigit() and len(n) < 100) * 4 + HOSTILE_NUMBERS
HOSTILE_TEXT = ("\ud800", "a\udfff", "\ufeff", "\x00", "\x1b[31m", "@here", "<b>x</b>", "\u202e", "{id}", "")


def _only_bad_input(read: Callable[[], Any]) -> Any:
    """Run ``read``: its result, or None when it raised BadInput; any other exception fails the test."""
    started = time.monotonic()
    try:
        return read()
    except BadInput as exc:
        message = str(exc)
        assert "\n" not in message, f"multi-line error: {exc!r}"  # noqa: PT017 (the message of any BadInput)
        return None
    finally:
        assert time.monotonic() - started < MAX_EXAMPLE_S


# --- Measurement JSON ------------------------------------------------------------------------------


def _valid_measurement() -> dict[str, Any]:
    m = lognormal_side({"GET /a": 20.0, "GET /b/{id}": 5.0}, n=300)
    first = m.endpoints[0]
    timeline = Timeline(1.8e9, 60.0, (150, 150), (0, 1), (20.0, None), (30.0, 31.0), (40.0, 41.0))
    stage = LoadStage("step 1", 1.8e9, 1.8e9 + 60, 5.0, (first,))
    generator = GeneratorHealth(1.8e9, 1.0, (50.0, None), (0, 2), sent=300)
    m = type(m)(**{**m.__dict__, "stages": (stage,), "generator": generator})
    data = measurement_json.to_dict(m)
    data["endpoints"][0]["timeline"] = measurement_json.to_dict(
        type(m)(**{**m.__dict__, "endpoints": (type(first)(**{**first.__dict__, "timeline": timeline}),)})
    )["endpoints"][0]["timeline"]
    data["endpoints"][1]["latency"] = {"kind": "summary", "avg_ms": 5.0, "p95_ms": 9.0, "max_ms": None}
    return data


VALID = _valid_measurement()
VALID_TEXT = json.dumps(VALID)
BASELINE = measurement_json.from_dict(VALID)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a scalar (or empty container) in ``node``."""
    if isinstance(node, dict) and node:
        return [p for k, v in node.items() for p in _paths(v, (*prefix, k))]
    if isinstance(node, list) and node:
        return [p for i, v in enumerate(node) for p in _paths(v, (*prefix, i))]
    return [prefix]


def _sample_leaves(paths: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """At most two leaves per list (the first and the last), so that long bin lists do not drown the rest."""
    kept: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for p in paths:
        parent = p[:-1] if p and isinstance(p[-1], int) else p
        kept.setdefault(parent, []).append(p)
    return [p for group in kept.values() for p in ({group[0], group[-1]} if len(group) > 1 else group)]


LEAVES = sorted(_sample_leaves(_paths(VALID)), key=repr)
MARKER = "__HOSTILE__"


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


@st.composite
def mutated_measurement(draw: st.DrawFn) -> str:
    data = json.loads(VALID_TEXT)
    raw: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(LEAVES))
        kind = draw(st.sampled_from(["number", "number", "text", "delete", "nest", "list"]))
        if kind == "number":
            raw.append(draw(st.sampled_from(JSON_NUMBERS)))
            _set(data, path, f"{MARKER}{len(raw) - 1}")
        elif kind == "text":
            _set(data, path, draw(st.sampled_from(HOSTILE_TEXT)) + draw(st.text(max_size=5)))
        elif kind == "delete" and len(path) > 1:
            parent: Any = data
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
        elif kind == "nest":
            depth = draw(st.sampled_from([1, 2, 2, 70, 2000]))
            _set(data, path, MARKER + "nest")
            raw.append("[" * depth + "1" + "]" * depth)
        else:
            _set(data, path, draw(st.lists(st.one_of(st.none(), st.integers(-5, 10**6), st.floats()), max_size=5)))
    text = json.dumps(data)
    for i, value in enumerate(raw):
        text = text.replace(json.dumps(f"{MARKER}{i}"), value).replace(json.dumps(MARKER + "nest"), value, 1)
    if draw(st.integers(0, 5)) == 5:  # not 0: Hypothesis starts from the smallest draws
        text = text[: draw(st.integers(0, len(text)))]
    if draw(st.integers(0, 4)) == 4:
        text = "\ufeff" + text
    return text


def _read_json(text: str) -> None:
    m = _only_bad_input(lambda: measurement_json.loads(text, "fuzz.json"))
    if m is not None:  # a valid result must survive what comes after reading: writing and judging it
        measurement_json.dumps(m).encode("utf-8")
        compare(BASELINE, m, Policy(), names=("baseline", "fuzz"))


@FUZZ
@given(mutated_measurement())
def test_fuzz_measurement_json(text: str) -> None:
    _read_json(text)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace"))))
def test_fuzz_measurement_json_random_text(text: str) -> None:
    _read_json("{" + text if text[:1] != "{" else text)


@FUZZ
@given(
    offset=st.integers(-(10**9), 10**9),
    accuracy=st.sampled_from([1e-9, 1e-4, 0.01, 0.3, 0.5, 0.9, 0.999999]),
    scale=st.sampled_from([1e-12, 1e-6, 1.0, 1e6, 1e12, 1e300]),
    count=st.integers(0, 2**60),
)
def test_fuzz_sketch_numbers(offset: int, accuracy: float, scale: float, count: int) -> None:
    data = json.loads(VALID_TEXT)
    sketch = data["endpoints"][0]["latency"]
    sketch.update(relative_accuracy=accuracy, offset=offset, min=sketch["min"] * scale, max=sketch["max"] * scale)
    sketch["sum"] *= scale
    data["endpoints"][0]["count"] = count
    _read_json(json.dumps(data))


# --- Locust request CSV ----------------------------------------------------------------------------

CSV_HEADER = "timestamp,request_type,name,response_time_ms,response_length,status_code,exception\n"
CSV_CELL = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS), st.sampled_from(HOSTILE_TEXT), st.text(max_size=8), st.just("1800000000")
)


@st.composite
def locust_csv(draw: st.DrawFn) -> bytes:
    rows = [f"{1.8e9 + i},GET,/a,{10 + i},100,200," for i in range(draw(st.integers(0, 5)))]
    for _ in range(draw(st.integers(1, 4))):
        cells = [draw(CSV_CELL) for _ in range(7)]
        for i, good in enumerate(["1800000001", "GET", "/b", "12", "1", "200", ""]):
            if draw(st.booleans()):
                cells[i] = good
        rows.append(",".join(cells))
    text = (draw(st.sampled_from(["", "\ufeff"])) + CSV_HEADER + "\n".join(rows) + "\n").encode(
        "utf-8", "surrogatepass"
    )
    if draw(st.integers(0, 3)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


@FUZZ
@given(locust_csv())
def test_fuzz_locust_csv(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("csv") / "requests.csv"
    path.write_bytes(content)
    m = _only_bad_input(lambda: load_measurement(path))
    if m is not None:
        measurement_json.dumps(m).encode("utf-8")


# --- access logs ---------------------------------------------------------------------------------

NGINX = '10.0.0.1 - - [{time}] "{method} {path} HTTP/1.1" {status} 12 "-" "curl/8" {timing}'
ALB = (
    'https {iso} app/lb/1 10.0.0.1:1 10.0.0.2:80 {t1} {t2} {t3} {status} {status} 10 20 "{method} '
    'https://h:443{path} HTTP/1.1" "curl/8" - - arn "Root=1" "-" "-" 0 {iso} "forward" "-" "-" "-" "-" "-" "-"'
)
LOG_FIELD = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.sampled_from(HOSTILE_TEXT), st.text(max_size=6))


@st.composite
def access_log(draw: st.DrawFn) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(["nginx", "alb"]))
    lines = []
    for i in range(draw(st.integers(1, 6))):
        values = {
            "time": f"10/Oct/2026:13:55:{i:02d} +0000",
            "iso": f"2026-10-10T13:55:{i:02d}.000000Z",
            "method": "GET",
            "path": f"/api/employees/{i}",
            "status": "200",
            "timing": "0.012",
            "t1": "0.001",
            "t2": "0.010",
            "t3": "0.001",
        }
        for key in draw(st.lists(st.sampled_from(sorted(values)), max_size=3)):
            values[key] = draw(
                st.one_of(
                    LOG_FIELD,
                    st.sampled_from(
                        ["01/Jan/0001:00:00:00 +1400", "31/Dec/9999:23:59:59 -1400", "0001-01-01T00:00:00+14:00"]
                    ),
                )
            )
        lines.append((NGINX if fmt == "nginx" else ALB).format(**values))
    if draw(st.integers(0, 5)) == 0:
        lines.append("x" * 70000)
    text = "\n".join(lines).encode("utf-8", "surrogateescape" if False else "surrogatepass")
    if draw(st.booleans()):
        text = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe"])) + text
    return fmt, text


@FUZZ
@given(access_log())
def test_fuzz_access_logs(tmp_path_factory: pytest.TempPathFactory, case: tuple[str, bytes]) -> None:
    fmt, content = case
    path = tmp_path_factory.mktemp("log") / "access.log"
    path.write_bytes(content)
    result = _only_bad_input(lambda: read_access_logs(path, fmt, max_malformed_share=1.0))
    if result is not None:
        measurement_json.dumps(result.measurement).encode("utf-8")


# --- route maps ----------------------------------------------------------------------------------

RAILS_TEXT = (ROUTES / "rails_routes.txt").read_text("utf-8")
OPENAPI = json.loads((ROUTES / "openapi.json").read_text("utf-8"))


@st.composite
def route_map_text(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["rails", "openapi-json", "openapi-yaml", "random"]))
    if kind == "rails":
        lines = RAILS_TEXT.splitlines()
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))] + draw(st.sampled_from(HOSTILE_TEXT))
        return "\n".join(lines)
    if kind == "random":
        return draw(st.text(max_size=300))
    doc = json.loads(json.dumps(OPENAPI))
    leaves = _paths(doc)
    for _ in range(draw(st.integers(1, 4))):
        value: Any = draw(st.one_of(st.sampled_from(HOSTILE_TEXT), st.integers(), st.none(), st.just([[[[]]]])))
        _set(doc, draw(st.sampled_from(leaves)), value)
    if kind == "openapi-json":
        text = json.dumps(doc)
        if draw(st.booleans()):
            text = text[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
        return text
    names = [draw(st.sampled_from(HOSTILE_TEXT)).encode("unicode_escape").decode() for _ in range(2)]
    yaml_text = "openapi: 3.0.0\npaths:\n" + "".join(
        f'  "{p}":\n    get: {{operationId: "{name}"}}\n' for p, name in zip(("/a", "/b/{id}"), names, strict=True)
    )
    if draw(st.booleans()):
        yaml_text += "x: " + "[" * 3000 + "]" * 3000 + "\n"
    return yaml_text


@FUZZ
@given(route_map_text())
def test_fuzz_route_maps(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("routes") / "routes.txt"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    route_map = _only_bad_input(lambda: read_route_map(path))
    if route_map is not None:
        for endpoint in route_map.routes:
            endpoint.key.encode("utf-8")
            route_map.match(endpoint.method or "GET", "/api/employees/1")
        for name in route_map.entries:
            name.encode("utf-8")


# --- Datadog answers -----------------------------------------------------------------------------

DD_NUMBER = st.one_of(
    st.none(), st.floats(), st.integers(-(10**20), 10**20), st.sampled_from([math.nan, math.inf, -math.inf, 1e308])
)


@FUZZ
@given(
    group=st.one_of(st.text(max_size=10), st.sampled_from(HOSTILE_TEXT)),
    points=st.lists(st.tuples(DD_NUMBER, DD_NUMBER), max_size=5),
    interval=DD_NUMBER,
    stats=st.dictionaries(st.sampled_from(["sum", "count", "max", "p50", "p95"]), DD_NUMBER),
)
def test_fuzz_datadog_answers(group: str, points: list[tuple[Any, Any]], interval: Any, stats: dict[str, Any]) -> None:
    """The parsers raise only what their callers turn into a DatadogError (a BadInput), or BadInput itself."""
    raw = {"tag_set": [f"resource_name:{group}"], "pointlist": [[t, v] for t, v in points], "interval": interval}
    expected = (BadInput, KeyError, TypeError, ValueError, ArithmeticError)  # what DatadogClient catches
    try:
        series = _series(raw)
        assert series is not None
        for _, value in series.points:
            assert value is None or (math.isfinite(value) and value >= 0)
    except expected:
        pass
    columns: list[dict[str, Any]] = [
        {"type": "group", "values": [[f"resource_name:{group}"]]},
        {"type": "number", "values": [stats.get("max")]},
    ]
    try:
        rows = dict(_scalar_answer(columns, "q", DatadogError).values)
        summary = _latency_ms(group, {"max": rows, "sum": rows, "count": rows, "p95": rows})
        assert all(v is None or 0 <= v <= 1e10 for v in (summary.avg_ms, summary.max_ms))
    except expected:
        pass


# --- parity.toml ---------------------------------------------------------------------------------

TOML_VALUES = (
    "nan", "+nan", "-nan", "inf", "-inf", "-1", "0", "1e308", "9223372036854775807", "0.5", "1", "2", '"x"',
    '"fail"', "[]", '["a"]', "true", "1e-320",
)  # fmt: skip
TOML_KEYS = {
    "compare": [
        "min_samples", "max_inconclusive_share", "max_generator_saturated_share", "alpha", "marginal_alpha",
        "slo_p95_ms", "latency", "fail_on",
    ],
    "compare.metrics.p95_ms": ["tolerance", "min_delta", "min_samples", "gate"],
    'compare.endpoints."GET /a"': ["critical", "slo_p95_ms"],
    "replay": ["max_rps", "abort_error_ratio", "abort_p99_ms", "abort_window_s", "allow_hosts"],
    "nightly": [
        "max_baseline_age_days", "duration_s", "rate_scale", "processes", "seed", "shape", "locust_args",
        "report_url",
    ],
    "nightly.pull": ["window_hours", "delay_s"],
}  # fmt: skip


@st.composite
def parity_toml(draw: st.DrawFn) -> str:
    tables: dict[str, list[str]] = {}
    for _ in range(draw(st.integers(1, 5))):
        table = draw(st.sampled_from(sorted(TOML_KEYS)))
        key = draw(st.sampled_from(TOML_KEYS[table]))
        tables.setdefault(table, []).append(f"{key} = {draw(st.sampled_from(TOML_VALUES))}")
    if "nightly" in tables or "nightly.pull" in tables:
        tables.setdefault("nightly", []).extend(['baseline = "b.json"', 'target = "http://127.0.0.1:1"'])
    if "nightly.pull" in tables:
        tables["nightly.pull"].extend(['service = "s"', 'env = "e"'])
    lines = []
    for table, entries in tables.items():
        seen: dict[str, str] = {}
        for entry in entries:
            seen.setdefault(entry.split(" = ")[0], entry)  # one value per key (TOML refuses duplicates)
        lines += [f"[{table}]", *seen.values()]
    text = "\n".join(lines) + "\n"
    return draw(st.sampled_from(["", "\ufeff"])) + text


NON_FINITE = ("nan", "inf")


@FUZZ
@given(parity_toml())
def test_fuzz_parity_toml(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("config") / "parity.toml"
    path.write_text(text, "utf-8")
    config = _only_bad_input(lambda: load_config(path))
    if config is None:
        return
    for line in text.splitlines():  # a NaN or an infinity is never accepted, whatever the key
        assert not any(
            line.endswith(f"= {v}") or line.endswith(f"= -{v}") or line.endswith(f"= +{v}") for v in NON_FINITE
        )
    policy = config.policy
    numbers = [
        policy.max_inconclusive_share,
        policy.alpha,
        policy.marginal_alpha,
        *policy.rule("p95_ms").__dict__.values(),
    ]
    assert all(not isinstance(v, float) or math.isfinite(v) for v in numbers)
