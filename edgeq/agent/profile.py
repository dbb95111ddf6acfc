"""The profile command: per-op times of a model on LiteRT's CompiledModel (runtimes/litert_compiled.py).

A profiled compiled model and a twin built without the profiler run in ABBA blocks (profiled, twin, twin,
profiled; each block after its warm-up runs), never run by run: two XNNPACK threadpools taking turns every
run fight for the cores. Profiled runs go back to back in chunks and the profiler's buffer is read once per
chunk: reading between runs lets XNNPACK's workers go idle and inflated multi-threaded runs 2x in LiteRT's
prototype here. Each chunk starts with the warm-up runs again (their events are dropped) and stays far below
the profiler's 512K-entry buffer, which drops events when full.

A board that cannot profile (another runtime, the Edge TPU, an old glibc, a library without the symbols)
gets kind "unsupported" with a reason and a fix, and exit 0: nothing is measured, nothing made up.

Runs on boards: stdlib + numpy + ai-edge-litert, Python 3.7+.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from . import boardfs, facts, inputs, opstats, runtimes
from .codes import AgentFailure
from .measure import _pinned_sha, _resolve_model
from .runtimes import litert_compiled
from .runtimes.litert_capi import LiteRtError, Unsupported

CHUNK_EVENTS = 50000  # events read per chunk: ~5 MB copied out, a tenth of the profiler's buffer
LITERT = "ai-edge-litert"


def _install_fix() -> str:
    if sys.version_info < (3, 10):  # noqa: UP036 - the agent runs on the board's Python (3.7+), not edgeq's
        return litert_compiled.install_fix()
    return "`edgeq devices setup` can install ai-edge-litert on this board (LiteRT's CompiledModel times each op)"


def _choose(rt, delegate: str):
    """(the runtime that would profile, or the board's own; Unsupported or None)."""
    if delegate == "edgetpu":
        return rt, Unsupported(
            "Edge TPU delegate: ops run on the TPU, not profiled (LiteRT's CPU profiler sees one opaque TPU op)",
            "profile the CPU variant of the model (--delegate xnnpack); the Edge TPU compiler's log lists the TPU ops",
        )
    if delegate == "none":
        return rt, Unsupported(
            "--delegate none: LiteRT's CompiledModel runs its CPU ops through XNNPACK, and its profiler has no "
            "builtin-kernels-only mode",
            "profile with --delegate xnnpack",
        )
    wanted = runtimes._wanted()
    if rt.name == LITERT or not wanted or LITERT in wanted:
        try:
            # also when the board's runtime fell back from ai-edge-litert (its Interpreter did not import): its
            # C library may still load, or say precisely why not (an old glibc)
            compiled = litert_compiled.open_runtime()
        except Exception:  # noqa: S110 - ai_edge_litert not importable: the board's runtime answers below
            compiled = None
        if compiled is not None:
            return compiled, compiled.unsupported
    return rt, Unsupported(
        rt.name + " " + str(rt.version) + " has no profiler hook: its Interpreter API gives no per-op times", _install_fix()
    )


def _tensors_doc(model) -> dict:
    """The loaded model's inputs and outputs (shape as run, shape_signature with -1 for dynamic) and its ops."""
    keys = ("name", "dtype", "shape", "shape_signature")
    return {
        "inputs": [{k: d[k] for k in keys} for d in model.inputs()],
        "outputs": [{k: d[k] for k in keys} for d in model.outputs()],
        "ops": [op["op_name"] for op in model.ops()],
    }


def _feed(models, args) -> str:
    """Seeded random data into every input of each model (the same data in both)."""
    np: Any = runtimes.load_numpy()
    rng = np.random.default_rng(args.seed)
    for detail in models[0].inputs():
        value = inputs.random_input(detail, rng)
        for model in models:
            model.set_input(detail["index"], value)
    return "random(seed=" + str(args.seed) + ")"


def _timed(run, n: int, walls: list) -> None:
    perf = time.perf_counter
    for _ in range(n):
        t = perf()
        run()
        walls.append((perf() - t) * 1e6)


def _profiled_block(model, n: int, warmup: int, chunk: int, samples, walls: list) -> None:
    """n profiled runs in chunks of at most `chunk`, each chunk after `warmup` runs whose events are dropped."""
    while n > 0:
        k = min(n, chunk)
        model.restart_profiler()
        for _ in range(warmup):
            model.run()
        _timed(model.run, k, walls)
        samples.add_chunk(model.profiler_events(), warmup + k, dropped=warmup)  # copied out before the next reset
        n -= k


def _events_per_run(model) -> int:
    """Events one run records (also a warm-up run): sizes the chunks."""
    model.restart_profiler()
    model.run()
    return max(1, len(model.profiler_events()))


def _abba(profiled, plain, args) -> tuple:
    """(Samples of the profiled runs, their wall µs, the twin's wall µs, runs per chunk)."""
    chunk = max(1, CHUNK_EVENTS // _events_per_run(profiled) - args.warmup)
    samples = opstats.Samples()
    walls: list = []
    plain_walls: list = []
    first = args.runs // 2
    for kind, n in (("profiled", first), ("plain", first), ("plain", args.runs - first), ("profiled", args.runs - first)):
        if n == 0:
            continue
        if kind == "plain":
            for _ in range(args.warmup):
                plain.run()
            _timed(plain.run, n, plain_walls)
        else:
            _profiled_block(profiled, n, args.warmup, chunk, samples, walls)
    return samples, walls, plain_walls, chunk


def _timing(values) -> dict:
    doc = opstats.summary(values)
    kept, stride = opstats.thinned([round(v, 1) for v in values])
    doc.update(samples=kept, samples_stride=stride)
    return doc


def _results(samples, walls, plain_walls, model_ops) -> dict:
    rows = opstats.op_rows(samples, model_ops)
    invoked, wall, plain = _timing(samples.invoke_us), _timing(walls), _timing(plain_walls)
    overhead = round(wall["p50"] - plain["p50"], 1) if wall["p50"] is not None and plain["p50"] is not None else None
    op_sum = sum(r["p50_us"] or 0.0 for r in rows)
    return {
        "invoke_us": invoked,
        "run_wall_us": wall,
        "unprofiled_invoke_us": plain,
        "overhead_us": overhead,
        "coverage": opstats.coverage(rows, invoked["p50"]),
        "coverage_unprofiled": round(op_sum / plain["p50"], 4) if plain["p50"] else None,
        "ops": rows,
        "mapping": {m: sum(1 for r in rows if r["mapping"] == m) for m in ("exact", "guess", "none")},
        "sections": len(set(r["section"] for r in rows if r["source"] == "xnnpack")),
        "op_events_per_run": sorted(samples.op_events_per_run),
        "other_events_us": {tag: opstats.summary(v) for tag, v in samples.other.items()},
    }


def _measure(compiled, path, args) -> dict:
    profiled = plain = None
    try:
        profiled = compiled.load(path, args.threads, profiling=True)
        plain = compiled.load(path, args.threads)
        source = _feed([profiled, plain], args)
        doc = {"model": _tensors_doc(profiled), "delegate": profiled.delegate, "inputs_source": source}
        doc.update(init_seconds=profiled.init_seconds, fully_accelerated=profiled.fully_accelerated())
        samples, walls, plain_walls, chunk = _abba(profiled, plain, args)
        doc.update(_results(samples, walls, plain_walls, profiled.file.ops))
        doc.update(chunk_runs=chunk, samples_cap=opstats.SAMPLES_CAP)
        return doc
    finally:
        for model in (plain, profiled):
            if model is not None:
                model.close()


def _unsupported(doc: dict, exc: Unsupported) -> dict:
    doc.update(kind="unsupported", reason=exc.reason, fix=exc.fix)
    return doc


def profile(args) -> dict:
    store = boardfs.Store(args.workdir)
    store.ensure()
    if args.name is not None:
        boardfs.check_name(args.name)
    rt = runtimes.open_runtime()
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "profile"):
        path, name = _resolve_model(store, args)
        sha = _pinned_sha(path, args)
        chosen, problem = _choose(rt, args.delegate)
        doc = {
            "kind": "ok",
            "model": {"path": path, "name": name, "sha256": sha, "size_bytes": os.path.getsize(path)},
            "runtime": chosen.info(),
            "describe": chosen.describe(),
            "threads": args.threads,
            "delegate": {"requested": args.delegate},
            "warmup_runs": args.warmup,
            "runs_requested": args.runs,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "board": facts.gather(args.workdir, chosen.info(), runtimes.numpy_version()),
        }
        if problem is not None:
            return _unsupported(doc, problem)
        try:
            measured = _measure(chosen, path, args)
        except Unsupported as exc:
            return _unsupported(doc, exc)
        except opstats.EventError as exc:
            return _unsupported(doc, Unsupported(str(exc), "profile a model without control flow (WHILE/IF subgraphs)"))
        except LiteRtError as exc:
            raise AgentFailure(
                "unloadable",
                "LiteRT's CompiledModel cannot run " + os.path.basename(path) + ": " + str(exc),
                runtime=chosen.info(),
            ) from None
    doc["model"].update(measured.pop("model"))
    doc.update(measured)
    return doc
