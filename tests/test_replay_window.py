"""A server-side Measurement over a replay's window: known answers for the window, labels, rate scale, load
factors and the ingestion wait, and the contract's refusals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from parity import measurement_json
from parity.errors import BadInput
from parity.model import (
    LABEL_REPLAY_OF,
    LABEL_SCHEDULE,
    Endpoint,
    EndpointStats,
    LatencyKind,
    LatencySummary,
    Measurement,
    Source,
    SourceKind,
    Timeline,
    Window,
    fingerprint,
)
from parity.sources.replay_window import (
    INGEST_DELAY_S,
    LABEL_WINDOW_OF,
    apm_window,
    read_replay,
    seconds_until_ingested,
    server_side_of,
)

START = datetime(2026, 11, 25, 3, 0, 10, 250000, tzinfo=UTC)  # 10.25 s into a minute


def replay_measurement(
    start: datetime = START,
    duration_s: float = 95.5,
    *,
    counts: Mapping[str, int] | None = None,
    rate_scale: float = 0.5,
    load_factors: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Measurement:
    """A replay's Measurement (client-side service time) with the given per-endpoint counts."""
    counts = counts or {"GET /api/employees/{id}": 400, "POST /api/payroll/calculate": 30}
    factors = load_factors or {"POST /api/payroll/calculate": 4.0}
    return Measurement(
        source=Source(
            SourceKind.LOCUST_REPLAY, "Locust replay of web-ec2.json", service="web", env="eks", target="http://t:8080"
        ),
        window=Window(start, start + timedelta(seconds=duration_s)),
        endpoints=tuple(
            EndpointStats(Endpoint.parse(key), n, errors=0, load_factor=factors.get(key, 1.0))
            for key, n in counts.items()
        ),
        latency_kind=LatencyKind.SERVICE_TIME,
        rate_scale=rate_scale,
        labels=dict(labels or {LABEL_REPLAY_OF: "0123456789abcdef", LABEL_SCHEDULE: "fedcba9876543210", "seed": "1"}),
    )


def apm_side(start: datetime, end: datetime, counts: Mapping[str, int]) -> Measurement:
    """What a Datadog pull of [start, end) returns: per-minute timelines, summary latency, server-side."""
    minutes = round((end - start).total_seconds() / 60)
    return Measurement(
        source=Source(SourceKind.DATADOG, "Datadog APM env:eks,service:web", service="web", env="eks"),
        window=Window(start, end),
        endpoints=tuple(
            EndpointStats(
                Endpoint.parse(key),
                n,
                errors=1,
                latency=LatencySummary(avg_ms=12.0, p95_ms=18.0),
                timeline=Timeline(start.timestamp(), 60.0, (n - (minutes - 1),) + (1,) * (minutes - 1)),
            )
            for key, n in counts.items()
        ),
        latency_kind=LatencyKind.SERVER,
        labels={"span": "rack.request", "comparison": "before/after"},
    )


def test_apm_window_is_the_whole_minutes_around_the_replay() -> None:
    replay = replay_measurement()  # 03:00:10.25 to 03:01:45.75
    assert apm_window(replay) == (datetime(2026, 11, 25, 3, 0, tzinfo=UTC), datetime(2026, 11, 25, 3, 2, tzinfo=UTC))
    whole = replay_measurement(datetime(2026, 11, 25, 3, 0, tzinfo=UTC), 120.0)
    assert apm_window(whole) == (whole.window.start, whole.window.end)  # already whole minutes: unchanged
    tokyo = timezone(timedelta(hours=9, minutes=30))  # a half-hour zone: minutes are still UTC minutes
    offset = replace(replay, window=Window(START.astimezone(tokyo), replay.window.end))
    assert apm_window(offset)[0] == datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def test_seconds_until_ingested_counts_from_the_end_of_the_last_minute() -> None:
    replay = replay_measurement()  # last minute ends 03:02:00
    last_minute_end = datetime(2026, 11, 25, 3, 2, tzinfo=UTC)
    assert seconds_until_ingested(replay, last_minute_end, 120.0) == 120.0
    assert seconds_until_ingested(replay, replay.window.end, 0.0) == pytest.approx(14.25)
    assert seconds_until_ingested(replay, last_minute_end + timedelta(seconds=200), 120.0) == 0.0
    assert seconds_until_ingested(replay, last_minute_end) == INGEST_DELAY_S


