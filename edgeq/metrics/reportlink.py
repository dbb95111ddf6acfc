"""`/report` on `edgeq metrics serve`: the report of the run a dashboard point shows, found by pipeline and time.

Prometheus never carries a run id (a label per run would grow the series without bound), so a Grafana data link
passes what the point has: its pipeline label and its time. The run shown is the last pipeline run of that pipeline
finished by then, which is the run whose values the exporter served at that time. Read-only; the page is the same
self-contained HTML `edgeq report` writes.

A render costs seconds of CPU, and a dashboard's links open the same few runs again and again: rendered pages are kept
(ReportCache) by run id and its pipeline's version, since a run's report also reads the pipeline's other runs (trend,
comparison) and a run recorded again replaces its results. The exporter renders them in their own lane
(edgeq.metrics.exporter), away from the scrapes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from edgeq.errors import EdgeqError

PATH = "/report"
_MS_THRESHOLD = 1e11  # Grafana's ${__value.time} is in milliseconds; a value this large cannot be seconds (year 5138)
CACHE_BYTES = 64 * 1024 * 1024  # a report is 0.2-1 MB of HTML: dozens of runs, the ones a dashboard's links open again


def parse_time(text: str) -> float:
    """Seconds since the epoch from seconds or milliseconds; ValueError for anything else."""
    t = float(text)
    if not math.isfinite(t) or t < 0:
        raise ValueError(text)
    return t / 1000.0 if t >= _MS_THRESHOLD else t


class ReportCache:
    """Rendered reports, least recently used dropped first, at most `max_bytes` of pages in all. Thread-safe."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: Hashable, page: bytes) -> None:
        if len(page) > self.max_bytes:
            return
        with self._lock:
            old = self._pages.pop(key, None)
            self._bytes += len(page) - (len(old) if old is not None else 0)
            self._pages[key] = page
            while self._bytes > self.max_bytes:
                _, dropped = self._pages.popitem(last=False)
                self._bytes -= len(dropped)


def render_at(db_path: Path | None, pipeline: str, ts: float, last: int = 10, cache: ReportCache | None = None) -> bytes | None:
    """The report (UTF-8 HTML) of the run shown at `ts`, or None when the pipeline had no run finished by then."""
    from edgeq.report.html import render_stored
    from edgeq.results import query

    with query.open_for_reading(db_path) as h:
        row = query.run_at(h, pipeline, ts)
        if row is None:
            return None
        key = (row.run_id, last, query.pipeline_version(h, pipeline))
        page = cache.get(key) if cache is not None else None
        if page is None:
            page = render_stored(h, query.load(h, row, samples=True), last)[0].encode()
            if cache is not None:
                cache.put(key, page)
        return page


def _reply(
    start: Callable[..., Any], status: str, body: str | bytes, ctype: str = "text/plain; charset=utf-8"
) -> Iterable[bytes]:
    data = body if isinstance(body, bytes) else body.encode()
    start(status, [("Content-Type", ctype), ("Content-Length", str(len(data))), ("Cache-Control", "no-store")])
    return [data]


def wrap(metrics_app: Callable[..., Any], db_path: Path | None, cache: ReportCache | None = None) -> Callable[..., Any]:
    """A WSGI app: /report?pipeline=P&time=T answers with that run's report, everything else goes to the metrics.
    Reports are kept in `cache` (a new ReportCache by default)."""
    cache = ReportCache() if cache is None else cache

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return metrics_app(environ, start)
        q = parse_qs(environ.get("QUERY_STRING", ""))
        pipeline, when = (q.get("pipeline") or [""])[0], (q.get("time") or [""])[0]
        if not pipeline or not when:
            return _reply(start, "400 Bad Request", "usage: /report?pipeline=NAME&time=SECONDS_OR_MILLISECONDS\n")
        try:
            ts = parse_time(when)
        except ValueError:
            return _reply(start, "400 Bad Request", f"time {when!r} is not seconds or milliseconds since the epoch\n")
        try:
            html = render_at(db_path, pipeline, ts, cache=cache)
        except EdgeqError as e:  # a missing, locked or corrupt history: say so, keep serving metrics
            return _reply(start, "503 Service Unavailable", f"history unusable: {e}\n")
        if html is None:
            return _reply(start, "404 Not Found", f"no run of pipeline {pipeline!r} finished by {ts:.0f}\n")
        return _reply(start, "200 OK", html, "text/html; charset=utf-8")

    return app
