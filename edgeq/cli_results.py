"""Results commands: history, compare, report, metrics push/textfile/serve; and what `edgeq run` does after a run
(push metrics, check for a regression).

Each command parses, calls one core function (edgeq.results, edgeq.metrics, edgeq.report) and renders.
No prometheus_client, matplotlib or numpy at import time: `edgeq --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgeq.console import log, print_json, table

DB_HELP = "History database (else $EDGEQ_HISTORY_DB, else <edgeq home>/history.db)."
GATEWAY_HELP = "Pushgateway URL, e.g. http://pushgateway.lan:9091."


def _db_opt():
    return typer.Option(None, "--db", envvar="EDGEQ_HISTORY_DB", help=DB_HELP, show_envvar=True)


def _json_opt():
    return typer.Option(False, "--json", help="Print one JSON document on stdout (logs go to stderr).")


def _set_json(json_out: bool) -> None:
    from edgeq.cli import set_json  # inside: edgeq.cli imports this module

    set_json(json_out)


def _us(s) -> str:
    return "" if s is None else f"{s * 1e6:,.2f}"


def _pct(x) -> str:
    return "" if x is None else f"{x * 100:.2f}%"


def _mib(n) -> str:
    return "" if n is None else f"{n / 2**20:.1f}"


# ---- history


def _history_rows(runs: list[dict]) -> list[list]:
    rows = []
    for r in runs:
        acc = ", ".join(f"{v} {_pct(x.get('accuracy'))}" for v, x in r["validations"].items())
        bench = "; ".join(
            f"{b['device']}/{b['variant']}/t{b['threads']} " + (_us(b["p50_s"]) if b["ok"] else "FAILED") for b in r["benchmarks"]
        )
        rows.append(
            [
                r["run_id"],
                r["pipeline"],
                r["status"],
                (r["started"] or "")[:19].replace("T", " "),
                "" if r["wall_seconds"] is None else f"{r['wall_seconds']:.1f}",
                acc,
                bench,
            ]
        )
    return rows


def history(
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="Only runs of this pipeline."),
    device: str | None = typer.Option(None, "--device", "-d", help="Only runs benchmarked on this device."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="At most this many runs, newest first."),
    import_: list[Path] | None = typer.Option(
        None,
        "--import",
        help="Record run folders (or a runs/ folder, or manifest.json files) into the history first. Repeatable.",
    ),
    db: Path | None = _db_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """List stored runs with their accuracy and on-device p50 latency (µs)."""
    _set_json(json_out)
    from edgeq.results import default_db_path, import_runs, query

    db = db or default_db_path()
    imported = None
    if import_:
        imported = import_runs(import_, db)
        for s in imported["skipped"]:
            log(f"skipped {s['path']}: {s['reason']}")
        log(f"imported {len(imported['recorded'])} run(s) into {db}")
    with query.open_for_reading(db) as h:
        runs = query.list_runs(h, pipeline=pipeline, device=device, limit=limit)
    if json_out:
        print_json({"db": str(db), **({"imported": imported} if imported else {}), "runs": runs})
        return
    table(
        f"history {db}",
        ["run", "pipeline", "status", "started (UTC)", "wall s", "accuracy", "p50 µs (device/variant/threads)"],
        _history_rows(runs),
    )
    if not runs:
        log("no runs match")


# ---- compare


def render_comparison(c: dict) -> None:
    b, k = c["base"], c["candidate"]
    rows = [
        [
            x["device"],
            x["variant"],
            x["threads"],
            _us(x["base_p50_s"]),
            _us(x["candidate_p50_s"]),
            "" if x["ratio"] is None else f"{x['ratio']:.3f}",
            "" if x["p_value"] is None else f"{x['p_value']:.2g}",
            x["verdict"].upper() if x["regression"] else x["verdict"],
        ]
        for x in c["latency"]
    ]
    if rows:
        table(
            f"latency {b['run_id']} -> {k['run_id']} (pipeline {k['pipeline']}; regression = p50 ratio > "
            f"{c['threshold']:g} and Mann-Whitney p < {c['alpha']:g})",
            ["device", "variant", "threads", "base p50 µs", "cand p50 µs", "ratio", "p", "verdict"],
            rows,
        )
    if c["accuracy"]:
        table(
            "accuracy",
            ["variant", "base", "candidate", "delta (pts)", "verdict"],
            [
                [
                    a["variant"],
                    _pct(a["base"]),
                    _pct(a["candidate"]),
                    f"{a['delta'] * 100:+.2f}",
                    "REGRESSION" if a["regression"] else "ok",
                ]
                for a in c["accuracy"]
            ],
        )
    other = [
        [
            "peak memory MiB",
            m["device"],
            m["variant"],
            m["threads"],
            _mib(m["base_bytes"]),
            _mib(m["candidate_bytes"]),
            f"{m['ratio']:.3f}",
            "REGRESSION" if m["regression"] else "ok",
        ]
        for m in c["memory"]
    ]
    other += [
        [
            "energy mJ/inference",
            e["device"],
            e["variant"],
            e["threads"],
            f"{e['base_j'] * 1e3:.4g}",
            f"{e['candidate_j'] * 1e3:.4g}",
            f"{e['ratio']:.3f}",
            "REGRESSION" if e["regression"] else "ok",
        ]
        for e in c["energy"]
    ]
    if other:
        table("memory and energy", ["metric", "device", "variant", "threads", "base", "candidate", "ratio", "verdict"], other)
    for x in c["only_in_base"]:
        log(f"only in base: {x['variant']} on {x['device']} ({x['threads']} threads)")
    for x in c["only_in_candidate"]:
        log(f"only in candidate: {x['variant']} on {x['device']} ({x['threads']} threads)")
    if not c["same_pipeline_file"]:
        log("note: the pipeline file changed between the two runs")
    if c["regressions"]:
        log(f"{len(c['regressions'])} regression(s):")
        for r in c["regressions"]:
            log(f"  {r}")
    else:
        log("no regression")


def _regression_error(c: dict, json_printed: bool):
    from edgeq.errors import RegressionError

    e = RegressionError(
        f"{len(c['regressions'])} regression(s) from run {c['base']['run_id']} to {c['candidate']['run_id']}:\n  "
        + "\n  ".join(c["regressions"]),
        "look at `edgeq report` for the distributions; a real slowdown needs a fix, noise needs more "
        "benchmark runs (benchmark.runs / min_seconds)",
    )
    e._json_printed = json_printed
    return e


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
    db: Path | None = _db_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Compare two runs: latency per device x variant x threads, accuracy, peak memory, energy per inference."""
    _set_json(json_out)
    from edgeq.results import compare_runs

    c = compare_runs(
        base, candidate, db_path=db, pipeline=pipeline, threshold=threshold, alpha=alpha, accuracy_tolerance=accuracy_tolerance
    )
    if json_out:
        print_json(c)
    else:
        render_comparison(c)
    if fail_on_regression and c["regressed"]:
        raise _regression_error(c, json_out)


