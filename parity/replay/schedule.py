"""Arrival schedule: when to send which request, compressed from the baseline window into the run.

The run of ``run_time_s`` seconds replays the whole baseline window: grid interval ``i`` of the plan is
played during run seconds ``[i, i+1) * run_time_s / cells``. Arrivals follow a Poisson process whose rate
is the plan's rate times ``rate_scale`` (so the *rate* is production's, scaled; the *day* is compressed).
Endpoints are drawn by their share of that interval, parameters uniformly from their pools, and, for an
endpoint with several query shapes (access-log baselines), its query shape by weight. Query names and values are
encoded by :func:`encode_query_text` (the server form-decodes the text the log held).

Everything comes from one seeded generator consumed in the same order whatever the lane, so the same
seed gives the same requests at the same offsets — on every target of a concurrent A/B run, and however
the schedule is split: lane ``k`` of ``n`` sends the arrivals whose global number ``g`` has ``g % n == k``.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus, urlencode

import numpy as np
import numpy.typing as npt
from numpy.random import default_rng

from parity.model import QueryShape
from parity.replay.plan import ReplayPlan

__all__ = ["Arrival", "count_arrivals", "encode_query_text", "fill", "iter_arrivals", "schedule_fingerprint"]

#: Shapes whose rates follow ``rate_scale``; the others (steady, ramp) set their own rate and ignore it.
_SCALED_SHAPES = frozenset({"replay", "burst"})


class Arrival(NamedTuple):
    """One request to send ``at_s`` seconds after the replay started (a named tuple: the generator makes
    thousands per second, and a frozen dataclass costs several times more to build)."""

    at_s: float
    number: int  # global arrival number (0-based, across lanes)
    method: str
    url: str  # path and query string
    name: str  # route template, the name Locust's stats and the recorder group by
    body: str | None  # JSON text
    headers: Mapping[str, str]


def fill(text: str, values: Mapping[str, str], *, url: bool = False) -> str:
    """Replace ``{name}`` placeholders; values are percent-encoded when ``url``."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", quote(value, safe="") if url else value)
    return text


#: Characters a query name or value keeps unencoded besides letters, digits and ``_.-~`` (sub-delimiters that
#: no common server splits a query on; ``&``, ``=``, ``+``, ``;``, ``#`` and ``%`` are always encoded).
QUERY_SAFE = "!$'()*,/:@"


def encode_query_text(text: str) -> str:
    """A query name or value as sent: UTF-8 percent-encoded, a space as ``+`` (so a form decoder, as Rack
    and most frameworks use, gets ``text`` back exactly)."""
    return quote_plus(text, safe=QUERY_SAFE)


def _query_string(shape: QueryShape, values: Mapping[str, str]) -> str:
    """``name=value&...`` of a query shape filled with ``values`` (no ``?``; empty for the no-query shape)."""
    return "&".join(
        encode_query_text(name)
        if value is None
        else encode_query_text(name) + "=" + encode_query_text(fill(value, values))
        for name, value in shape.params
    )


def _cumulative(shapes: tuple[QueryShape, ...]) -> list[float]:
    """Cumulative shares of an endpoint's query shapes (last = 1.0; empty without shapes)."""
    total = sum(q.weight for q in shapes)
    out, running = [], 0.0
    for q in shapes:
        running += q.weight
        out.append(running / total)
    if out:
        out[-1] = 1.0
    return out


def _fill_json(body: Any, values: Mapping[str, str]) -> Any:
    if isinstance(body, str):
        return fill(body, values)
    if isinstance(body, list):
        return [_fill_json(v, values) for v in body]
    if isinstance(body, dict):
        return {k: _fill_json(v, values) for k, v in body.items()}
    return body


