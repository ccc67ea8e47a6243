"""The candidate's own server-side figures over a replay's window, labelled as the record of that replay's traffic.

A Locust replay measures latency at the client (service time: network, TLS and the client included); an APM or
access-log baseline measures it at the server. To judge like with like, take the candidate's server-side figures
(Datadog APM, access log) over the replay's window and judge *them* against the server-side baseline:
:func:`server_side_of` labels such a Measurement as the server-side record of the replay's traffic, so its
throughput compares per unit of the replay's offered load and the judge knows which replay it belongs to.

**Whole minutes (APM).** Datadog counts per minute, so a pull covers :func:`apm_window` — the replay's window
widened to whole UTC minutes, ``[floor(start), ceil(end))`` — and its per-minute timeline covers exactly those
minutes. The counts then hold every request of those minutes: the replay's, plus any *other* traffic the candidate
got in the uncovered seconds of the first and last minute (health checks, other users; and of the whole minutes
when the candidate is shared). :func:`server_side_of` still sets the window to the replay's exact window, because
on an environment only the replay loads every request of those minutes is one of the replay's: dividing them by
the pulled minutes would understate the throughput (a 4 s replay in a 60 s minute: ×1/15). Other traffic inflates
the candidate's counts by (its rate × the uncovered seconds) and its latency summary mixes it in: keep the
candidate otherwise idle during the replay, or replay over whole minutes (start on a minute, ``-t`` a multiple of
60 s) so that no seconds are uncovered.

**Ingestion delay.** Datadog shows a minute only after ingesting it (typically a minute or two after it ends); a
minute read too early has no points, which would read as no traffic. :func:`seconds_until_ingested` says how long
to wait after the replay before its last minute can be pulled.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from parity import measurement_json
from parity.errors import BadInput
from parity.model import LABEL_REPLAY_OF, LABEL_SCHEDULE, Measurement, SourceKind, Window, fingerprint

__all__ = [
    "INGEST_DELAY_S",
    "LABEL_WINDOW_OF",
    "MAX_EDGE_S",
    "apm_window",
    "read_replay",
    "seconds_until_ingested",
    "server_side_of",
]

#: Label of a server-side Measurement taken over a replay's window: the replay's :func:`~parity.model.fingerprint`.
LABEL_WINDOW_OF = "window_of"
#: Seconds after the end of a minute before Datadog is assumed to have ingested it (the nightly job's ``delay_s``
#: default).
INGEST_DELAY_S = 120.0
#: Seconds a server-side Measurement's window may reach beyond the replay's at either end (the partial minutes
#: of an APM pull); wider, it holds traffic from outside the replay's window.
MAX_EDGE_S = 60.0
_MINUTE = timedelta(minutes=1)


def _floor_minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def _ceil_minute(t: datetime) -> datetime:
    floor = _floor_minute(t)
    return floor if floor == t else floor + _MINUTE


def apm_window(replay: Measurement) -> tuple[datetime, datetime]:
    """The whole UTC minutes ``[floor(start), ceil(end))`` an APM pull needs to cover ``replay``'s window.

    A window already on whole minutes is returned as is. The pulled counts include any other traffic of the
    partial first and last minutes (see the module docstring).
    """
    return _floor_minute(replay.window.start), _ceil_minute(replay.window.end)


def seconds_until_ingested(replay: Measurement, now: datetime, delay_s: float = INGEST_DELAY_S) -> float:
    """Seconds from ``now`` until every minute of :func:`apm_window` can be pulled: the end of its last minute
    plus ``delay_s`` (Datadog's ingestion delay, s). 0 when that time has passed."""
    ready = apm_window(replay)[1] + timedelta(seconds=delay_s)
    return max((ready - now).total_seconds(), 0.0)


def read_replay(path: Path) -> Measurement:
    """The Measurement a replay wrote (``--parity-out``); BadInput naming the file when it is unusable or is not
    a replay (source kind ``locust-replay``)."""
    m = measurement_json.read(path)
    if m.source.kind is not SourceKind.LOCUST_REPLAY:
        raise BadInput(
            f"{path}: not a replay (source kind {m.source.kind.value}): give the Measurement a replay wrote "
            "(--parity-out)"
        )
    return m


def _covers(server: Window, replay: Window) -> bool:
    """``server`` holds ``replay`` and reaches less than MAX_EDGE_S beyond it at either end."""
    early = (replay.start - server.start).total_seconds()
    late = (server.end - replay.end).total_seconds()
    return 0.0 <= early < MAX_EDGE_S and 0.0 <= late < MAX_EDGE_S


def server_side_of(server: Measurement, replay: Measurement) -> Measurement:
    """``server`` (server-side figures of the candidate over ``replay``'s window) labelled as the server-side
    record of the replay's traffic.

    The result keeps ``server``'s endpoints (counts, errors, latency in ms, timelines), latency kind and source
    kind, and takes from ``replay``: the window (exact: counts are per the replay's window, see the module
    docstring on partial minutes), ``rate_scale``, the ``replay_of`` and ``schedule`` labels (absent in the
    replay: absent here), a ``window_of`` label (the replay's fingerprint), each endpoint's ``load_factor``
    (matched by endpoint key; an endpoint the replay did not send keeps its own), and the service, env and
    target where ``server`` has none. Pure.

    BadInput when ``replay`` is not a replay, when ``server`` is not server-side latency, or when ``server``'s
    window does not hold the replay's window or reaches a minute or more beyond it.
    """
    if replay.source.kind is not SourceKind.LOCUST_REPLAY:
        raise BadInput(f"the window's owner is not a replay (source kind {replay.source.kind.value})")
    if server.latency_kind.client_side:
        raise BadInput(f"server-side figures needed, got {server.latency_kind.value} latency")
    if not _covers(server.window, replay.window):
        raise BadInput(
            f"the figures cover {server.window.start.isoformat()} to {server.window.end.isoformat()}, not the "
            f"replay's window {replay.window.start.isoformat()} to {replay.window.end.isoformat()} "
            f"(to within {MAX_EDGE_S:g} s)"
        )
    factors = {e.endpoint.key: e.load_factor for e in replay.endpoints}
    endpoints = tuple(replace(e, load_factor=factors.get(e.endpoint.key, e.load_factor)) for e in server.endpoints)
    copied = (LABEL_REPLAY_OF, LABEL_SCHEDULE)
    labels = {k: v for k, v in server.labels.items() if k not in (*copied, LABEL_WINDOW_OF)}
    labels |= {k: replay.labels[k] for k in copied if k in replay.labels}
    labels[LABEL_WINDOW_OF] = fingerprint(replay)
    described = replay.source.description or "a replay"
    source = replace(
        server.source,
        description=f"{server.source.description} over the window of {described}".strip(),
        service=server.source.service or replay.source.service,
        env=server.source.env or replay.source.env,
        target=server.source.target or replay.source.target,
    )
    return replace(
        server,
        source=source,
        window=replay.window,
        endpoints=endpoints,
        rate_scale=replay.rate_scale,
        labels=labels,
    )