def test_server_side_of_takes_window_rate_scale_labels_and_load_factors_from_the_replay() -> None:
    replay = replay_measurement()
    start, end = apm_window(replay)
    apm = apm_side(start, end, {"GET /api/employees/{id}": 401, "POST /api/payroll/calculate": 30, "legacy_ping": 2})
    m = server_side_of(apm, replay)
    assert m.window == replay.window  # exact, not the pulled minutes
    assert m.rate_scale == 0.5
    assert m.latency_kind is LatencyKind.SERVER
    assert m.source.kind is SourceKind.DATADOG
    assert (m.source.service, m.source.env, m.source.target) == ("web", "eks", "http://t:8080")
    assert "over the window of Locust replay of web-ec2.json" in m.source.description
    assert m.labels == {
        "span": "rack.request",
        "comparison": "before/after",
        LABEL_REPLAY_OF: "0123456789abcdef",
        LABEL_SCHEDULE: "fedcba9876543210",
        LABEL_WINDOW_OF: fingerprint(replay),
    }
    factors = {e.endpoint.key: e.load_factor for e in m.endpoints}
    assert factors == {"GET /api/employees/{id}": 1.0, "POST /api/payroll/calculate": 4.0, "legacy_ping": 1.0}
    # the figures themselves are the server's, untouched
    assert [(e.count, e.errors, e.latency, e.timeline) for e in m.endpoints] == [
        (e.count, e.errors, e.latency, e.timeline) for e in apm.endpoints
    ]
    assert (m.stages, m.generator, m.pair_id) == ((), None, None)
    assert "seed" not in m.labels  # the replay has one: only the traffic's identity is copied


def test_server_side_of_survives_a_json_round_trip(tmp_path: Path) -> None:
    replay = replay_measurement()
    path = measurement_json.write(server_side_of(apm_side(*apm_window(replay), {"GET /x": 10}), replay), tmp_path / "s")
    back = measurement_json.read(path)
    assert (back.window, back.rate_scale) == (replay.window, 0.5)
    assert back.labels[LABEL_WINDOW_OF] == fingerprint(replay)


def test_labels_absent_in_the_replay_are_absent_and_stale_ones_dropped() -> None:
    replay = replay_measurement(labels={"seed": "1"})
    apm = apm_side(*apm_window(replay), {"GET /x": 10})
    apm = replace(apm, labels={**apm.labels, LABEL_REPLAY_OF: "stale", LABEL_WINDOW_OF: "stale"})
    m = server_side_of(apm, replay)
    assert LABEL_REPLAY_OF not in m.labels
    assert LABEL_SCHEDULE not in m.labels
    assert m.labels[LABEL_WINDOW_OF] == fingerprint(replay)


def test_an_access_log_over_the_exact_window_is_accepted() -> None:
    replay = replay_measurement()
    logs = replace(
        apm_side(*apm_window(replay), {"GET /x": 10}),
        window=replay.window,
        source=Source(SourceKind.ACCESS_LOG, "nginx access logs: access.log"),
    )
    m = server_side_of(logs, replay)
    assert m.source.kind is SourceKind.ACCESS_LOG
    assert (m.source.service, m.source.env) == ("web", "eks")  # taken from the replay when the logs have none


def test_refusals() -> None:
    replay = replay_measurement()
    start, end = apm_window(replay)
    apm = apm_side(start, end, {"GET /x": 10})
    with pytest.raises(BadInput, match="not a replay"):
        server_side_of(apm, replace(replay, source=Source(SourceKind.DATADOG)))
    with pytest.raises(BadInput, match="server-side figures needed, got service-time"):
        server_side_of(replace(apm, latency_kind=LatencyKind.SERVICE_TIME), replay)
    for window in (
        Window(start - timedelta(minutes=1), end),  # a whole minute too early: other traffic
        Window(start, end + timedelta(minutes=1)),
        Window(START + timedelta(seconds=1), end),  # misses the replay's first second
        Window(start, replay.window.end - timedelta(seconds=1)),
    ):
        with pytest.raises(BadInput, match="not the replay's window"):
            server_side_of(replace(apm, window=window), replay)


def test_read_replay_refuses_other_measurements_naming_the_file(tmp_path: Path) -> None:
    replay = replay_measurement()
    ok = measurement_json.write(replay, tmp_path / "run.json")
    assert read_replay(ok) == replay
    apm = measurement_json.write(apm_side(*apm_window(replay), {"GET /x": 1}), tmp_path / "apm.json")
    with pytest.raises(BadInput, match=r"apm\.json: not a replay \(source kind datadog\)"):
        read_replay(apm)
    with pytest.raises(BadInput, match=r"missing\.json: no such file"):
        read_replay(tmp_path / "missing.json")
