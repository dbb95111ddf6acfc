"""Board health (`check`), on-board benchmarks (`bench`) and predictions (`predict`).

Per-board failures are returned as records, never raised: the caller decides the exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from edgeq.errors import ConfigError, DataError
from edgeq.fleet.base import BoardError
from edgeq.fleet.board import AgentBundle, build_agent, file_sha256
from edgeq.fleet.deploy import _default_factory, check_tflite, install_on, model_name
from edgeq.fleet.fanout import ProgressFn, board_session, failure_record, run_fleet
from edgeq.fleet.inventory import DeviceSpec, Inventory

MIN_FREE_BYTES = 64 << 20  # room for the agent, a few model versions and their temp uploads
MAX_TEMP_C = 80.0  # Raspberry Pi firmware starts soft throttling at 80 C: benchmarks would be skewed
_THROTTLED_NOW = 0xF  # vcgencmd get_throttled bits 0-3: under-voltage, capped, throttled, soft limit NOW


def _d(x) -> dict:
    """A field an agent document should hold as an object; anything else (a buggy or foreign agent) reads as empty."""
    return x if isinstance(x, dict) else {}


def _num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _sane(doc: dict, objects: tuple[str, ...]) -> dict:
    """The agent's success document with object-typed fields forced to objects, so no later step trips on them."""
    out = dict(doc)
    for k in objects:
        if out.get(k) is not None and not isinstance(out[k], dict):
            out[k] = {}
    if "samples_s" in out and not (isinstance(out["samples_s"], list) and all(_num(v) is not None for v in out["samples_s"])):
        out["samples_s"] = []
    if "samples_stride" in out and not (isinstance(out["samples_stride"], int) and out["samples_stride"] >= 1):
        out["samples_stride"] = 1
    return out


_BENCH_OBJECTS = ("latency_s", "memory", "board", "runtime", "power", "delegate")


def _facts_fields(board: dict | None) -> dict:
    b = _d(board)
    rt = _d(b.get("runtime"))
    return {
        "arch": b.get("arch"),
        "cpu": b.get("cpu_model"),
        "board_model": b.get("board_model"),
        "cores": b.get("cores"),
        "kernel": b.get("kernel"),
        "os": b.get("os"),
        "python": b.get("python"),
        "numpy": b.get("numpy"),
        "runtime": rt.get("name"),
        "runtime_version": rt.get("version"),
        "free_bytes": b.get("free_bytes"),
        "temperature_c": b.get("temp_c"),
        "throttled": _d(b.get("throttled")).get("raw"),
    }


def _problems(board: dict) -> list[str]:
    out = []
    free = board.get("free_bytes")
    if isinstance(free, int) and free < MIN_FREE_BYTES:
        out.append(f"low disk space: {free >> 20} MiB free under the workdir (< {MIN_FREE_BYTES >> 20} MiB)")
    temp = board.get("temp_c")
    if isinstance(temp, (int, float)) and temp >= MAX_TEMP_C:
        out.append(f"hot: {temp:.0f} C (>= {MAX_TEMP_C:.0f} C, the board throttles)")
    flags = _d(board.get("throttled")).get("flags")
    if isinstance(flags, int) and flags & _THROTTLED_NOW:
        out.append(f"throttled now (vcgencmd get_throttled={flags:#x}): check the power supply and cooling")
    return out


def check(
    inventory: Inventory,
    targets: list[str],
    *,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: Callable | None = None,
    agent: AgentBundle | None = None,
) -> dict:
    """Reach each board, run the agent's `facts`; healthy = runtime present, disk, temperature fine."""
    devices = inventory.select(targets)
    agent = agent or build_agent()
    factory = transport_factory or _default_factory()
    started = time.monotonic()

    def job(d: DeviceSpec) -> dict:
        t0 = time.monotonic()
        base = {"device": d.name, "address": d.address, "transport": d.transport}
        try:
            with board_session(d, agent, factory, progress) as board:
                doc = board.call("facts", timeout=min(120.0, d.command_timeout))
        except BoardError as e:
            rec = failure_record(d, e, t0, base)
            facts = e.extra.get("board")
            rec.pop("board", None)
            return {**rec, "reachable": not e.unreachable, "healthy": False, **_facts_fields(facts), "problems": [e.message]}
        facts = _d(doc.get("board"))
        problems = _problems(facts)
        return {
            **base,
            "status": "ok" if not problems else "failed",
            "reachable": True,
            "healthy": not problems,
            **_facts_fields(facts),
            "problems": problems,
            "kind": "unhealthy" if problems else None,
            "error": f"{d.name}: {'; '.join(problems)}" if problems else None,
            "hint": None,
            "facts": facts,
            "seconds": round(time.monotonic() - t0, 3),
        }

    res = run_fleet(devices, job, parallel=parallel, progress=progress)
    healthy = all(r.get("healthy") for r in res["devices"])
    return {"ok": healthy, "action": "check", "devices": res["devices"], "seconds": round(time.monotonic() - started, 3)}


def _ms(x):
    return None if _num(x) is None else round(x * 1000.0, 6)


