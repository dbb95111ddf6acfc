"""Results commands: history, compare, report, metrics push/textfile/serve.

Each command parses, calls one core function (edgeq.results, edgeq.metrics, edgeq.report.html) and renders.
No prometheus_client, matplotlib or numpy at import time: `edgeq --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from edgeq.cli import output, tables
from edgeq.cli.options import DbOpt, JsonOpt, WideOpt

if TYPE_CHECKING:
    from edgeq.results.compare import Comparison

GATEWAY_HELP = "Pushgateway URL, e.g. http://pushgateway.lan:9091 (basic auth: http://USER:PASSWORD@host:9091; never printed)."


def history(
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="Only runs of this pipeline."),
    device: str | None = typer.Option(None, "--device", "-d", help="Only runs benchmarked on this device."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="At most this many runs, newest first."),
    adhoc: bool | None = typer.Option(
        None, "--adhoc/--no-adhoc", help="Only ad hoc `edgeq bench` runs / only pipeline runs (default: both)."
    ),
    import_: list[Path] | None = typer.Option(
        None,
        "--import",
        help="Record run folders (or a runs/ folder, or manifest.json files) into the history first. Repeatable.",
    ),
    db: DbOpt = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """List stored runs with their accuracy and on-device p50 latency."""
    output.use_json(json_out)
    from edgeq.results import default_db_path, import_runs, query

    db = db or default_db_path()
    imported = None
    if import_:
        imported = import_runs(import_, db)
        for s in imported.skipped:
            output.warn(f"skipped {s.path}: {s.reason}")
        for x in imported.interrupted:
            output.log(f"{x.run_id}: {x.reason}")
        output.log(f"imported {len(imported.recorded)} run(s) into {db}")
    with query.open_for_reading(db) as h:
        runs = query.list_runs(h, pipeline=pipeline, device=device, limit=limit, adhoc=adhoc)
    if json_out:
        output.emit(
            {"db": str(db), **({"imported": imported.to_json()} if imported else {}), "runs": [r.to_json() for r in runs]}
        )
        return
    output.table(*tables.history_table(runs, str(db)))
    if not runs:
        output.log("no runs match")


# ---- compare


def render_comparison(c: Comparison) -> None:
    for t in tables.comparison_tables(c):
        output.table(*t)
    for k in c.kernel_changes or ():  # per-op profiles of both runs: same node, other kernel (e.g. a float fallback)
        output.log(
            f"kernel change: {k.variant} on {k.device} ({k.threads} thr): {k.node} {k.op}: "
            f"{k.base_kernel} -> {k.candidate_kernel}"
        )
    for line in tables.comparison_notes(c):
        output.log(line)


def compare(
    base: str | None = typer.Argument(
        None, help="Base run id (or unique prefix, or `latest`). Default: the run before CANDIDATE of the same pipeline."
    ),
    candidate: str | None = typer.Argument(None, help="Candidate run id. Default: the latest run (of BASE's pipeline)."),
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="With no run ids: the latest run of this pipeline."),
    threshold: float = typer.Option(
        1.10,
        "--threshold",
        min=1.0,
        help="p50 latency ratio (candidate/base) above which a "
        "significant slowdown is a regression; also used for peak memory and energy.",
    ),
    alpha: float = typer.Option(
        0.05, "--alpha", min=1e-12, max=0.5, help="Significance level of the Mann-Whitney U test on the raw latency samples."
    ),
    accuracy_tolerance: float = typer.Option(
        0.005, "--accuracy-tolerance", min=0.0, max=1.0, help="Accuracy loss (0..1) tolerated before it is a regression."
    ),
    fail_on_regression: bool = typer.Option(False, "--fail-on-regression", help="Exit 9 if anything regressed."),
    adhoc: bool = typer.Option(
        False, "--adhoc", help="Let `latest` and the default baseline be ad hoc `edgeq bench` runs too (else pipeline runs only)."
    ),
    ops: bool = typer.Option(
        False,
        "--ops",
        help="Compare the per-op profiles of BASE and CANDIDATE (`edgeq bench --ops`): ops whose time changed, kernel changes.",
    ),
    db: DbOpt = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Compare two runs: latency per device x variant x threads, accuracy, peak memory, energy per inference."""
    output.use_json(json_out)
    if ops:
        _compare_ops(base, candidate, db, threshold, json_out, wide, fail_on_regression)
        return
    from edgeq.errors import NothingToCompare
    from edgeq.results import compare_runs

    try:
        c = compare_runs(
            base,
            candidate,
            db_path=db,
            pipeline=pipeline,
            adhoc=adhoc,
            threshold=threshold,
            alpha=alpha,
            accuracy_tolerance=accuracy_tolerance,
        )
    except NothingToCompare as e:  # a first run: nothing regressed, and nothing is broken
        if json_out:
            output.emit({"ok": True, "compared": False, "regressed": False, "reason": e.message})
        output.log(f"nothing to compare: {e.message}")
        if e.hint:
            output.log(f"hint: {e.hint}")
        return
    if json_out:
        output.emit(c.to_json())
    else:
        render_comparison(c)
    if fail_on_regression and c.regressed:
        from edgeq.pipeline.publish import regression_error

        raise regression_error(c)


