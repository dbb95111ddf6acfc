"""Fleet commands: devices list/check/trust, deploy, rollback, bench.

Each command parses, calls one edgeq.fleet function, renders (rich table or one --json document)
and decides the exit code. No paramiko or TensorFlow at import time: `edgeq devices list` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgeq.console import log, print_json, progress_bars, progress_enabled, table
from edgeq.errors import FleetError

DEVICES_HELP = "devices.yaml to use (else $EDGEQ_DEVICES, else ./devices.yaml, else one `local` board)."
TARGET_HELP = "Device name, tag, or `all` (repeatable)."


def _devices_opt():
    return typer.Option(None, "--devices", envvar="EDGEQ_DEVICES", help=DEVICES_HELP, show_envvar=True)


def _json_opt():
    return typer.Option(False, "--json", help="Print one JSON document on stdout (logs go to stderr).")


def _set_json(json_out: bool) -> None:
    from edgeq.cli import set_json  # inside: edgeq.cli imports this module

    set_json(json_out)


def _fail(message: str, hint: str | None, result: dict, json_printed: bool) -> None:
    e = FleetError(message, hint)
    e.result = result
    e._json_printed = json_printed  # the summary already went to stdout as the one JSON document
    raise e


def _size(n) -> str:
    if n is None:
        return ""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return str(n)


def _num(d: dict, k: str) -> str:
    v = d.get(k)
    return f"{v:.4g}" if isinstance(v, (int, float)) else ""


def _progress_logger(label: str, boards: int):
    from edgeq.progress import fleet_counter

    bar = fleet_counter(label, boards)

    def progress(ev: dict) -> None:
        bar(ev)
        kind = ev.get("event")
        if kind == "batch" and ev.get("of", 1) > 1:
            log(f"batch {ev['batch']}/{ev['of']}: {', '.join(ev['devices'])}")
        elif kind == "done":
            err = ev.get("error") if ev["status"] != "ok" else None
            log(f"{ev['device']}: {ev['status']}" + (f" - {err.removeprefix(ev['device'] + ': ')}" if err else ""))
        elif kind == "stopped":
            log(f"stopping the rollout after batch {ev['batch']}: {ev['failures']} failure(s) > --max-fail {ev['max_fail']}")

    return progress


def _parse_batch(value: str | None) -> str | None:
    if value is None:
        return None
    from edgeq.errors import ConfigError
    from edgeq.fleet.fanout import parse_batches

    try:
        parse_batches(value)
    except ConfigError as e:
        raise typer.BadParameter(e.message) from None
    return value


# --------------------------------------------------------------------------- devices


def devices_list(devices: Path | None = _devices_opt(), json_out: bool = _json_opt()) -> None:
    """List the boards in devices.yaml (no connection is made)."""
    _set_json(json_out)
    from edgeq.fleet.inventory import load_inventory

    inv = load_inventory(devices)
    source = str(inv.source) if inv.source else "embedded default"
    if json_out:
        print_json({"ok": True, "source": source, "devices": [d.public() for d in inv.devices]})
        return
    rows = [
        (
            d.name,
            d.transport,
            d.address,
            d.user if d.transport == "ssh" else "",
            ", ".join(d.tags),
            d.python,
            d.workdir,
            d.model or d.description,
        )
        for d in inv.devices
    ]
    table(f"devices ({source})", ["Name", "Transport", "Address", "User", "Tags", "Python", "Workdir", "Model"], rows)


def devices_check(
    targets: list[str] | None = typer.Argument(None, help="Device names or tags (default: all)."),
    parallel: int = typer.Option(5, "--parallel", min=1, help="Boards contacted at once."),
    devices: Path | None = _devices_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Reach each board and run the agent's `facts`; exit 8 if any board is unreachable or unhealthy."""
    _set_json(json_out)
    from edgeq import fleet

    inv = fleet.load_inventory(devices)
    res = fleet.check(inv, targets or ["all"], parallel=parallel, progress=None).to_json()  # bridge until cli/ lands
    if json_out:
        print_json(res)
    else:
        rows = []
        for r in res["devices"]:
            rt = f"{r.get('runtime') or ''} {r.get('runtime_version') or ''}".strip()
            temp = f"{r['temperature_c']:.0f} C" if isinstance(r.get("temperature_c"), (int, float)) else ""
            rows.append(
                (
                    r["device"],
                    "yes" if r["reachable"] else "no",
                    "yes" if r["healthy"] else "NO",
                    r.get("arch"),
                    r.get("python"),
                    rt,
                    _size(r.get("free_bytes")),
                    temp,
                    "; ".join(r.get("problems") or []),
                )
            )
        table(
            "device check", ["Device", "Reachable", "Healthy", "Arch", "Python", "Runtime", "Free disk", "Temp", "Problem"], rows
        )
    if not res["ok"]:
        bad = [r for r in res["devices"] if not r["healthy"]]
        first = bad[0]
        _fail(
            f"{len(bad)} of {len(res['devices'])} board(s) unhealthy: {', '.join(r['device'] for r in bad)}; "
            f"first: {first.get('error')}",
            first.get("hint") or "see the table above",
            res,
            json_out,
        )


