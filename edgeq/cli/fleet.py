"""Fleet commands: devices list/check/trust, deploy, rollback, bench.

Each command parses, calls one edgeq.fleet function, renders (table or one --json document) and
decides the exit code. No paramiko or TensorFlow at import time: `edgeq devices list` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeq.cli import benchopts, output, tables
from edgeq.cli.fleetrun import fan_out, keep_finished
from edgeq.cli.options import BatchOpt, DbOpt, DevicesOpt, DryRunOpt, JsonOpt, MaxFailOpt, TargetOpt, ThreadsOpt, WideOpt
from edgeq.cli.setup import devices_setup
from edgeq.errors import FleetError

if TYPE_CHECKING:
    from edgeq.records.fleet import FleetSummary

# ---- devices


def devices_list(devices: DevicesOpt = None, json_out: JsonOpt = False, wide: WideOpt = False) -> None:
    """List the boards in devices.yaml (no connection is made)."""
    output.use_json(json_out)
    from edgeq.fleet.inventory.devices import load_inventory

    inv = load_inventory(devices)
    source = str(inv.source) if inv.source else "embedded default"
    output.using(devices=source)
    if inv.labgrid is not None:  # the boards are places: known only once leased (no connection is made here)
        lg = inv.labgrid
        if json_out:
            output.emit({"ok": True, "source": source, "labgrid": lg.model_dump(), "devices": []})
            return
        output.echo(
            f"devices ({source}): labgrid places matching {lg.filter_text} on {lg.coordinator}, {lg.places} per command; "
            "`edgeq devices check` leases and reaches them"
        )
        return
    if json_out:
        output.emit({"ok": True, "source": source, "devices": [d.public() for d in inv.devices]})
        return
    output.table(*tables.devices_table(inv.devices, source))


def devices_check(
    targets: Annotated[list[str] | None, typer.Argument(help="Device names or tags (default: all).")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Boards contacted at once.")] = 5,
    devices: DevicesOpt = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Reach each board and run the agent's `facts`; exit 8 if any board is unreachable or unhealthy."""
    output.use_json(json_out)
    from edgeq import fleet, paths

    with fleet.open_inventory(devices, output.log) as inv:
        output.using(devices=inv.source or "embedded default", home=paths.home())
        res = keep_finished(
            "check", json_out, "device check", lambda: fleet.check(inv, targets or ["all"], parallel=parallel, progress=None)
        )
    if json_out:
        output.emit(res.to_json())
    else:
        output.table(*tables.check_table(res))
    if not res.ok:
        from edgeq.records.fleet import BoardHealth

        bad = [r for r in res.devices if not (isinstance(r, BoardHealth) and r.healthy)]
        raise FleetError(
            f"{len(bad)} of {len(res.devices)} board(s) unhealthy: {', '.join(r.device for r in bad)}; first: {bad[0].error}",
            bad[0].hint or "see the table above",
            result=res,
        )


def devices_trust(
    name: Annotated[str, typer.Argument(help="Device name in devices.yaml.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Record the key without asking.")] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a different key already recorded (a reinstalled board).")
    ] = False,
    devices: DevicesOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fetch a board's SSH host key, show its fingerprint and record it in the fleet known_hosts.

    Behind jump hosts (ProxyJump), each jump host's key is checked first and, if unknown, asked about (--yes: trusted)."""
    output.use_json(json_out)
    from edgeq.fleet.inventory.devices import load_inventory
    from edgeq.fleet.transport.trust import trust

    def ask(key: Any, known_hosts: Path) -> bool:
        try:
            who = f"jump host {key.jump_host}" if key.jump_host else name
            q = f"Trust {key.keytype} {key.fingerprint} for {who} ({key.entry}) in {known_hosts}?"
            return bool(typer.confirm(q, err=True, default=False))
        except (typer.Abort, EOFError):  # Ctrl-D or a closed stdin is a "no"
            return False

    d = load_inventory(devices).get(name)
    res = trust(d, yes=yes, replace=replace, confirm=None if json_out else ask, log=output.log)
    if json_out:
        output.emit(res.to_json())
    else:
        for hop in res.jump_hosts:
            output.echo(f"jump host {hop.name}: {hop.keytype} {hop.fingerprint} {hop.result} in {res.known_hosts}")
        output.echo(f"{name}: {res.keytype} {res.fingerprint} {res.result} in {res.known_hosts}")


# ---- deploy / rollback / bench


def _finish(res: FleetSummary, json_out: bool, title: str) -> None:
    if json_out:
        output.emit(res.to_json())
    else:
        output.table(*tables.rollout_table(res, title))
        output.log(tables.rollout_line(res))
    from edgeq.fleet import raise_for_failures

    raise_for_failures(res)


