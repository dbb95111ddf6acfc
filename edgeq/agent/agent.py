"""edgeq board agent: benchmarks and manages TFLite models on an edge board.

Shipped as one zipapp (edgeq-agent-<sha12>.pyz) and run as `python3 edgeq-agent-….pyz SUBCOMMAND ...`.
Needs only the stdlib, numpy (1.x or 2.x) and one TFLite runtime: ai_edge_litert, else tflite_runtime,
else tensorflow.lite. Python 3.9+. Never imports the rest of edgeq. Never invokes a shell.

Subcommands (every argument is plain argv):
    facts    [--workdir W]
    status   --workdir W --name N [--sha256 H]
    install  --workdir W --name N --blob PATH --sha256 H [--threads T] [--delegate D] [--lock-timeout S]
    rollback --workdir W --name N [--threads T] [--delegate D] [--lock-timeout S]
    bench    --workdir W (--name N | --model PATH) [--runs 50] [--warmup 5] [--min-seconds 1.0] [--max-seconds 0]
             [--threads 1] [--delegate xnnpack|none|edgetpu] [--inputs X.npy] [--seed 0] [--power JSON]
             [--lock-timeout 30]
    predict  --workdir W (--name N | --model PATH) --inputs X.npy [--batch 256] [--threads 1] [--lock-timeout 30]

Output: exactly one JSON object on stdout (one line), printed once at the end; diagnostics go to stderr.
Anything else that writes to file descriptor 1 (runtime logs) is redirected to stderr.
Success: {"ok": true, "protocol": 1, "command": ..., ...}, exit 0.
Failure: {"ok": false, "kind": KIND, "error": MESSAGE, "protocol": 1, ...extra}, exit code by kind:

    1   internal          a bug in the agent (traceback on stderr)
    2   usage             bad arguments; invalid_name (--name refused); bad_input (--inputs unusable)
    3   no_runtime        no TFLite runtime or numpy importable
    4   unloadable        the runtime cannot load/allocate the model; extra: runtime, op, op_version
    5   sha_mismatch      blob does not hash to --sha256; extra: expected, actual
    6   locked            W/lock held past --lock-timeout; extra: holder {pid, hostname, command, since}
    7   os_error          disk full, permissions, I/O; extra: errno, filename
    8   delegate_missing  --delegate edgetpu without a loadable libedgetpu.so.1
    9   not_found         nothing installed under --name / file missing; no_previous (rollback)
    130 interrupted       SIGINT

W/lock is an flock(): install, rollback, bench and predict hold it, so one measurement runs at a time and
the kernel releases it when a holder dies. Killed mid-run, the agent leaves nothing to clean.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
import time
import traceback

from . import boardfs, facts, power, tfl
from .codes import EXIT_CODES, PROTOCOL, AgentFailure


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise AgentFailure("usage", self.prog + ": " + message, usage=self.format_usage().strip())

    def print_help(self, file=None):
        super().print_help(sys.stderr)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative_float(text):
    value = float(text)
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgeq-agent", description="edgeq on-device benchmark agent (prints one JSON object)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(p, name_required=False, model=False):
        p.add_argument("--workdir", required=True, help="the agent's work dir on the board")
        if model:
            group = p.add_mutually_exclusive_group(required=True)
            group.add_argument("--name", help="installed model name (runs its current blob)")
            group.add_argument("--model", help="path of a .tflite file")
        else:
            p.add_argument("--name", required=name_required)

    def runtime_opts(p):
        p.add_argument("--threads", type=_positive_int, default=1)
        p.add_argument("--delegate", choices=tfl.DELEGATES, default="xnnpack")

    def lock_opt(p):
        p.add_argument("--lock-timeout", type=_non_negative_float, default=30.0, help="seconds to wait for W/lock")

    p = sub.add_parser("facts", help="board facts")
    p.add_argument("--workdir", default=os.path.join(os.path.expanduser("~"), ".edgeq-agent"))

    p = sub.add_parser("status", help="installed versions of a model")
    common(p, name_required=True)
    p.add_argument("--sha256")

    p = sub.add_parser("install", help="verify, load-check and activate an uploaded blob")
    common(p, name_required=True)
    p.add_argument("--blob", required=True, help="W/tmp/*.part or W/models/N/<sha256>.tflite")
    p.add_argument("--sha256", required=True)
    runtime_opts(p)
    lock_opt(p)

    p = sub.add_parser("rollback", help="swap current and previous")
    common(p, name_required=True)
    runtime_opts(p)
    lock_opt(p)

    p = sub.add_parser("bench", help="measure latency, memory and power")
    common(p, model=True)
    p.add_argument("--runs", type=_positive_int, default=50)
    p.add_argument("--warmup", type=_non_negative_int, default=5)
    p.add_argument("--min-seconds", type=_non_negative_float, default=1.0)
    p.add_argument("--max-seconds", type=_non_negative_float, default=0.0, help="stop early past this (0: never)")
    p.add_argument("--inputs", help=".npy file: one sample or N rows for the (first) input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--power", default=None, help='probe JSON, e.g. {"probe": "rpi5-pmic"}')
    runtime_opts(p)
    lock_opt(p)

    p = sub.add_parser("predict", help="argmax of output 0 for every row of --inputs")
    common(p, model=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--batch", type=_positive_int, default=256)
    runtime_opts(p)
    lock_opt(p)
    return parser


# ----------------------------------------------------------------------------------------------- helpers


def _np_version():
    return tfl.np.__version__ if tfl.np is not None else None


def _load_checker(rt, threads, delegate):
    def check(path) -> float:
        interp, _info, seconds = tfl.make_interpreter(rt, path, threads, delegate)
        del interp
        return seconds

    return check


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


def _model_doc(path, name, interp) -> dict:
    return {
        "path": path,
        "name": name,
        "sha256": boardfs.sha256_file(path),
        "size_bytes": os.path.getsize(path),
        "inputs": [tfl.describe_tensor(d) for d in interp.get_input_details()],
        "outputs": [tfl.describe_tensor(d) for d in interp.get_output_details()],
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


# ----------------------------------------------------------------------------------------------- commands


def cmd_facts(args) -> dict:
    try:
        rt = tfl.find_runtime()
    except AgentFailure as failure:
        board = facts.gather(args.workdir, None, _np_version())
        failure.extra["board"] = board
        raise
    return {"board": facts.gather(args.workdir, rt.info(), _np_version())}


def cmd_status(args) -> dict:
    boardfs.check_name(args.name)
    sha = boardfs.check_sha(args.sha256) if args.sha256 is not None else None
    store = boardfs.Store(args.workdir)
    store.ensure()
    return store.status(args.name, sha)


def cmd_install(args) -> dict:
    boardfs.check_name(args.name)
    sha = boardfs.check_sha(args.sha256)
    store = boardfs.Store(args.workdir)
    store.ensure()
    store.resolve_blob_arg(args.name, sha, args.blob)
    rt = tfl.find_runtime()
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "install " + args.name):
        doc = store.install(args.name, sha, args.blob, _load_checker(rt, args.threads, args.delegate))
    doc["runtime"] = rt.info()
    return doc


def cmd_rollback(args) -> dict:
    boardfs.check_name(args.name)
    store = boardfs.Store(args.workdir)
    store.ensure()
    rt = tfl.find_runtime()
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "rollback " + args.name):
        doc = store.rollback(args.name, _load_checker(rt, args.threads, args.delegate))
    doc["runtime"] = rt.info()
    return doc


def _bench_inputs(interp, args):
    """[(input index, [tensors...])] to feed; the first input takes --inputs, the others seeded random data."""
    np = tfl.np
    rng = np.random.default_rng(args.seed)
    details = interp.get_input_details()
    feeds = []
    for i, detail in enumerate(details):
        if args.inputs and i == 0:
            arr = tfl.to_model_dtype(tfl.load_npy(args.inputs), detail)
            feeds.append((detail["index"], tfl.split_samples(arr, detail)))
        else:
            feeds.append((detail["index"], [tfl.random_input(detail, rng)]))
    if args.inputs and len(details) > 1:
        print("edgeq-agent: --inputs feeds input 0 only; other inputs get seeded random data", file=sys.stderr)
    source = ("npy:" + args.inputs) if args.inputs else ("random(seed=" + str(args.seed) + ")")
    return feeds, source


def cmd_bench(args) -> dict:
    power_spec = power.parse_power_spec(args.power)
    store = boardfs.Store(args.workdir)
    store.ensure()
    if args.name is not None:
        boardfs.check_name(args.name)
    rt = tfl.find_runtime()
    np = tfl.np
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "bench"):
        path, name = _resolve_model(store, args)
        started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        board = facts.gather(args.workdir, rt.info(), np.__version__)
        hwm_before = facts.vmhwm_bytes()
        interp, delegate_info, init_seconds = tfl.make_interpreter(rt, path, args.threads, args.delegate)
        hwm_init = facts.vmhwm_bytes()
        model = _model_doc(path, name, interp)
        feeds, source = _bench_inputs(interp, args)
        for index, tensors in feeds:
            interp.set_tensor(index, tensors[0])
        cycling = [(index, tensors) for index, tensors in feeds if len(tensors) > 1]

        t = time.perf_counter()
        interp.invoke()
        first_invoke = time.perf_counter() - t
        for _ in range(args.warmup):
            interp.invoke()

        probe = power.make_probe(power_spec)
        idle = power.measure_idle(probe, power_spec) if probe is not None else None
        sampler = power.Sampler(probe, power_spec["interval_s"]) if probe is not None else None

        samples = []
        timed = 0.0
        step = 0
        perf = time.perf_counter
        invoke = interp.invoke
        stopped_by = "runs+min_seconds"
        if sampler is not None:
            sampler.start()
        window_start = perf()
        while len(samples) < args.runs or timed < args.min_seconds:
            if args.max_seconds and timed >= args.max_seconds:
                stopped_by = "max_seconds"
                break
            if cycling:
                step += 1
                for index, tensors in cycling:
                    interp.set_tensor(index, tensors[step % len(tensors)])
            t = perf()
            invoke()
            dt = perf() - t
            samples.append(dt)
            timed += dt
        window = perf() - window_start
        if sampler is not None:
            sampler.stop()
        hwm_runs = facts.vmhwm_bytes()
        after = facts.thermal_state()

    stats = latency_stats(samples)
    return {
        "model": model,
        "runtime": rt.info(),
        "threads": args.threads,
        "delegate": delegate_info,
        "inputs_source": source,
        "started_at": started_at,
        "init_seconds": init_seconds,
        "first_invoke_seconds": first_invoke,
        "warmup_runs": args.warmup,
        "runs_requested": args.runs,
        "min_seconds": args.min_seconds,
        "stopped_by": stopped_by,
        "timed_seconds": timed,
        "window_seconds": window,
        "latency_s": stats,
        "samples_s": [round(x, 9) for x in samples],
        "memory": {"vmhwm_before_init_bytes": hwm_before, "vmhwm_after_init_bytes": hwm_init, "vmhwm_after_runs_bytes": hwm_runs},
        "power": power.summarize(power_spec, probe, idle, sampler, stats["mean"]) if probe is not None else None,
        "board": board,
        "board_after": after,
    }


def _resize_batch(interp, detail, shape, batch, native) -> int:
    """Resize input 0 to `batch` rows; a model that refuses keeps its native batch size. Returns the batch used."""
    if batch == native:
        return native
    try:
        interp.resize_tensor_input(detail["index"], [batch] + shape[1:], strict=False)
        interp.allocate_tensors()
        return batch
    except Exception as exc:  # fixed-batch model: fall back to its own batch size
        print(
            "edgeq-agent: cannot resize the input to batch " + str(batch) + " (" + str(exc)[:200] + "); using " + str(native),
            file=sys.stderr,
        )
        interp.resize_tensor_input(detail["index"], shape, strict=False)
        interp.allocate_tensors()
        return native


def cmd_predict(args) -> dict:
    store = boardfs.Store(args.workdir)
    store.ensure()
    if args.name is not None:
        boardfs.check_name(args.name)
    rt = tfl.find_runtime()
    np = tfl.np
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "predict"):
        path, name = _resolve_model(store, args)
        interp, delegate_info, _ = tfl.make_interpreter(rt, path, args.threads, args.delegate)
        detail = interp.get_input_details()[0]
        out_index = interp.get_output_details()[0]["index"]
        shape = [int(d) for d in detail["shape"]]
        arr = tfl.load_npy(args.inputs)
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
        data = tfl.to_model_dtype(arr, detail)
        n = data.shape[0]
        start = time.perf_counter()
        native = shape[0] if shape and shape[0] > 0 else 1
        current = _resize_batch(interp, detail, shape, min(args.batch, n) if n else native, native)
        predictions = []
        for pos in range(0, n, current):
            chunk = data[pos : pos + current]
            rows = chunk.shape[0]
            if rows < current:  # the last chunk: pad to the tensor's batch and drop the padding's predictions
                pad = np.zeros((current - rows,) + chunk.shape[1:], dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            interp.set_tensor(detail["index"], chunk)
            interp.invoke()
            out = interp.get_tensor(out_index)
            predictions.extend(int(v) for v in out.reshape(current, -1).argmax(axis=1)[:rows])
        seconds = time.perf_counter() - start
    return {
        "predictions": predictions,
        "count": len(predictions),
        "batch_used": current,
        "seconds": seconds,
        "model": {"path": path, "name": name, "sha256": boardfs.sha256_file(path)},
        "runtime": rt.info(),
        "delegate": delegate_info,
    }


COMMANDS = {
    "facts": cmd_facts,
    "status": cmd_status,
    "install": cmd_install,
    "rollback": cmd_rollback,
    "bench": cmd_bench,
    "predict": cmd_predict,
}


# ----------------------------------------------------------------------------------------------- entry


def _clean(value):
    """Strict JSON: numpy scalars to Python, NaN/inf to null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return str(value)


