"""Replay a baseline with Locust — the locustfile engineers run directly.

    locust -f loadtests/replay.py --headless --host http://127.0.0.1:PORT \
        --baseline baselines/demo.json -t 60s [--rate-scale 0.5] [--parity-out reports/run.json] [--processes 2]

All the logic lives in ``parity.replay.locustfile`` (so ``parity demo`` and installed copies use the same code);
this file only exposes its user and shape classes to Locust.
"""

from parity.replay.locustfile import ReplayShape, ReplayUser

__all__ = ["ReplayShape", "ReplayUser"]