def _compare_ops(
    base: str | None, candidate: str | None, db: Path | None, threshold: float, json_out: bool, wide: bool, fail: bool
) -> None:
    from edgeq.cli import opstables
    from edgeq.errors import ConfigError
    from edgeq.results.opstore import compare_ops

    if base is None or candidate is None:
        raise ConfigError("compare --ops needs two runs: edgeq compare --ops BASE CANDIDATE", "`edgeq history` lists run ids")
    c = compare_ops(base, candidate, db_path=db, threshold=threshold)
    if json_out:
        output.emit(c.to_json())
    else:
        for d in c.diffs:
            output.table(*opstables.diff_table(d, wide))
        for line in opstables.diff_notes(c):
            output.log(line)
    if fail and c.regressed:
        from edgeq.errors import RegressionError

        raise RegressionError(f"ops slower in {c.candidate} than in {c.base}", "see the flagged ops above")


# ---- report


def report(
    run: str = typer.Argument("latest", help="Run id (or unique prefix) or `latest`."),
    out_file: Path | None = typer.Option(
        None, "--output", "-o", help="HTML file to write (default: ./edgeq-report-<run id>.html)."
    ),
    last: int = typer.Option(10, "--last", min=1, max=1000, help="Runs of the pipeline in the trend plots."),
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="With `latest`: the latest run of this pipeline."),
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write one self-contained HTML report (plots inline, readable offline) for a run."""
    output.use_json(json_out)
    from edgeq.report.html import write_report
    from edgeq.results import default_db_path

    output.using(history=db or default_db_path())
    res = write_report(run, out_file, last=last, db_path=db, pipeline=pipeline)
    if json_out:
        output.emit(res.to_json())
    else:
        output.echo(res.path)


# ---- metrics

metrics_app = typer.Typer(
    help="Export stored results to Prometheus: Pushgateway, node_exporter textfile, HTTP exporter.", no_args_is_help=True
)


@metrics_app.command("push")
def metrics_push(
    run: str = typer.Argument("latest", help="Run id (or unique prefix) or `latest`."),
    gateway: str = typer.Option(..., "--gateway", "-g", envvar="EDGEQ_PUSHGATEWAY", show_envvar=True, help=GATEWAY_HELP),
    job: str = typer.Option("edgeq", "--job", help="The job label of the pushed group."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds to wait for the Pushgateway."),
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send a stored run to a Pushgateway (replaces the pipeline's group: job + pipeline)."""
    output.use_json(json_out)
    from edgeq import metrics

    res = metrics.push(run, gateway, db_path=db, job=job, timeout=timeout)
    if json_out:
        output.emit(res.to_json())
    else:
        output.log(f"pushed run {res.run_id} ({res.series} series) to {res.gateway} as job={job} pipeline={res.pipeline}")


@metrics_app.command("textfile")
def metrics_textfile(
    path: Path = typer.Argument(..., help="File to write, e.g. /var/lib/node_exporter/textfile/edgeq.prom", metavar="PATH"),
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the latest results of every pipeline for node_exporter's textfile collector (atomic write)."""
    output.use_json(json_out)
    from edgeq import metrics

    res = metrics.write_textfile(path, db_path=db)
    if json_out:
        output.emit(res.to_json())
    else:
        output.log(f"wrote {res.series} series to {res.path}")


@metrics_app.command("backfill")
def metrics_backfill(
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the OpenMetrics file here (kept)."),
    data_dir: Path | None = typer.Option(
        None,
        "--prometheus-data",
        help="Create TSDB blocks in this Prometheus data directory (promtool tsdb create-blocks-from openmetrics).",
    ),
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="Only runs of this pipeline."),
    since: str | None = typer.Option(None, "--since", help="Only runs finished at or after this ISO date/time (UTC if no zone)."),
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write every stored run as OpenMetrics stamped with the time it was measured, and load it into Prometheus."""
    output.use_json(json_out)
    if out is None and data_dir is None:
        raise typer.BadParameter("give --out FILE, --prometheus-data DIR or both", param_hint="--out/--prometheus-data")
    from edgeq.metrics import backfill

    since_ts = _since(since)
    res = backfill.backfill(db_path=db, out=out, data_dir=data_dir, pipeline=pipeline, since_ts=since_ts)
    if json_out:
        output.emit(res.to_json())
        return
    where = " and ".join(x for x in (res.openmetrics, res.data_dir and f"blocks in {res.data_dir}") if x)
    output.log(f"backfilled {res.runs} run(s), {res.series} series, {res.samples} samples: {where}")
    if not res.runs:
        output.log("no runs match: nothing to load")


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO date or date-time, e.g. 2026-01-31", param_hint="--since") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


@metrics_app.command("serve")
def metrics_serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 to expose it on the network)."),
    port: int = typer.Option(9108, "--port", min=1, max=65535, help="Port to listen on."),
    db: DbOpt = None,
) -> None:
    """Serve the latest results of every pipeline at http://HOST:PORT/metrics (read from the history at each scrape)."""
    import signal
    import threading

    from edgeq import metrics
    from edgeq.results import default_db_path

    db = db or default_db_path()
    server, thread = metrics.serve(host, port, db_path=db)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    output.log(f"serving http://{host}:{server.server_address[1]}/metrics from {db} (Ctrl-C to stop)")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    server.shutdown()
    server.server_close()
    output.log("stopped")


def register(app: typer.Typer) -> None:
    app.command("history")(history)
    app.command("compare")(compare)
    app.command("report")(report)
    app.add_typer(metrics_app, name="metrics")