def main(argv=None):
    """Run one subcommand; returns (exit code, JSON document). Never raises, never prints to stdout."""
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        doc = COMMANDS[command](args)
        out = {"ok": True, "protocol": PROTOCOL, "command": command}
        out.update(doc)
        return 0, out
    except AgentFailure as failure:
        doc = failure.to_doc()
        code = failure.exit_code
    except SystemExit as exc:  # argparse --help (printed to stderr)
        if not exc.code:
            return 0, {"ok": True, "protocol": PROTOCOL, "command": "help"}
        doc = AgentFailure("usage", "bad arguments (exit " + str(exc.code) + ")").to_doc()
        code = EXIT_CODES["usage"]
    except KeyboardInterrupt:
        doc = AgentFailure("interrupted", "interrupted by SIGINT").to_doc()
        code = EXIT_CODES["interrupted"]
    except OSError as exc:
        name = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno is not None else None
        where = (" (" + str(exc.filename) + ")") if exc.filename else ""
        doc = AgentFailure(
            "os_error",
            (exc.strerror or str(exc))
            + where
            + (" [" + name + "]" if name else "")
            + ("; free space on the board's work dir" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""),
            errno=name,
            filename=str(exc.filename) if exc.filename else None,
        ).to_doc()
        code = EXIT_CODES["os_error"]
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        doc = AgentFailure("internal", "agent bug: " + type(exc).__name__ + ": " + str(exc)[:500]).to_doc()
        code = EXIT_CODES["internal"]
    doc["command"] = command
    return code, doc


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def run(argv=None) -> int:
    """Process entry: keeps fd 1 for the single JSON line, pointing everything else at stderr."""
    sys.stdout.flush()
    out_fd = os.dup(1)
    os.dup2(2, 1)
    code, doc = main(argv)
    try:
        text = json.dumps(_clean(doc), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        code = EXIT_CODES["internal"]
        text = json.dumps(
            {"ok": False, "kind": "internal", "error": "unserializable result: " + str(exc)[:300], "protocol": PROTOCOL}
        )
    sys.stderr.flush()
    _write_all(out_fd, (text + "\n").encode("utf-8"))
    os.close(out_fd)
    return code


if __name__ == "__main__":
    sys.exit(run())