def devices_trust(
    name: str = typer.Argument(..., help="Device name in devices.yaml."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Record the key without asking."),
    replace: bool = typer.Option(False, "--replace", help="Replace a different key already recorded (a reinstalled board)."),
    devices: Path | None = _devices_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Fetch a board's SSH host key, show its fingerprint and record it in the fleet known_hosts."""
    _set_json(json_out)
    from edgeq.fleet.hostkeys import fetch_host_key, known_keys, record_host_key
    from edgeq.fleet.inventory import load_inventory

    d = load_inventory(devices).get(name)
    key = fetch_host_key(d)
    kh = Path(str(d.known_hosts))
    existing = known_keys(kh, key.entry)
    log(f"{name} ({key.entry}) presents {key.keytype} key {key.fingerprint}")
    if (key.keytype, key.base64) in existing:
        outcome = "unchanged"
    else:
        if existing and not replace:
            record_host_key(kh, key, replace=False)  # raises: a different key is recorded; a person decides
        if not yes:
            if json_out:
                raise FleetError(
                    f"{name}: not recorded: confirmation needed",
                    "compare the fingerprint with the board's own, then rerun with --yes",
                )
            import click

            try:
                ok = typer.confirm(
                    f"Trust {key.keytype} {key.fingerprint} for {name} ({key.entry}) in {kh}?", err=True, default=False
                )
            except click.exceptions.Abort:
                ok = False
            if not ok:
                raise FleetError(
                    f"{name}: host key not trusted (declined)",
                    "compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the board",
                )
        outcome = record_host_key(kh, key, replace=replace)
    doc = {"ok": True, **key.public(), "known_hosts": str(kh), "result": outcome}
    if json_out:
        print_json(doc)
    else:
        typer.echo(f"{name}: {key.keytype} {key.fingerprint} {outcome} in {kh}")


# --------------------------------------------------------------------------- deploy / rollback / bench


def _render_rollout(res: dict, title: str) -> None:
    rows = [
        (
            r["device"],
            r["status"],
            r.get("action") or "",
            _size(r.get("bytes_uploaded") or 0),
            f"{r.get('seconds') or 0:.1f}s",
            r.get("error") or "",
        )
        for r in res["devices"]
    ]
    table(title, ["Device", "Status", "Action", "Uploaded", "Time", "Error"], rows)
    c = res["counts"]
    log(
        ", ".join(f"{v} {k}" for k, v in c.items() if v)
        + f"; {_size(res.get('bytes_uploaded', 0))} uploaded in {res['seconds']:.1f}s"
    )


def deploy_cmd(
    artifact: Path = typer.Argument(..., help="The .tflite artifact to deploy.", metavar="ARTIFACT.tflite"),
    target: list[str] = typer.Option(..., "--target", "-t", help=TARGET_HELP),
    name: str | None = typer.Option(None, "--name", help="Model name on the boards (default: the artifact's stem)."),
    parallel: int = typer.Option(5, "--parallel", min=1, help="Boards deployed at once."),
    batch: str | None = typer.Option(
        None, "--batch", callback=_parse_batch, help="Canary batches: cumulative counts/percentages, e.g. 1,25%,100%."
    ),
    max_fail: int | None = typer.Option(
        None, "--max-fail", min=0, help="Stop before the next batch once more boards than this have failed."
    ),
    devices: Path | None = _devices_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Deploy a TFLite model to boards (uploads only what is missing; current switches only after the board loads it)."""
    _set_json(json_out)
    from edgeq import fleet

    inv = fleet.load_inventory(devices)
    with progress_bars(progress_enabled(json_out)):
        res = fleet.deploy(
            inv,
            target,
            artifact,
            name=name,
            parallel=parallel,
            batches=batch,
            max_fail=max_fail,
            progress=_progress_logger("deploy", len(inv.select(target))),
        )
    _finish(res, json_out, f"deploy {res.name} ({(res.sha256 or '')[:12]})")


def rollback_cmd(
    target: list[str] = typer.Option(..., "--target", "-t", help=TARGET_HELP),
    name: str = typer.Option(..., "--name", help="Model name on the boards."),
    parallel: int = typer.Option(5, "--parallel", min=1, help="Boards handled at once."),
    batch: str | None = typer.Option(None, "--batch", callback=_parse_batch, help="Canary batches, e.g. 1,25%,100%."),
    max_fail: int | None = typer.Option(
        None, "--max-fail", min=0, help="Stop before the next batch once more boards than this have failed."
    ),
    devices: Path | None = _devices_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Make each board's previous version of a model current again."""
    _set_json(json_out)
    from edgeq import fleet

    inv = fleet.load_inventory(devices)
    with progress_bars(progress_enabled(json_out)):
        res = fleet.rollback(
            inv,
            target,
            name,
            parallel=parallel,
            batches=batch,
            max_fail=max_fail,
            progress=_progress_logger("rollback", len(inv.select(target))),
        )
    _finish(res, json_out, f"rollback {name}")


def _finish(summary, json_out: bool, title: str) -> None:
    res = summary.to_json()  # bridge until the cli/ package lands: the tables still read the JSON document
    if json_out:
        print_json(res)
    else:
        _render_rollout(res, title)
    try:
        from edgeq.fleet import raise_for_failures

        raise_for_failures(summary)
    except FleetError as e:
        e._json_printed = json_out
        raise


def _bench(fleet, inv, target, artifact, name, runs, warmup, min_seconds, threads, inputs, parallel) -> dict:
    return fleet.bench(  # .to_json() below: a bridge until the cli/ package lands
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
        progress=_progress_logger("bench", len(inv.select(target))),
    ).to_json()


def bench_cmd(
    artifact: Path = typer.Argument(..., help="The .tflite artifact to benchmark.", metavar="ARTIFACT.tflite"),
    target: list[str] = typer.Option(..., "--target", "-t", help=TARGET_HELP),
    name: str | None = typer.Option(None, "--name", help="Model name on the boards (default: the artifact's stem)."),
    runs: int = typer.Option(50, "--runs", min=1, help="Timed runs (at least)."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Untimed runs first."),
    min_seconds: float = typer.Option(1.0, "--min-seconds", min=0.0, help="Keep running until this much time was measured."),
    threads: list[int] | None = typer.Option(
        None, "--threads", min=1, help="Interpreter threads (repeatable; default: the device's threads)."
    ),
    inputs: Path | None = typer.Option(None, "--inputs", help=".npy inputs (default: seeded random data)."),
    parallel: int = typer.Option(5, "--parallel", min=1, help="Boards benchmarked at once."),
    devices: Path | None = _devices_opt(),
    json_out: bool = _json_opt(),
) -> None:
    """Deploy if needed, then measure on-board latency per device x threads."""
    _set_json(json_out)
    from edgeq import fleet

    inv = fleet.load_inventory(devices)
    with progress_bars(progress_enabled(json_out)):
        res = _bench(fleet, inv, target, artifact, name, runs, warmup, min_seconds, threads, inputs, parallel)
    if json_out:
        print_json(res)
    else:
        rows = []
        for r in res["devices"]:
            if not r["results"]:
                rows.append((r["device"], "", "", "", "", "", "", "", r["status"] + ": " + (r.get("error") or "")))
            for b in r["results"]:
                lat = b.get("latency_ms") or {}
                rows.append(
                    (
                        r["device"],
                        b["threads"],
                        _num(lat, "p50"),
                        _num(lat, "p90"),
                        _num(lat, "p99"),
                        _num(lat, "mean"),
                        b.get("count") or "",
                        f"{b['init_ms']:.1f}" if isinstance(b.get("init_ms"), (int, float)) else "",
                        "ok" if b["ok"] else b.get("error"),
                    )
                )
        table(
            f"bench {res['name']} ({res['sha256'][:12]})",
            ["Device", "Threads", "p50 ms", "p90 ms", "p99 ms", "mean ms", "Runs", "Init ms", "Status"],
            rows,
        )
    if not res["ok"]:
        bad = [r for r in res["devices"] if r["status"] != "ok"]
        _fail(
            f"bench did not succeed on {len(bad)} of {len(res['devices'])} board(s): {', '.join(r['device'] for r in bad)}; "
            f"first: {bad[0].get('error')}",
            bad[0].get("hint") or "see the table above",
            res,
            json_out,
        )


def register(app: typer.Typer) -> None:
    devices_app = typer.Typer(help="The board registry (devices.yaml): list, check, trust.", no_args_is_help=True)
    devices_app.command("list")(devices_list)
    devices_app.command("check")(devices_check)
    devices_app.command("trust")(devices_trust)
    app.add_typer(devices_app, name="devices")
    app.command("deploy")(deploy_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("bench")(bench_cmd)
