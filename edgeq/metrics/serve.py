"""The exporter sink, `edgeq metrics serve`: a collector that reads the history at every scrape, on a bounded server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeq.errors import EdgeqError, ExportError
from edgeq.metrics.families import DEFAULT_PORT, latest_families

if TYPE_CHECKING:
    from edgeq.metrics.reportlink import ReportCache


class HistoryCollector:
    """Reads the history at every scrape: always the latest results, no restart after a run."""

    def __init__(self, db_path: Path | None = None):
        self.db_path = db_path

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        t = time.perf_counter()
        up = GaugeMetricFamily("edgeq_history_up", "1 if the exporter could read the results history.")
        try:
            fams = latest_families(self.db_path)
            up.add_metric([], 1)
        except EdgeqError:  # a missing, locked or corrupt database must not take the exporter down
            fams = []
            up.add_metric([], 0)
        yield from fams
        yield up
        yield GaugeMetricFamily(
            "edgeq_exporter_scrape_duration_seconds", "Time to read the history for this scrape.", value=time.perf_counter() - t
        )


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    db_path: Path | None = None,
    *,
    report_cache: ReportCache | None = None,
    **bounds: Any,
) -> Any:
    """Start the exporter in a daemon thread. Returns (server, thread); the caller blocks and shuts it down.

    Threads, connections, queues and request time are bounded (edgeq.metrics.exporter: workers, scrape_queue,
    report_workers, report_queue, max_connections, idle_timeout, request_timeout); /report is served in its own lane
    and its pages are kept in `report_cache` (a new reportlink.ReportCache by default)."""
    from prometheus_client import CollectorRegistry, make_wsgi_app

    from edgeq.metrics import exporter, reportlink

    reg = CollectorRegistry(auto_describe=False)
    reg.register(HistoryCollector(db_path))
    try:  # /report?pipeline=P&time=T: the dashboards' link from a point to that run's report
        app = reportlink.wrap(make_wsgi_app(reg), db_path, report_cache)
        return exporter.start(app, host, port, report_paths=(reportlink.PATH,), **bounds)
    except OSError as e:
        raise ExportError(
            f"cannot listen on {host}:{port}: {e.strerror or e}", "pick another --port, or stop the process using it (ss -ltnp)"
        ) from None
