"""What `edgeq run` does after a run is stored: push its metrics, compare it with the previous run.

Neither step raises for an export or comparison problem: `publish()` returns a `Publication` with
what happened; the caller adds `doc_fields()` to the run document and raises `error()` after any
gate or fleet failure (a regression: exit 9, then a failed export: exit 11).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ConfigDict

from edgeq.errors import EdgeqError, RegressionError
from edgeq.metrics import PushFailure, PushSummary
from edgeq.records import Record
from edgeq.results.compare import Comparison

Log = Callable[[str], None]


def regression_error(c: Comparison) -> RegressionError:
    """The error for a comparison that found regressions (edgeq compare/run --fail-on-regression)."""
    return RegressionError(
        f"{len(c.regressions)} regression(s) from run {c.base.run_id} to {c.candidate.run_id}:\n  " + "\n  ".join(c.regressions),
        "look at `edgeq report` for the distributions; a real slowdown needs a fix, noise needs more "
        "benchmark runs (benchmark.runs / min_seconds)",
    )


class Publication(Record):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    metrics_push: PushSummary | PushFailure | None = None
    export_error: EdgeqError | None = None
    comparison: Comparison | None = None

    def doc_fields(self) -> dict[str, Any]:
        """Keys added to the run's --json document."""
        out: dict[str, Any] = {}
        if self.metrics_push is not None:
            out["metrics_push"] = self.metrics_push.to_json()
        c = self.comparison
        if c is not None:
            out["regressions"] = {"base": c.base.run_id, "regressed": c.regressed, "list": list(c.regressions)}
        return out

    def error(self) -> EdgeqError | None:
        if self.comparison is not None and self.comparison.regressed:
            return regression_error(self.comparison)
        return self.export_error


def _push(run_id: str, gateway: str, log: Log) -> tuple[PushSummary | PushFailure, EdgeqError | None]:
    from edgeq import metrics

    shown = metrics.redact(gateway)  # never the URL's credentials, in a hint or the --json document
    try:
        res = metrics.push(run_id, gateway)
    except EdgeqError as e:
        err = type(e)(
            e.message,
            f"the results are stored in the history; send them when the gateway is back: "
            f"edgeq metrics push {run_id} --gateway {shown}" + (" (with its credentials)" if shown != gateway.strip() else ""),
        )
        log(f"warning: metrics push failed: {e.message} (the results are stored in the history)")
        return PushFailure(gateway=shown, error=e.message), err
    log(f"metrics: pushed {res.series} series to {res.gateway} (job={res.job}, pipeline={res.pipeline})")
    return res, None


def _compare(run_id: str, pipeline: str, log: Log) -> Comparison | None:
    from edgeq.results import compare_with_previous

    try:
        c = compare_with_previous(run_id)
    except EdgeqError as e:
        log(f"regression check skipped: {e.message}")
        return None
    if c is None:
        log(f"regression check: no earlier run of pipeline {pipeline!r} to compare with")
        return None
    if c.regressions:
        log(f"regression check against run {c.base.run_id}: {len(c.regressions)} regression(s)")
        for r in c.regressions:
            log(f"  {r}")
    else:
        log(f"regression check against run {c.base.run_id}: no regression")
    return c


def publish(run_id: str, pipeline: str, *, push_gateway: str | None, fail_on_regression: bool, log: Log) -> Publication:
    """Push the stored run and/or compare it with the previous one of its pipeline."""
    pushed, export_error = _push(run_id, push_gateway, log) if push_gateway else (None, None)
    comparison = _compare(run_id, pipeline, log) if fail_on_regression else None
    return Publication(metrics_push=pushed, export_error=export_error, comparison=comparison)
