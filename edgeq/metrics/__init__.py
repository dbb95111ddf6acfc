"""Prometheus export of stored results: the families (families.py) and one module per sink: Pushgateway
(pushgateway.py), node_exporter textfile (textfile.py), the HTTP exporter (serve.py on exporter.py's bounded
server, with reportlink.py's /report), and backfill of past runs into Prometheus blocks (backfill.py).

Everything is built from the history database (never from a run in flight), in a dedicated
CollectorRegistry, never the global one. This package re-exports the public names of its modules.
"""

from __future__ import annotations

from edgeq.metrics.families import (
    BENCH_LABELS,
    DEFAULT_JOB,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT_S,
    LEGACY_METRICS,
    SESSION_METRICS,
    exposition,
    latest_families,
    registry_for,
    run_families,
    run_registry,
)
from edgeq.metrics.pushgateway import PushFailure, PushSummary, check_gateway, push, redact
from edgeq.metrics.serve import HistoryCollector, serve
from edgeq.metrics.textfile import TextfileSummary, write_textfile

__all__ = [
    "BENCH_LABELS",
    "DEFAULT_JOB",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT_S",
    "LEGACY_METRICS",
    "SESSION_METRICS",
    "HistoryCollector",
    "PushFailure",
    "PushSummary",
    "TextfileSummary",
    "check_gateway",
    "exposition",
    "latest_families",
    "push",
    "redact",
    "registry_for",
    "run_families",
    "run_registry",
    "serve",
    "write_textfile",
]
