"""Replay a baseline with Locust — the locustfile engineers run directly.

    locust -f loadtests/replay.py --headless --host http://127.0.0.1:PORT \
        --baseline baselines/demo.json -t 60s [--rate-scale 0.5] [--parity-out reports/run.json] [--processes 2]

Its options: ``parity replay --help`` (Locust prints its own help before it loads a locustfile, so
``locust -f loadtests/replay.py --help`` cannot list them). ``parity replay BASELINE --host URL`` runs this same
replay headless as a child process and can judge the recording (``--against``); this file is for Locust's own
modes: workers (``--worker --master-host HOST``), the web UI, Kubernetes.

All the logic lives in ``parity.replay.locustfile`` (so ``parity demo`` and installed copies use the same code);
this file only exposes its user and shape classes to Locust.
"""

from parity.replay.locustfile import ReplayShape, ReplayUser

__all__ = ["ReplayShape", "ReplayUser"]
