"""parity: replay production traffic with Locust and judge whether a new environment is as fast as the old.

Public surface: the Measurement model, its JSON codec, and the pure judgement core. Importing ``parity``
does not import Locust (and so does not monkey-patch the process with gevent).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

from parity.errors import BadInput
from parity.judge.calibrate import Calibration, calibrate
from parity.judge.compare import compare
from parity.judge.policy import Policy
from parity.judge.result import ParityResult, Verdict
from parity.model import (
    Endpoint,
    EndpointStats,
    LatencyDistribution,
    LatencyKind,
    LatencySummary,
    Measurement,
    RequestTemplate,
    Source,
    SourceKind,
    Timeline,
    Window,
)

__all__ = [
    "BadInput",
    "Calibration",
    "Endpoint",
    "EndpointStats",
    "LatencyDistribution",
    "LatencyKind",
    "LatencySummary",
    "Measurement",
    "ParityResult",
    "Policy",
    "RequestTemplate",
    "Source",
    "SourceKind",
    "Timeline",
    "Verdict",
    "Window",
    "calibrate",
    "compare",
    "version",
]


def version() -> str:
    """The installed harness version."""
    try:
        return _dist_version("parity")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
