"""Measurements for the board agent: bench (latency, memory, power) and predict (argmax per input row).

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.7+.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from . import benchctl, boardfs, boardstate, facts, floor, inputs, power, runtimes
from .codes import AgentFailure


def _resolve_model(store, args):
    """(path, name or None) of the model to run."""
    if args.model:
        path = os.path.abspath(args.model)
        if not os.path.isfile(path):
            raise AgentFailure("not_found", "model file " + args.model + " does not exist on the board")
        return path, None
    boardfs.check_name(args.name)
    current = store.pointer(args.name, "current")
    if current is None:
        raise AgentFailure("not_found", "no model installed under --name " + args.name + ": run install first")
    path = store.blob(args.name, current)
    if not path.is_file():
        raise AgentFailure("not_found", "the current blob " + str(path) + " of " + args.name + " is missing: install it again")
    return str(path), args.name


def _pinned_sha(path, args) -> str:
    """The sha256 of the file about to be loaded; sha_mismatch if the caller pinned another one (--sha256)."""
    actual = boardfs.sha256_file(path)
    want = getattr(args, "sha256", None)
    if want is not None and actual != boardfs.check_sha(want):
        raise AgentFailure(
            "sha_mismatch",
            "the model under "
            + str(args.name or args.model)
            + " hashes to "
            + actual
            + ", not "
            + want
            + " (--sha256): it changed since it was deployed; nothing was measured",
            expected=want,
            actual=actual,
        )
    return actual


def _model_doc(path, name, model, sha) -> dict:
    return {
        "path": path,
        "name": name,
        "sha256": sha,
        "size_bytes": os.path.getsize(path),
        "inputs": [inputs.describe_tensor(d) for d in model.inputs()],
        "outputs": [inputs.describe_tensor(d) for d in model.outputs()],
    }


def _percentile(sorted_values, q):
    """Linear interpolation between closest ranks (numpy's default method)."""
    n = len(sorted_values)
    pos = (n - 1) * q
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_stats(samples) -> dict:
    s = sorted(samples)
    n = len(s)
    mean = sum(s) / n
    return {
        "p50": _percentile(s, 0.50),
        "p90": _percentile(s, 0.90),
        "p99": _percentile(s, 0.99),
        "mean": mean,
        "std": math.sqrt(sum((x - mean) ** 2 for x in s) / n),
        "min": s[0],
        "max": s[-1],
        "count": n,
    }


def _bench_inputs(model, args):
    """[(input index, [tensors...])] to feed; the first input takes --inputs, the others seeded random data."""
    np: Any = runtimes.load_numpy()
    rng = np.random.default_rng(args.seed)
    details = model.inputs()
    feeds = []
    for i, detail in enumerate(details):
        if args.inputs and i == 0:
            arr = inputs.to_model_dtype(inputs.load_npy(args.inputs), detail)
            feeds.append((detail["index"], inputs.split_samples(arr, detail)))
        else:
            feeds.append((detail["index"], [inputs.random_input(detail, rng)]))
    if args.inputs and len(details) > 1:
        print("edgeq-agent: --inputs feeds input 0 only; other inputs get seeded random data", file=sys.stderr)
    source = ("npy:" + args.inputs) if args.inputs else ("random(seed=" + str(args.seed) + ")")
    return feeds, source


MAX_RAW_SAMPLES = 20000


def _timed_loop(model, cycling, args, sustained_s, window_s) -> dict:
    """The timed window: back-to-back invokes. `edges` are the sample indices where each `window_s` window
    of wall time starts (the trajectory): one compare per invoke, outside the timed region, no second list."""
    samples: list = []
    edges = [0]
    timed = 0.0
    step = 0
    perf = time.perf_counter
    run = model.run
    set_input = model.set_input
    runs, min_seconds, max_seconds = (1, sustained_s, 0.0) if sustained_s else (args.runs, args.min_seconds, args.max_seconds)
    stopped_by = "sustained" if sustained_s else "runs+min_seconds"
    window_start = perf()
    next_edge = window_start + window_s
    while len(samples) < runs or timed < min_seconds:
        if max_seconds and timed >= max_seconds:
            stopped_by = "max_seconds"
            break
        if cycling:
            step += 1
            for index, tensors in cycling:
                set_input(index, tensors[step % len(tensors)])
        t = perf()
        if t >= next_edge:
            edges.append(len(samples))
            next_edge += window_s * (1 + int((t - next_edge) // window_s))
        run()
        dt = perf() - t
        samples.append(dt)
        timed += dt
    window = perf() - window_start
    return {"samples": samples, "edges": edges, "timed": timed, "window": window, "stopped_by": stopped_by}


def _state_doc(before, during, after, args, controls, extra) -> dict:
    doc = {"before": before, "during": during, "after": after}
    # the 1-min load average still holds the previous session's threads (the host interleaves thread counts):
    # it tells us the most threads any of its sessions uses (own_load), and that much load counts as our own
    own = max(args.threads, int(controls.get("own_load") or 0))
    doc["flags"] = boardstate.flags(
        before,
        during,
        after,
        own,
        hot_temp_c=float(controls.get("hot_temp_c", boardstate.HOT_TEMP_C)),
        foreign_load=float(controls.get("foreign_load", boardstate.FOREIGN_LOAD)),
        cpu=extra.get("cpu"),
    )
    doc["foreign_load"] = [boardstate.foreign(before, own), boardstate.foreign(after, own)]
    doc.update((k, v) for k, v in extra.items() if v is not None)
    if (extra.get("cooldown") or {}).get("timed_out"):
        doc["flags"] = sorted(set(doc["flags"]) | {"cooldown_timeout"})
    return doc


def bench(args) -> dict:
    controls = benchctl.parse(getattr(args, "controls", None))
    power_spec = power.parse_power_spec(args.power)
    store = boardfs.Store(args.workdir)
    store.ensure()
    if args.name is not None:
        boardfs.check_name(args.name)
    # pinned before the interpreter exists: the runtime's worker threads inherit the mask
    affinity = benchctl.set_affinity(controls["cpu_affinity"]) if controls.get("cpu_affinity") else None
    rt = runtimes.open_runtime()
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "bench"):
        path, name = _resolve_model(store, args)
        sha = _pinned_sha(path, args)
        # cooled before anything of ours runs (the governor change and the model load heat the board)
        cool = benchctl.cooldown(controls["cooldown"]) if controls.get("cooldown") else None
        gov = benchctl.Governor(controls["governor"], boardstate.cpus_used(), store.root) if controls.get("governor") else None
        try:
            governor = gov.apply() if gov is not None else None
            doc = _measure(rt, path, name, sha, args, power_spec, controls)
        finally:
            if gov is not None:
                gov.restore()
    extra = {"cooldown": cool, "cpu_affinity": affinity, "governor": governor, "cpu": doc.pop("_cpu")}
    doc["state"] = _state_doc(doc.pop("_before"), doc.pop("_during"), doc.pop("_after"), args, controls, extra)
    return doc


def _first_runs(model, feeds, warmup: int) -> float:
    """Feed every input its first tensor, invoke once (returns its seconds), then the warm-up runs."""
    for index, tensors in feeds:
        model.set_input(index, tensors[0])
    t = time.perf_counter()
    model.run()
    first_invoke = time.perf_counter() - t
    for _ in range(warmup):
        model.run()
    return first_invoke


def _sampled_window(model, cycling, args, power_spec, controls) -> dict:
    """_timed_loop() with the board's state sampled through it (and power, when a probe is set), its
    snapshots before and after, and the power probe's idle reading taken first."""
    probe = power.make_probe(power_spec)
    idle = power.measure_idle(probe, power_spec) if probe is not None else None
    sampler = power.Sampler(probe, power_spec["interval_s"]) if probe is not None else None
    before = boardstate.snapshot()  # after warm-up: an on-demand governor has raised the clock by now
    state = boardstate.Sampler(float(controls.get("state_interval_s", 1.0)))
    if sampler is not None:
        sampler.start()
    state.start()
    window_s = float(controls.get("window_s") or 1.0)
    cpu_start, wall_start = boardstate.cpu_counters(), time.perf_counter()
    loop = _timed_loop(model, cycling, args, float(controls.get("sustained_s") or 0.0), window_s)
    cpu_end, wall_end = boardstate.cpu_counters(), time.perf_counter()
    during = state.stop()
    used = (getattr(model, "delegate", None) or {}).get("used")
    loop["cpu"] = boardstate.cpu_window(cpu_start, cpu_end, wall_end - wall_start, used not in boardstate.CPU_OFFLOADED)
    if sampler is not None:
        sampler.stop()
    loop.update(probe=probe, idle=idle, sampler=sampler, window_s=window_s, before=before, during=during)
    loop["after"] = boardstate.snapshot()
    return loop


def _measure(rt, path, name, sha, args, power_spec, controls) -> dict:
    np: Any = runtimes.load_numpy()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    board = facts.gather(args.workdir, rt.info(), np.__version__)
    hwm_before = facts.vmhwm_bytes()
    model = rt.load(path, args.threads, args.delegate)
    hwm_init = facts.vmhwm_bytes()
    model_doc = _model_doc(path, name, model, sha)
    feeds, source = _bench_inputs(model, args)
    cycling = [(index, tensors) for index, tensors in feeds if len(tensors) > 1]
    first_invoke = _first_runs(model, feeds, args.warmup)
    loop = _sampled_window(model, cycling, args, power_spec, controls)
    probe, idle, sampler, window_s = loop["probe"], loop["idle"], loop["sampler"], loop["window_s"]
    hwm_runs = facts.vmhwm_bytes()
    after = facts.thermal_state()
    harness = floor.harness_floor(rt, args.threads)  # after the window: it must not warm or cool the model's run

    samples = loop["samples"]
    stats = latency_stats(samples)
    stride = max(1, -(-len(samples) // MAX_RAW_SAMPLES))
    return {
        "model": model_doc,
        "runtime": rt.info(),
        "threads": args.threads,
        "delegate": model.delegate,
        "inputs_source": source,
        "started_at": started_at,
        "init_seconds": model.init_seconds,
        "first_invoke_seconds": first_invoke,
        "warmup_runs": args.warmup,
        "runs_requested": args.runs,
        "min_seconds": args.min_seconds,
        "stopped_by": loop["stopped_by"],
        "timed_seconds": loop["timed"],
        "window_seconds": loop["window"],
        "latency_s": stats,
        # every sample counts in the statistics; the raw list is thinned (every k-th, in time order) for
        # sub-microsecond models, which would otherwise ship megabytes of JSON per benchmark
        "samples_s": [round(x, 9) for x in samples[::stride]],
        "samples_stride": stride,
        "memory": {"vmhwm_before_init_bytes": hwm_before, "vmhwm_after_init_bytes": hwm_init, "vmhwm_after_runs_bytes": hwm_runs},
        "power": power.summarize(power_spec, probe, idle, sampler, stats["mean"])
        if probe is not None and idle is not None and sampler is not None
        else None,
        "board": board,
        "board_after": after,
        "harness_floor": harness,
        "pid": os.getpid(),  # each session is its own agent process: the pids tell them apart
        "trend": boardstate.trend(samples),
        "trajectory": boardstate.trajectory(loop["edges"], samples, window_s),
        "_before": loop["before"],
        "_during": loop["during"],
        "_after": loop["after"],
        "_cpu": loop["cpu"],
    }


def _resize_batch(model, detail, shape, batch, native) -> int:
    """Resize input 0 to `batch` rows; a model that refuses keeps its native batch size. Returns the batch used."""
    if batch == native:
        return native
    try:
        model.resize_input(detail["index"], [batch] + shape[1:])
        return batch
    except Exception as exc:  # fixed-batch model: fall back to its own batch size
        print(
            "edgeq-agent: cannot resize the input to batch " + str(batch) + " (" + str(exc)[:200] + "); using " + str(native),
            file=sys.stderr,
        )
        model.resize_input(detail["index"], shape)
        return native


def _input_rows(model, path):
    """(input 0's detail, its shape, the --inputs rows converted to its dtype)."""
    detail = model.inputs()[0]
    shape = [int(d) for d in detail["shape"]]
    arr = inputs.load_npy(path)
    if arr.ndim != len(shape) or list(arr.shape[1:]) != shape[1:]:
        raise AgentFailure(
            "bad_input",
            "inputs of shape "
            + str(list(arr.shape))
            + " are not rows of the model input shape "
            + str(shape)
            + ": pass an array of shape [N] + "
            + str(shape[1:]),
        )
    return detail, shape, inputs.to_model_dtype(arr, detail)


def predict(args) -> dict:
    store = boardfs.Store(args.workdir)
    store.ensure()
    if args.name is not None:
        boardfs.check_name(args.name)
    rt = runtimes.open_runtime()
    np: Any = runtimes.load_numpy()
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "predict"):
        path, name = _resolve_model(store, args)
        sha = _pinned_sha(path, args)
        model = rt.load(path, args.threads, args.delegate)
        out_index = model.outputs()[0]["index"]
        detail, shape, data = _input_rows(model, args.inputs)
        n = data.shape[0]
        start = time.perf_counter()
        native = shape[0] if shape and shape[0] > 0 else 1
        current = _resize_batch(model, detail, shape, min(args.batch, n) if n else native, native)
        predictions: list[Any] = []
        for pos in range(0, n, current):
            chunk = data[pos : pos + current]
            rows = chunk.shape[0]
            if rows < current:  # the last chunk: pad to the tensor's batch and drop the padding's predictions
                pad = np.zeros((current - rows,) + chunk.shape[1:], dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            model.set_input(detail["index"], chunk)
            model.run()
            out = model.tensor(out_index)
            predictions.extend(int(v) for v in out.reshape(current, -1).argmax(axis=1)[:rows])
        seconds = time.perf_counter() - start
    return {
        "predictions": predictions,
        "count": len(predictions),
        "batch_used": current,
        "seconds": seconds,
        "model": {"path": path, "name": name, "sha256": sha},
        "runtime": rt.info(),
        "delegate": model.delegate,
    }