# ---- report


def report(
    run: str = typer.Argument("latest", help="Run id (or unique prefix) or `latest`."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="HTML file to write (default: ./edgeq-report-<run id>.html)."
    ),
    last: int = typer.Option(10, "--last", min=1, max=1000, help="Runs of the pipeline in the trend plots."),
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", help="With `latest`: the latest run of this pipeline."),
    db: Path | None = _db_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Write one self-contained HTML report (plots inline, readable offline) for a run."""
    _set_json(json_out)
    from edgeq.report import write_report

    res = write_report(run, output, last=last, db_path=db, pipeline=pipeline)
    if json_out:
        print_json(res)
    else:
        typer.echo(res["path"])


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
    db: Path | None = _db_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Send a stored run to a Pushgateway (replaces the pipeline's group: job + pipeline)."""
    _set_json(json_out)
    from edgeq import metrics

    res = metrics.push(run, gateway, db_path=db, job=job, timeout=timeout)
    if json_out:
        print_json(res)
    else:
        log(f"pushed run {res['run_id']} ({res['series']} series) to {res['gateway']} as job={job} pipeline={res['pipeline']}")


@metrics_app.command("textfile")
def metrics_textfile(
    path: Path = typer.Argument(..., help="File to write, e.g. /var/lib/node_exporter/textfile/edgeq.prom", metavar="PATH"),
    db: Path | None = _db_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Write the latest results of every pipeline for node_exporter's textfile collector (atomic write)."""
    _set_json(json_out)
    from edgeq import metrics

    res = metrics.write_textfile(path, db_path=db)
    if json_out:
        print_json(res)
    else:
        log(f"wrote {res['series']} series to {res['path']}")


@metrics_app.command("serve")
def metrics_serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 to expose it on the network)."),
    port: int = typer.Option(9108, "--port", min=1, max=65535, help="Port to listen on."),
    db: Path | None = _db_opt(),
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
    log(f"serving http://{host}:{server.server_address[1]}/metrics from {db} (Ctrl-C to stop)")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    server.shutdown()
    log("stopped")


# ---- after `edgeq run`


def after_run(result: dict, *, push_gateway: str | None, fail_on_regression: bool) -> dict:
    """Push the recorded run and/or compare it with the previous one. Never raises for an export or comparison
    problem: returns {"export_error", "comparison"} for raise_after_run and adds a summary to the run document."""
    from edgeq.errors import EdgeqError

    out: dict = {"export_error": None, "comparison": None}
    if push_gateway:
        from edgeq import metrics

        try:
            res = metrics.push(result["run_id"], push_gateway)
            result["metrics_push"] = res
            log(f"metrics: pushed {res['series']} series to {res['gateway']} (job={res['job']}, pipeline={res['pipeline']})")
        except EdgeqError as e:
            e.hint = (
                f"the results are stored in the history; send them when the gateway is back: "
                f"edgeq metrics push {result['run_id']} --gateway {push_gateway}"
            )
            out["export_error"] = e
            result["metrics_push"] = {"ok": False, "gateway": push_gateway, "error": e.message}
            log(f"metrics push failed: {e.message} (the results are stored in the history)")
    if fail_on_regression:
        from edgeq.results import compare_with_previous

        try:
            c = compare_with_previous(result["run_id"])
        except EdgeqError as e:
            c = None
            log(f"regression check skipped: {e.message}")
        if c is None:
            log(f"regression check: no earlier run of pipeline {result['pipeline']!r} to compare with")
        else:
            out["comparison"] = c
            result["regressions"] = {"base": c["base"]["run_id"], "regressed": c["regressed"], "list": c["regressions"]}
            if c["regressions"]:
                log(f"regression check against run {c['base']['run_id']}: {len(c['regressions'])} regression(s)")
                for r in c["regressions"]:
                    log(f"  {r}")
            else:
                log(f"regression check against run {c['base']['run_id']}: no regression")
    return out


def raise_after_run(post: dict, json_printed: bool) -> None:
    """After gate/fleet failures were raised: a regression (exit 9), then a failed export (exit 11)."""
    c = post.get("comparison")
    if c is not None and c["regressed"]:
        raise _regression_error(c, json_printed)
    e = post.get("export_error")
    if e is not None:
        e._json_printed = json_printed
        raise e


def register(app: typer.Typer) -> None:
    app.command("history")(history)
    app.command("compare")(compare)
    app.command("report")(report)
    app.add_typer(metrics_app, name="metrics")