def _cells(
    plan: ReplayPlan, run_time_s: float, rate_scale: float, seed: int
) -> Iterator[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Per schedule cell with arrivals, in order: (number of its first arrival, send times in s from the
    run's start (sorted), endpoint index per arrival, parameter draws per arrival). Every lane and every
    counter draws the same random numbers in the same order, so they all see the same schedule."""
    rng = default_rng(seed)  # imported up front: numpy loads np.random lazily, a 20 ms stall at the first send
    cells = plan.rates.shape[1]
    cell_s = run_time_s / cells
    # one draw per parameter pool, and one for the query shape of an endpoint that has several
    widest = max((len(p.request.params) + (len(p.request.query_shapes) > 1) for p in plan.endpoints), default=0)
    totals = plan.rates.sum(axis=0)
    number = 0
    for i in range(cells):
        lam = float(totals[i]) * rate_scale * cell_s
        n = int(rng.poisson(lam)) if lam > 0 else 0
        if n == 0:
            continue
        times = np.sort(rng.uniform(i * cell_s, (i + 1) * cell_s, n))
        picks = rng.choice(len(plan.endpoints), size=n, p=plan.rates[:, i] / totals[i])
        draws = rng.random((n, widest))
        yield number, times, picks, draws
        number += n


def iter_arrivals(
    plan: ReplayPlan,
    run_time_s: float,
    *,
    rate_scale: float = 1.0,
    seed: int = 1,
    lane: int = 0,
    lanes: int = 1,
) -> Iterator[Arrival]:
    """Arrivals of lane ``lane`` of ``lanes`` in time order (lazy; see module docstring)."""
    if not 0 <= lane < lanes:
        raise ValueError(f"lane {lane} is not in 0..{lanes - 1}")
    names = [sorted(p.request.params) for p in plan.endpoints]
    shares = [_cumulative(p.request.query_shapes) for p in plan.endpoints]
    for first, times, picks, draws in _cells(plan, run_time_s, rate_scale, seed):
        for k in range((lane - first) % lanes, times.size, lanes):  # this lane's arrivals: number % lanes == lane
            e = int(picks[k])
            planned = plan.endpoints[e]
            request = planned.request
            pools = request.params
            values = {name: pools[name][int(draws[k, j] * len(pools[name]))] for j, name in enumerate(names[e])}
            url = fill(request.path, values, url=True)
            if request.query_shapes:
                u = float(draws[k, len(names[e])]) if len(shares[e]) > 1 else 0.0
                shape = request.query_shapes[bisect_right(shares[e], u) if len(shares[e]) > 1 else 0]
                if query := _query_string(shape, values):
                    url += "?" + query
            elif request.query:
                url += "?" + urlencode({q: fill(v, values) for q, v in request.query.items()})
            body = None
            headers = dict(request.headers)
            if request.body is not None:
                body = json.dumps(_fill_json(request.body, values), separators=(",", ":"))
                headers.setdefault("Content-Type", "application/json")
            yield Arrival(
                at_s=float(times[k]),
                number=first + k,
                method=planned.endpoint.method,
                url=url,
                name=planned.endpoint.route,
                body=body,
                headers=headers,
            )


def count_arrivals(
    plan: ReplayPlan,
    run_time_s: float,
    *,
    rate_scale: float = 1.0,
    seed: int = 1,
    lane: int = 0,
    lanes: int = 1,
    from_number: int = 0,
) -> int:
    """How many arrivals of lane ``lane`` have a number ≥ ``from_number`` — what ``iter_arrivals`` would
    still yield from there — without building them (a replay over capacity counts its unsent rest this way:
    building 100,000 arrivals only to count them blocked the event loop for seconds)."""
    total = 0
    for first, times, _, _ in _cells(plan, run_time_s, rate_scale, seed):
        lo = max(first, from_number)
        hi = first + times.size  # numbers [first, hi)
        if lo < hi:
            total += (hi - 1 - lane) // lanes - (lo - 1 - lane) // lanes  # n in [lo, hi) with n % lanes == lane
    return total


def _canonical(value: Any) -> Any:
    """``value`` with every number as text of 9 significant digits (lists and dicts walked)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(float(f"{float(value):.9g}"))
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    return str(value)


def schedule_fingerprint(
    *,
    baseline: str,
    seed: int,
    shape: Mapping[str, Any],
    run_time_s: float,
    rate_scale: float,
    load_factors: Mapping[str, float],
    endpoints: Sequence[str] = (),
) -> str:
    """16 hex digits naming an arrival schedule by what determines it: the baseline's ``fingerprint``, the seed,
    the shape's settings (``shape["kind"]`` and its options), the run time (s), the rate scale (only for shapes
    that use it: replay and burst) and the oversampling factors per endpoint key. Equal fingerprints: the same
    requests at the same offsets, however many processes sent them. Floats are written with ``repr`` after
    rounding to 9 significant digits, so a factor recomputed on another machine gives the same text.
    ``endpoints``: the keys an endpoint filter kept (``--endpoints``; empty: no filter, and the fingerprint is the
    one an unfiltered schedule always had) — a filtered schedule draws other requests."""

    doc = {
        "baseline": baseline,
        "seed": int(seed),
        "shape": _canonical(dict(shape)),
        "run_time_s": _canonical(run_time_s),
        "rate_scale": _canonical(rate_scale) if shape.get("kind") in _SCALED_SHAPES else None,
        "load_factors": _canonical(dict(load_factors)),
    }
    if endpoints:
        doc["endpoints"] = sorted(endpoints)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
