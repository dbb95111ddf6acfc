"""edgeq board agent: benchmarks and manages TFLite models on an edge board.

Shipped as one zipapp (edgeq-agent-<sha12>.pyz) and run as `python3 edgeq-agent-….pyz SUBCOMMAND ...`.
Needs only the stdlib, numpy (1.x or 2.x) and one TFLite runtime: ai_edge_litert, else tflite_runtime,
else tensorflow.lite (edgeq.agent.runtimes). Python 3.7+. Never imports the rest of edgeq. Never invokes a shell.

Subcommands (every argument is plain argv):
    facts    [--workdir W]
    status   --workdir W --name N [--sha256 H]
    install  --workdir W --name N --blob PATH --sha256 H [--threads T] [--delegate D] [--lock-timeout S]
    rollback --workdir W --name N [--from H] [--undo-rollback] [--threads T] [--delegate D] [--lock-timeout S]
    bench    --workdir W (--name N | --model PATH) [--runs 50] [--warmup 5] [--min-seconds 1.0] [--max-seconds 0]
             [--threads 1] [--delegate xnnpack|none|edgetpu] [--inputs X.npy] [--seed 0] [--power JSON]
             [--lock-timeout 30] [--sha256 H] [--controls JSON]
    predict  --workdir W (--name N | --model PATH) --inputs X.npy [--batch 256] [--threads 1] [--lock-timeout 30]
             [--sha256 H]
    profile  --workdir W (--name N | --model PATH) [--runs 50] [--warmup 5] [--threads 1] [--delegate D] [--seed 0]
             [--lock-timeout 30] [--sha256 H]
profile (edgeq.agent.profile) times each op on LiteRT's CompiledModel; a board that cannot gets "kind":
"unsupported" with "reason" and "fix" (exit 0), one that can "kind": "ok" with per-op rows.
bench --controls (edgeq.agent.benchctl): cooldown, cpu_affinity, governor, sustained_s, window_s,
state_interval_s, hot_temp_c, foreign_load; its "state" has the board's readings before, during and after
the timed window, its "cpu" (process CPU / wall, steal, cgroup throttling: cpu_starved) and the session's
flags (edgeq.agent.boardstate); "trend" and "trajectory" the latency's course.
bench also times a near no-op model after its timed window ("harness_floor": p50_s, min_s, runs; or error)
and reports its own "pid" (the host runs one bench per session: each a fresh process and interpreter).
Every subcommand also takes --deadline S (stop by itself, releasing W/lock, after S seconds), --watch-stdin
(stop when stdin closes: the host's SSH channel went away) and --load-timeout S (kill the load check).

Output: exactly one JSON object on stdout (one line), printed once at the end; diagnostics go to stderr.
A success also carries "clock": {"start", "end"}, the board's wall clock (epoch s) when the agent started and
answered: the host records its own time and compares (a board without RTC or NTP may be a day off).
Anything else that writes to file descriptor 1 (runtime logs) is redirected to stderr.
Success: {"ok": true, "protocol": 1, "command": ..., ...}, exit 0.
Failure: {"ok": false, "kind": KIND, "error": MESSAGE, "protocol": 1, ...extra}, exit code by kind:

    1   internal          a bug in the agent (traceback on stderr)
    2   usage             bad arguments; invalid_name (--name refused); bad_input (--inputs unusable)
    3   no_runtime        no TFLite runtime or numpy importable
    4   unloadable        the runtime cannot load/allocate the model, or crashes running it once (install,
                          rollback: checked in a forked child); extra: runtime, op, op_version, crash
    4   load_timeout      that check did not finish within --load-timeout: its process group was killed
    5   sha_mismatch      blob (or, for bench/predict, the model run) does not hash to --sha256; extra: expected, actual
    6   locked            W/lock held past --lock-timeout; extra: holder {pid, hostname, command, since}
    7   os_error          disk full, permissions, I/O; extra: errno, filename
    8   delegate_missing  --delegate edgetpu without a loadable libedgetpu.so.1
    9   not_found         nothing installed under --name / file missing; no_previous (rollback)
    10  not_current       rollback --from H while current is another version (nothing changed); extra: current
    10  rolled_back       rollback (no --from) while current was put there by a rollback: it would undo that one
                          (nothing changed; --undo-rollback allows it); extra: current, rolled_back_from, rolled_back_at
    11  deadline          --deadline passed: stopped, W/lock released
    12  old_python        the board's python is older than 3.7 (the zipapp's __main__ checks before importing)
    13  unsupported       the runtime lacks what the command needs (tensors: preserved intermediate tensors)
    130 interrupted       SIGINT, SIGTERM, SIGHUP, or stdin closed under --watch-stdin

W/lock is an flock(): install, rollback, bench and predict hold it, so one measurement runs at a time and
the kernel releases it when a holder dies. Killed mid-run, the agent leaves nothing to clean but a cpufreq
governor it set (bench --controls governor): W/governor.json records the old one, and the next command
with that work dir puts it back once W/lock is free.
"""

from __future__ import annotations

import argparse
import errno
import faulthandler
import json
import math
import os
import sys
import time
import traceback