def _bench_fields(raw: dict) -> dict:
    lat = _d(raw.get("latency_s"))
    return {
        "latency_ms": {str(k): _ms(v) for k, v in lat.items() if k != "count"},
        "count": lat.get("count") if isinstance(lat.get("count"), int) else None,
        "init_ms": _ms(raw.get("init_seconds")),
        "first_invoke_ms": _ms(raw.get("first_invoke_seconds")),
        "peak_rss_bytes": _num(_d(raw.get("memory")).get("vmhwm_after_runs_bytes")),
        "runtime": raw.get("runtime"),
        "delegate": raw.get("delegate"),
        "power": raw.get("power"),
    }


def bench(
    inventory: Inventory,
    targets: list[str],
    artifact: Path,
    *,
    name: str | None = None,
    runs: int = 50,
    warmup: int = 5,
    min_seconds: float = 1.0,
    threads: list[int] | None = None,
    inputs: Path | None = None,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: Callable | None = None,
    agent: AgentBundle | None = None,
) -> dict:
    """Deploy if needed, then run the agent's bench once per device x threads.

    Returns {"ok", "devices": [{device, status, deploy, results: [{threads, ok, latency_ms, raw...}]}]}.
    """
    if runs < 1 or warmup < 0 or min_seconds < 0:
        raise ConfigError(f"bench needs runs >= 1, warmup >= 0, min_seconds >= 0 (got {runs}, {warmup}, {min_seconds})")
    if threads is not None and (not threads or any(t < 1 for t in threads)):
        raise ConfigError(f"--threads must be positive integers (got {threads})")
    if inputs is not None and not Path(inputs).is_file():
        raise DataError(f"{inputs}: inputs file not found", "pass a .npy file of model inputs")
    size = check_tflite(artifact)
    name = model_name(artifact, name)
    devices = inventory.select(targets)
    sha = file_sha256(artifact)
    agent = agent or build_agent()
    factory = transport_factory or _default_factory()
    started = time.monotonic()

    def job(d: DeviceSpec) -> dict:
        t0 = time.monotonic()
        results = []
        with board_session(d, agent, factory, progress) as board:
            dep = install_on(board, artifact, size, sha, name, progress)
            remote_inputs = board.upload_tmp(Path(inputs), ".npy") if inputs is not None else None
            try:
                for t in threads or [d.threads]:
                    if progress:
                        progress({"event": "bench", "device": d.name, "threads": t})
                    argv = ["--name", name, "--runs", str(runs), "--warmup", str(warmup), "--min-seconds", f"{min_seconds:g}"]
                    argv += [
                        "--threads",
                        str(t),
                        "--delegate",
                        d.delegate,
                        "--power",
                        d.power.agent_json(),
                        "--lock-timeout",
                        f"{d.lock_timeout:g}",
                    ]
                    if remote_inputs:
                        argv += ["--inputs", remote_inputs]
                    try:
                        raw = board.call("bench", *argv)
                    except BoardError as e:
                        results.append({"threads": t, "ok": False, "kind": e.kind, "error": e.message, "hint": e.hint})
                        if e.kind in ("connection_dropped", "command_timeout"):
                            break
                        continue
                    raw = _sane(raw, _BENCH_OBJECTS)
                    results.append({"threads": t, "ok": True, **_bench_fields(raw), "raw": raw})
            finally:
                if remote_inputs:
                    board.t.remove(remote_inputs)
            up = board.bytes_uploaded
        bad = [r for r in results if not r["ok"]]
        return {
            "device": d.name,
            "address": d.address,
            "status": "failed" if bad or not results else "ok",
            "deploy": dep["action"],
            "sha256": sha,
            "bytes_uploaded": up,
            "results": results,
            "error": bad[0]["error"] if bad else None,
            "hint": bad[0].get("hint") if bad else None,
            "kind": bad[0].get("kind") if bad else None,
            "seconds": round(time.monotonic() - t0, 3),
        }

    res = run_fleet(devices, job, parallel=parallel, progress=progress)
    for r in res["devices"]:
        r.setdefault("results", [])
    ok = all(r["status"] == "ok" for r in res["devices"])
    return {
        "ok": ok,
        "action": "bench",
        "artifact": str(artifact),
        "name": name,
        "sha256": sha,
        "runs": runs,
        "warmup": warmup,
        "min_seconds": min_seconds,
        "threads": threads,
        "counts": res["counts"],
        "devices": res["devices"],
        "seconds": round(time.monotonic() - started, 3),
    }


def predict(
    inventory: Inventory,
    device_name: str,
    model_name: str,
    inputs: Path,
    *,
    transport_factory: Callable | None = None,
    agent: AgentBundle | None = None,
) -> list[int]:
    """Class predictions (argmax) of the board's current `model_name` for each row of an .npy file."""
    if not Path(inputs).is_file():
        raise DataError(f"{inputs}: inputs file not found", "pass a .npy file of model inputs")
    d = inventory.get(device_name)
    agent = agent or build_agent()
    factory = transport_factory or _default_factory()
    with board_session(d, agent, factory) as board:
        remote = board.upload_tmp(Path(inputs), ".npy")
        try:
            doc = board.call(
                "predict",
                "--name",
                model_name,
                "--inputs",
                remote,
                "--threads",
                str(d.threads),
                "--delegate",
                d.delegate,
                "--lock-timeout",
                f"{d.lock_timeout:g}",
            )
        finally:
            board.t.remove(remote)
    preds = doc.get("predictions")
    if not isinstance(preds, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in preds):
        raise BoardError(
            d.name, "agent predict returned no list of class indices", "check the agent version on the board", kind="bad_output"
        )
    return preds
