"""Measurement model, sketch codec and the JSON file format."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from parity import measurement_json
from parity.errors import BadInput
from parity.model import (
    Endpoint,
    EndpointStats,
    GeneratorHealth,
    LatencyKind,
    LatencySummary,
    LoadStage,
    Measurement,
    RequestTemplate,
    Source,
    SourceKind,
    Timeline,
    Window,
    fingerprint,
)
from parity.sketch import LatencySketch
from tests.conftest import T0, lognormal_side, sketch_of


def test_sketch_quantiles_within_relative_accuracy(rng: np.random.Generator) -> None:
    values = rng.lognormal(3.0, 0.8, 20_000)
    sketch = sketch_of(values)
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = float(np.quantile(values, q, method="lower"))
        assert sketch.quantile(q) == pytest.approx(exact, rel=0.011)
    assert sketch.count == 20_000
    assert sketch.avg == pytest.approx(values.mean())
    assert sketch.max == pytest.approx(values.max())


def test_sketch_round_trip_and_merge_are_exact(rng: np.random.Generator) -> None:
    a, b = rng.exponential(20, 500), rng.exponential(200, 300)
    sa, sb = sketch_of(a), sketch_of(b)
    restored = LatencySketch.from_dict(json.loads(json.dumps(sa.to_dict())))
    assert restored.to_dict() == sa.to_dict()
    merged = restored.merged(LatencySketch.from_dict(sb.to_dict()))
    whole = sketch_of(np.concatenate([a, b]))
    assert merged.to_dict()["bins"] == whole.to_dict()["bins"]
    assert merged.count == 800
    assert merged.quantile(0.99) == whole.quantile(0.99)
    assert sa.count == 500  # inputs unchanged


def test_sketch_edge_cases() -> None:
    empty = LatencySketch()
    assert empty.quantile(0.5) is None
    assert LatencySketch.from_dict(empty.to_dict()).count == 0
    one = sketch_of([12.5])
    assert one.quantile(0.0) == one.quantile(1.0) == 12.5  # clamped to the exact min/max
    zeros = sketch_of([0.0, 0.0, -3.0])
    assert zeros.count == 3
    assert zeros.quantile(0.5) == 0.0
    constant = sketch_of([7.0] * 100)
    assert constant.quantile(0.99) == pytest.approx(7.0, rel=0.01)
    bad = one.to_dict() | {"count": 5}
    with pytest.raises(ValueError, match="count: 5"):
        LatencySketch.from_dict(bad)


def _full_measurement() -> Measurement:
    side = lognormal_side({"GET /a": 10.0}, n=50, errors={"GET /a": 2})
    summary = EndpointStats(
        endpoint=Endpoint("", "UsersController#show"),
        count=10,
        errors=None,
        latency=LatencySummary(avg_ms=5.0, p99_ms=None, max_ms=40.0),
        timeline=Timeline(start_s=T0.timestamp(), interval_s=60, counts=(4, None, 6), errors=(0, None, 1)),
        request=RequestTemplate(path="/users/{id}", params={"id": ("1", "2")}, body={"x": "{id}"}),
        resource="UsersController#show",
    )
    t0 = side.window.start.timestamp()
    return Measurement(
        source=Source(SourceKind.DATADOG, "pull", service="web", env="ec2"),
        window=side.window,
        endpoints=(*side.endpoints, summary),
        labels={"k": "v"},
        stages=(
            LoadStage("10%", t0, t0 + 30, 1.5, endpoints=side.endpoints),
            LoadStage("100%", t0 + 30, t0 + 60, 15.0),
        ),
        generator=GeneratorHealth(
            t0, 30.0, cpu_percent=(12.5, None), late=(0, 3), processes=2, sent=60, late_sends=3, lag_ms=(1.5, None)
        ),
    )


def test_measurement_round_trip(tmp_path: Path) -> None:
    m = _full_measurement()
    path = measurement_json.write(m, tmp_path / "sub" / "m.json")
    back = measurement_json.read(path)
    assert measurement_json.to_dict(back) == measurement_json.to_dict(m)
    assert back.endpoints[1].timeline is not None
    assert back.endpoints[1].timeline.counts == (4, None, 6)  # missing stays missing, not zero
    assert back.endpoints[1].latency == LatencySummary(avg_ms=5.0, max_ms=40.0)
    assert not list(tmp_path.glob("sub/.m.json.*"))  # no temporary file left behind
    assert [st.name for st in back.stages] == ["10%", "100%"]
    assert back.stages[0].endpoints[0].count == m.stages[0].endpoints[0].count
    assert back.generator == m.generator


def test_load_factor_round_trips_and_defaults_to_one(tmp_path: Path) -> None:
    m = _full_measurement()
    oversampled = replace(m, endpoints=(replace(m.endpoints[0], load_factor=4.0), *m.endpoints[1:]))
    back = measurement_json.read(measurement_json.write(oversampled, tmp_path / "m.json"))
    assert back.endpoints[0].load_factor == 4.0
    assert back.endpoints[1].load_factor == 1.0
    assert "load_factor" not in measurement_json.to_dict(m)["endpoints"][0]  # files without it stay as they were
    with pytest.raises(ValueError, match="load_factor"):
        replace(m.endpoints[0], load_factor=0.0)


def test_fingerprint_names_the_traffic_not_the_file(tmp_path: Path) -> None:
    m = _full_measurement()
    back = measurement_json.read(measurement_json.write(m, tmp_path / "m.json"))
    assert fingerprint(back) == fingerprint(m)
    assert len(fingerprint(m)) == 16
    one_more = replace(m, endpoints=(replace(m.endpoints[0], count=m.endpoints[0].count + 1), *m.endpoints[1:]))
    assert fingerprint(one_more) != fingerprint(m)
    assert fingerprint(replace(m, labels={"x": "y"})) == fingerprint(m)  # labels are not traffic


def test_latency_kinds_and_load_models() -> None:
    assert not LatencyKind.SERVER.client_side
    assert LatencyKind.SERVICE_TIME.client_side
    assert LatencyKind.INTENDED.client_side
    closed = {SourceKind.LOCUST_CSV, SourceKind.K6, SourceKind.JMETER}  # users' own load tests
    assert all(k.closed_loop for k in closed)
    assert not any(k.closed_loop for k in SourceKind if k not in closed)


def test_generator_health_marks_saturated_intervals() -> None:
    g = GeneratorHealth(1000.0, 10.0, cpu_percent=(50.0, 95.0, None, 91.0), late=(0, 0, 0, 4))
    assert g.saturated == (False, True, False, True)
    assert g.saturated_share() == pytest.approx(2 / 3)  # the unsampled interval is not counted
    assert g.saturated_share(1000.0, 1010.0) == 0.0
    assert g.saturated_share(1005.0, 1015.0) == pytest.approx(0.5)  # overlaps intervals 0 and 1
    assert g.saturated_share(1020.0, 1030.0) is None
    assert g.peak_cpu_percent == 95.0
    assert GeneratorHealth(0.0, 1.0, (), ()).peak_cpu_percent is None
    with pytest.raises(ValueError, match="late has 1 points"):
        GeneratorHealth(0.0, 1.0, (1.0, 2.0), (0,))


def test_generator_lag_marks_lagging_intervals_and_is_optional() -> None:
    g = GeneratorHealth(1000.0, 10.0, (5.0, 8.0, None, 6.0), (0,) * 4, lag_ms=(2.0, 1800.0, None, 60.0))
    assert g.lagged_share(50.0) == pytest.approx(2 / 3)  # the unsampled interval is not counted
    assert g.lagged_share(100.0) == pytest.approx(1 / 3)
    assert g.lagged_share(50.0, 1000.0, 1010.0) == 0.0
    assert g.lagged_share(50.0, 1005.0, 1015.0) == pytest.approx(0.5)
    assert g.lagged_share(50.0, 1020.0, 1030.0) is None
    assert g.peak_lag_ms == 1800.0
    assert g.saturated_share() == 0.0  # starved, not busy: the CPU says nothing
    old = GeneratorHealth(1000.0, 10.0, (5.0,), (0,))  # a file written before lag was measured
    assert old.lagged_share(50.0) is None
    assert old.peak_lag_ms is None
    data = measurement_json.to_dict(replace(_full_measurement(), generator=old))
    assert "lag_ms" not in data["generator"]  # such files are written as they were
    back = measurement_json.from_dict(data).generator
    assert back is not None
    assert back.lag_ms == ()
    with pytest.raises(ValueError, match="lag_ms has 1 points"):
        GeneratorHealth(0.0, 1.0, (1.0, 2.0), (0, 0), lag_ms=(3.0,))
    with pytest.raises(ValueError, match="not after its start"):
        LoadStage("x", 10.0, 10.0, 1.0)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["endpoints"][0].update(count="abc"), "endpoints[0].count: 'abc' is not of type 'integer'"),
        (lambda d: d.pop("window"), "(top level): 'window' is a required property"),
        (lambda d: d.update(version=7), "version: unsupported Measurement version 7"),
        (lambda d: d["window"].update(start="yesterday"), "window: start: not an ISO-8601 time"),
        (lambda d: d["endpoints"][0].update(errors=99), "endpoints[0]: errors must be between 0 and count"),
        (lambda d: d["endpoints"][1]["timeline"].update(errors=[1]), "endpoints[1]: timeline.errors has 1 points"),
        (lambda d: d["endpoints"].append(dict(d["endpoints"][0])), "appears twice"),
        (lambda d: d["endpoints"][0].update(colour="red"), "Additional properties are not allowed"),
        (lambda d: d["generator"].update(cpu_percent=[-1, None]), "generator.cpu_percent[0]: -1 is less than"),
        (lambda d: d["generator"].update(lag_ms=[-1, None]), "generator.lag_ms[0]: -1 is less than"),
        (lambda d: d["generator"].update(lag_ms=[1.0]), "lag_ms has 1 points"),
        (lambda d: d["stages"][1].update(end_s=0), "stages[1]: stage '100%' ends at 0.0 s"),
    ],
)
def test_bad_files_fail_with_one_line_naming_file_and_field(tmp_path: Path, mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    data = measurement_json.to_dict(_full_measurement())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BadInput) as err:
        measurement_json.read(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        measurement_json.read(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": ')
    with pytest.raises(BadInput, match="not valid JSON"):
        measurement_json.read(broken)
    nan = tmp_path / "nan.json"
    nan.write_text('{"x": NaN}')
    with pytest.raises(BadInput, match="NaN is not allowed"):
        measurement_json.read(nan)


def test_model_invariants() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="not after"):
        Window(T0, T0)
    with pytest.raises(ValueError, match="errors must be"):
        EndpointStats(Endpoint("GET", "/"), count=1, errors=2)
    assert Endpoint.parse("GET /a b").route == "/a b"
    assert Endpoint.parse("UsersController#show") == Endpoint("", "UsersController#show")
    assert not Endpoint.parse("UsersController#show").mapped
    assert EndpointStats(Endpoint("GET", "/"), count=0, errors=0).error_rate is None
    assert Window(T0, T0 + timedelta(minutes=1)).duration_s == 60
    assert Timeline(0, 60, (1, None, 2)).total == 3


def test_bundled_baseline_is_what_the_generator_makes() -> None:
    from parity.demo.baseline import build_baseline

    bundled = Path(__file__).resolve().parent.parent / "baselines" / "demo.json"
    assert bundled.read_text("utf-8") == measurement_json.dumps(build_baseline())


def test_analysis_code_does_not_import_locust() -> None:
    """Importing Locust monkey-patches the process with gevent; the judge, reports, sources, rails and the
    CLI must stay usable without it (and the test process must not get patched by a test's import)."""
    import subprocess
    import sys

    modules = [
        "parity", "parity.cli", "parity.judge.compare", "parity.report.write", "parity.sources",
        "parity.sources.access_log", "parity.sources.datadog_apm", "parity.replay.rails",
        "parity.replay.recorder", "parity.replay.plan", "parity.replay.schedule", "parity.demo.runner",
    ]  # fmt: skip
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('locust' in sys.modules, 'gevent' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "False"]