from . import boardfs, control, facts, runtimes
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
        p.add_argument("--delegate", choices=runtimes.DELEGATES, default="xnnpack")

    def lock_opt(p):
        p.add_argument("--lock-timeout", type=_non_negative_float, default=30.0, help="seconds to wait for W/lock")

    def control_opts(p):
        p.add_argument("--deadline", type=_non_negative_float, default=0.0, help="stop (releasing W/lock) after S s (0: never)")
        p.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes (the host's SSH channel)")
        p.add_argument("--load-timeout", type=_non_negative_float, default=300.0, help="kill the load check after S s")

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
    p.add_argument("--from", dest="from_sha", help="only if current is this sha256 (compare-and-swap)")
    p.add_argument("--undo-rollback", action="store_true", help="allow undoing a rollback (current came from one)")
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
    p.add_argument("--sha256", help="refuse to measure unless the model hashes to this")
    p.add_argument("--controls", default=None, help='bench controls JSON, e.g. {"cooldown": {"seconds": 5}}')
    runtime_opts(p)
    lock_opt(p)

    p = sub.add_parser("tensors", help="every op's output tensors for each row of --inputs (numeric check)")
    common(p, model=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--sha256", help="refuse unless the model hashes to this")
    p.add_argument("--threads", type=_positive_int, default=1)
    lock_opt(p)

    p = sub.add_parser("profile", help="per-op times on LiteRT's CompiledModel (or why this board cannot)")
    common(p, model=True)
    p.add_argument("--runs", type=_positive_int, default=50)
    p.add_argument("--warmup", type=_non_negative_int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sha256", help="refuse to profile unless the model hashes to this")
    runtime_opts(p)
    lock_opt(p)

    p = sub.add_parser("predict", help="argmax of output 0 for every row of --inputs")
    common(p, model=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--batch", type=_positive_int, default=256)
    p.add_argument("--sha256", help="refuse to predict unless the model hashes to this")
    runtime_opts(p)
    lock_opt(p)
    for p in sub.choices.values():
        control_opts(p)
    return parser


# ----------------------------------------------------------------------------------------------- helpers


def _load_checker(rt, args):
    from . import loadcheck

    def check(path) -> float:
        # load + one invoke in a child process: some runtimes accept a model and then crash running it
        return loadcheck.check_runs(rt, path, args.threads, args.delegate, timeout=args.load_timeout)

    return check


# ----------------------------------------------------------------------------------------------- commands


def cmd_facts(args) -> dict:
    try:
        rt = runtimes.open_runtime()
    except AgentFailure as failure:
        board = facts.gather(args.workdir, None, runtimes.numpy_version())
        failure.extra["board"] = board
        raise
    return {"board": facts.gather(args.workdir, rt.info(), runtimes.numpy_version())}


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
    rt = runtimes.open_runtime()
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "install " + args.name):
        doc = store.install(args.name, sha, args.blob, _load_checker(rt, args))
    doc["runtime"] = rt.info()
    return doc


def cmd_rollback(args) -> dict:
    boardfs.check_name(args.name)
    if args.from_sha is not None:
        args.from_sha = boardfs.check_sha(args.from_sha)
    store = boardfs.Store(args.workdir)
    store.ensure()
    rt = runtimes.open_runtime()
    with boardfs.WorkdirLock(store.root / "lock", args.lock_timeout, "rollback " + args.name):
        doc = store.rollback(args.name, _load_checker(rt, args), expect=args.from_sha, undo=args.undo_rollback)
    doc["runtime"] = rt.info()
    return doc


# measure and numeric are imported when their command runs: every call pays the zipapp's compile of what it
# imports (a zip holds no .pyc), and facts, status and install need neither


def _bench(args) -> dict:
    from . import measure

    return measure.bench(args)


def _predict(args) -> dict:
    from . import measure

    return measure.predict(args)


def _tensors(args) -> dict:
    from . import numeric

    return numeric.tensors(args)


def _profile(args) -> dict:
    from . import profile

    return profile.profile(args)


COMMANDS = {
    "facts": cmd_facts,
    "status": cmd_status,
    "install": cmd_install,
    "rollback": cmd_rollback,
    "bench": _bench,
    "predict": _predict,
    "tensors": _tensors,
    "profile": _profile,
}


# ----------------------------------------------------------------------------------------------- entry


def _restore_governor(workdir) -> None:
    # a bench killed by SIGKILL (the OOM killer, a host's kill -9) left the cpufreq governor it set and the old
    # values in W/governor.json (edgeq.agent.benchctl): the next command puts them back; a stat when absent
    if workdir and os.path.lexists(os.path.join(workdir, "governor.json")):
        from . import benchctl

        benchctl.recover(workdir)


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
    started = time.time()
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        control.arm(args.deadline, args.watch_stdin)
        _restore_governor(getattr(args, "workdir", None))
        doc = COMMANDS[command](args)
        out = {"ok": True, "protocol": PROTOCOL, "command": command}
        out.update(doc)
        # the board's wall clock around the work: the host compares it with its own (edgeq.fleet.clock)
        out["clock"] = {"start": round(started, 3), "end": round(time.time(), 3)}
        return 0, out
    except AgentFailure as failure:
        doc = failure.to_doc()
        code = failure.exit_code
    except SystemExit as exc:  # argparse --help (printed to stderr)
        if not exc.code:
            return 0, {"ok": True, "protocol": PROTOCOL, "command": "help"}
        doc = AgentFailure("usage", "bad arguments (exit " + str(exc.code) + ")").to_doc()
        code = EXIT_CODES["usage"]
    except control.Stop as stop:
        doc = AgentFailure(stop.kind, stop.message).to_doc()
        code = EXIT_CODES[stop.kind]
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
    # a runtime that segfaults leaves "Fatal Python error: Segmentation fault" and the Python stack on
    # stderr: the orchestrator then reports a runtime crash instead of an unexplained killed agent
    faulthandler.enable(file=sys.stderr)
    control.set_output(out_fd)
    code, doc = main(argv)
    control.finished()
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