def deploy_cmd(
    artifact: Annotated[Path, typer.Argument(help="The .tflite artifact to deploy.", metavar="ARTIFACT.tflite")],
    target: TargetOpt,
    name: Annotated[str | None, typer.Option("--name", help="Model name on the boards (default: the artifact's stem).")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Boards deployed at once.")] = 5,
    batch: BatchOpt = None,
    max_fail: MaxFailOpt = None,
    devices: DevicesOpt = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Deploy a TFLite model to boards (uploads only what is missing; current switches only after the board loads it).

    Example: edgeq deploy model_int8.tflite -t pi5 --batch 1,100% --dry-run
    """
    output.use_json(json_out)
    from edgeq import fleet
    from edgeq.fleet import dryrun

    res = fan_out(
        "deploy",
        devices,
        target,
        lambda inv, progress: (
            dryrun.deploy_plan(inv, target, artifact, name=name, parallel=parallel, progress=progress)
            if dry_run
            else fleet.deploy(
                inv, target, artifact, name=name, parallel=parallel, batches=batch, max_fail=max_fail, progress=progress
            )
        ),
    )
    _finish(res, json_out, f"deploy {res.name} ({(res.sha256 or '')[:12]})" + (" - dry run, nothing changed" if dry_run else ""))


def rollback_cmd(
    target: TargetOpt,
    name: Annotated[str, typer.Option("--name", help="Model name on the boards.")],
    from_sha: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Only roll back boards whose current version is this sha256 (a retry never toggles back).",
            metavar="SHA256",
        ),
    ] = None,
    undo_rollback: Annotated[
        bool,
        typer.Option(
            "--undo-rollback",
            help="Also where the current version was put there by a rollback: undo it (refused by default, exit 8).",
        ),
    ] = False,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Boards handled at once.")] = 5,
    batch: BatchOpt = None,
    max_fail: MaxFailOpt = None,
    devices: DevicesOpt = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Make each board's previous version of a model current again.

    A board whose current version came from a rollback is refused (a retry never toggles back): --undo-rollback
    undoes that rollback on purpose; --from SHA256 names the version to leave (for scripts).

    Example: edgeq rollback -t pi5 --name mnist_int8 --from 3f1c... --dry-run
    """
    output.use_json(json_out)
    from edgeq import fleet
    from edgeq.fleet import dryrun

    res = fan_out(
        "rollback",
        devices,
        target,
        lambda inv, progress: (
            dryrun.rollback_plan(
                inv, target, name, from_sha=from_sha, undo_rollback=undo_rollback, parallel=parallel, progress=progress
            )
            if dry_run
            else fleet.rollback(
                inv,
                target,
                name,
                parallel=parallel,
                batches=batch,
                max_fail=max_fail,
                progress=progress,
                from_sha=from_sha,
                undo_rollback=undo_rollback,
            )
        ),
    )
    _finish(res, json_out, f"rollback {name}" + (" - dry run, nothing changed" if dry_run else ""))


def bench_cmd(
    artifact: Annotated[Path, typer.Argument(help="The .tflite artifact to benchmark.", metavar="ARTIFACT.tflite")],
    target: TargetOpt,
    name: Annotated[str | None, typer.Option("--name", help="Model name on the boards (default: the artifact's stem).")] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs in total over the sessions (at least).")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")] = 5,
    min_seconds: Annotated[
        float, typer.Option("--min-seconds", min=0.0, help="Keep running until this much time was measured.")
    ] = 1.0,
    threads: ThreadsOpt = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help=".npy inputs (default: seeded random data).")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Boards benchmarked at once.")] = 5,
    sessions: Annotated[
        int,
        typer.Option(
            "--sessions",
            min=1,
            max=100,
            help="Independent sessions (a fresh agent and interpreter each); --runs and --min-seconds are totals.",
        ),
    ] = 5,
    ci_target: Annotated[
        str | None,
        typer.Option(
            "--ci-target",
            metavar="PCT",
            help="Self-sizing: after --sessions, add sessions until the p50 interval's half-width is within PCT of "
            "the p50 (e.g. 2%) or the budget (--max-sessions, --max-seconds) runs out.",
        ),
    ] = None,
    max_sessions: Annotated[
        int, typer.Option("--max-sessions", min=1, max=100, help="With --ci-target: at most this many sessions in all.")
    ] = 20,
    max_seconds: Annotated[
        float | None,
        typer.Option("--max-seconds", min=0.0, help="With --ci-target: start no session after this many seconds."),
    ] = None,
    cooldown_temp: benchopts.CooldownTempOpt = None,
    cooldown_max_wait: benchopts.CooldownWaitOpt = None,
    cooldown_seconds: benchopts.CooldownSecondsOpt = None,
    cpu_affinity: benchopts.AffinityOpt = None,
    governor: benchopts.GovernorOpt = None,
    sustained: benchopts.SustainedOpt = None,
    window: benchopts.WindowOpt = None,
    hot_temp: benchopts.HotOpt = None,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Store the results in the history as an ad hoc run.")
    ] = True,
    ops: Annotated[
        bool,
        typer.Option(
            "--ops",
            help="After the latency sessions, as many profiling sessions (LiteRT CompiledModel profiler): time per op.",
        ),
    ] = False,
    db: DbOpt = None,
    devices: DevicesOpt = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Deploy if needed, then measure on-board latency per device x threads, in independent sessions; store the
    results in the history as an ad hoc run (`edgeq history --adhoc`). With --ops, then where the time goes: per op.

    Each session records the board's state (temperature, clock, throttling, load) through its timed window;
    the Flags column names sessions to distrust (throttled, freq_drop, foreign_load, hot, cooldown_timeout, cpu_starved)."""
    output.use_json(json_out)
    import time

    from edgeq import fleet

    controls = benchopts.controls(
        cooldown_temp, cooldown_max_wait, cooldown_seconds, cpu_affinity, governor, sustained, window, hot_temp
    )
    sizing = None
    if ci_target is not None:
        from edgeq.fleet.sessions import Sizing, parse_ci_target

        sizing = Sizing(target=parse_ci_target(ci_target), max_sessions=max_sessions, max_seconds=max_seconds)

    started = time.time()
    profiled: list[Any] = []

    def measure(inv: Any, progress: Any) -> FleetSummary:
        res = fleet.bench(
            inv,
            target,
            artifact,
            name=name,
            runs=runs,
            warmup=warmup,
            min_seconds=min_seconds,
            threads=threads or None,
            inputs=inputs,
            parallel=parallel,
            progress=progress,
            sessions=sessions,
            controls=controls,
            sizing=sizing,
        )
        if ops:  # after the latency sessions, never mixed into them
            key = res.name or artifact.stem
            profiled.append(
                fleet.profile_ops(
                    inv,
                    target,
                    {key: res},
                    runs=runs,
                    warmup=warmup,
                    sessions=sessions,
                    parallel=parallel,
                    progress=_ops_progress,
                )
            )
        return res

    res = fan_out("bench", devices, target, measure)
    report = profiled[0] if profiled else None
    for note in tables.bench_notes(res):
        output.log(f"warning: {note}")
    run_id = _record_bench(res, started, db, report) if record and any(d.results for d in res.devices) else None
    if json_out:
        output.emit(
            {**res.to_json(), **({"ops": report.to_json()} if report else {}), **({"history_run": run_id} if run_id else {})}
        )
    else:
        output.table(*tables.bench_table(res))
        if report is not None:
            _render_ops(report, wide)
        if run_id:
            output.log(f"stored as ad hoc run {run_id} (edgeq history --adhoc)")
    if not res.ok:
        bad = [r for r in res.devices if r.status != "ok"]
        raise FleetError(
            f"bench did not succeed on {len(bad)} of {len(res.devices)} board(s): {', '.join(r.device for r in bad)}; "
            f"first: {bad[0].error}",
            bad[0].hint or "see the table above",
            result=res,
        )


def _ops_progress(ev: dict[str, Any]) -> None:
    if ev.get("event") == "profile":
        output.log(f"{ev['device']}: profiling ops of {ev['model']} ({ev['threads']} thr), session {ev['session']}/{ev['of']}")


def _render_ops(report: Any, wide: bool) -> None:
    from edgeq.cli import opstables

    for table, line in opstables.report_tables(report, wide):
        if table is not None:
            output.table(*table)
        output.log(line)


def _record_bench(res: FleetSummary, started: float, db: Path | None, ops: Any = None) -> str | None:
    """A history that cannot be written costs the record, not the measurement: warn, keep the exit code."""
    import time

    from edgeq.errors import StoreError
    from edgeq.pipeline.adhoc import record_bench

    try:
        return record_bench(res, started, time.time(), db, ops=ops)
    except StoreError as e:
        output.warn(f"bench results not stored in the history: {e.message}")
        return None


def register(app: typer.Typer) -> None:
    devices_app = typer.Typer(help="The board registry (devices.yaml): list, check, trust, setup.", no_args_is_help=True)
    devices_app.command("list")(devices_list)
    devices_app.command("check")(devices_check)
    devices_app.command("trust")(devices_trust)
    devices_app.command("setup")(devices_setup)
    app.add_typer(devices_app, name="devices")
    app.command("deploy")(deploy_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("bench")(bench_cmd)
