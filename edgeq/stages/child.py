"""Work that must run in a fresh Python process: quantization-aware training (qat_worker.py) and the PyTorch
conversion (torchsrc.py). One protocol for both sides.

Parent, run_child(): writes the job (JSON) to a file, starts `python -m MODULE JOB`, relays the child's
progress lines to the stage's log (every other line of its output is kept for a crash report, and shown with
--debug), stops the child on Ctrl-C or SIGTERM, and turns its outcome into the stage's metrics or the same
EdgeqError class, message and hint the child raised.

Child, child_main(): reads the job, watches its parent, calls the work function with a `say` for progress
lines, and writes the outcome atomically to the job's result file.

The child runs in its own session, so a terminal's Ctrl-C reaches only edgeq, which stops it; and so
nothing stops it when edgeq itself dies (kill -9, the OOM killer). watch_parent() makes it exit then: on
Linux the kernel sends it SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG), and everywhere a daemon
thread compares os.getppid() with the parent's pid once a second (a re-parented child sees another pid).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, cast

from edgeq import errors
from edgeq.errors import EdgeqError
from edgeq.stages.quiet import DEBUG_ENV

MARK = "@@edgeq-child "  # starts a child's progress lines; everything else on its stdout is its libraries' output
TERM_GRACE_S = 5.0  # TF may take a moment to leave a fit() loop on SIGTERM before it is killed
KEPT_LINES = 60  # the child's own output shown when it crashes
PARENT_POLL_S = 1.0
ORPHAN_EXIT = 143  # the child's exit status when the poll finds its parent gone (as if SIGTERMed)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

Work = Callable[[dict, Callable[[str], None]], dict]


def run_child(
    module: str,
    job: dict,
    work_dir: Path,
    log: Callable[[str], None],
    *,
    name: str,
    died: str,
    error: type[EdgeqError],
    prefix: str = "",
    env: Mapping[str, str] | None = None,
) -> dict:
    """Run `python -m module` on job in a child process; return the dict its work function returned.

    name: the job and result files' stem in work_dir (NAME-job.json, NAME-result.json).
    died: what failed when the child leaves no result (a crash, a kill), e.g. "variant int8: the QAT process".
    error: the class raised for such a crash, and for an error whose class edgeq does not know.
    prefix: put before the message of an error the child raised (e.g. "variant int8: ").
    env: set in the child's environment on top of this process's.
    """
    job_file, result_file = work_dir / f"{name}-job.json", work_dir / f"{name}-result.json"
    job_file.write_text(json.dumps({"job": job, "result_file": str(result_file), "parent_pid": os.getpid()}))
    try:
        tail = relay([sys.executable, "-m", module, str(job_file)], log, env)
    finally:
        job_file.unlink(missing_ok=True)
    if not result_file.exists():
        raise error(
            f"{died} died without a result; its last output:\n" + "\n".join(tail),
            "rerun with --debug to see all of its output",
        )
    result = json.loads(result_file.read_text())
    result_file.unlink()
    if not result.pop("ok"):
        raise error_from(result, error, prefix)
    return result["result"]


def error_from(outcome: dict, default: type[EdgeqError], prefix: str = "") -> EdgeqError:
    """The EdgeqError a child reported ({"error": class name, "message", "hint"}): the same class when edgeq has it."""
    cls = getattr(errors, outcome.get("error") or "", None)
    if not (isinstance(cls, type) and issubclass(cls, EdgeqError)):
        cls = default
    return cls(prefix + outcome["message"], outcome.get("hint"))


def relay(argv: list[str], log: Callable[[str], None], env: Mapping[str, str] | None = None) -> list[str]:
    """Run argv, relay its progress lines (MARK ...) to log; return its last other lines. Ctrl-C ends it."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    debug = bool(os.environ.get(DEBUG_ENV))
    tail: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
    proc = subprocess.Popen(  # noqa: S603 - our own module, no shell
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=full_env,
        start_new_session=True,  # see the module docstring
    )
    out = cast(IO[str], proc.stdout)  # stdout=PIPE
    try:
        for line in out:
            line = line.rstrip("\n")
            if line.startswith(MARK):
                log(line[len(MARK) :])
            else:
                tail.append(line)
                if debug:
                    log(line)
        proc.wait()
    except BaseException:
        stop(proc)
        raise
    finally:
        out.close()
    return list(tail)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the child's process group (it leads its own session), SIGKILL after TERM_GRACE_S."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(TERM_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def child_main(argv: list[str], work: Work) -> int:
    """A child's main: `sys.exit(child_main(sys.argv[1:], work))`. work(job, say) returns the stage's metrics
    or raises an EdgeqError; any other exception is a bug: its traceback goes to the output the parent keeps."""
    envelope = json.loads(Path(argv[0]).read_text())
    watch_parent(envelope["parent_pid"])
    result_file = Path(envelope["result_file"])
    # a dup of the pipe the parent reads: progress still reaches it while a library's output is
    # redirected (edgeq.stages.quiet.captured_output points fd 1 at a temp file)
    progress = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")

    def say(msg: str) -> None:
        sys.stdout.flush()  # keeps the order of lines printed before this one
        progress.write(MARK + msg + "\n")

    try:
        outcome: dict = {"ok": True, "result": work(envelope["job"], say)}
    except EdgeqError as e:  # keeps its class (the exit code), message and hint
        outcome = {"ok": False, "error": type(e).__name__, "message": e.message, "hint": e.hint}
    finally:
        progress.close()
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(outcome))
    os.replace(tmp, result_file)
    return 0 if outcome["ok"] else 3


def watch_parent(parent_pid: int, deathsig: bool = True) -> None:
    """Exit when the process parent_pid (this one's parent when it started) is no longer its parent.

    deathsig: on Linux, also ask the kernel for SIGKILL when the parent dies (immediate, and works while a
    native call holds the GIL, which would stall the polling thread).
    """
    if deathsig and sys.platform.startswith("linux"):
        _set_parent_death_signal(signal.SIGKILL)
    # checked after the prctl: a parent that died before it never sends the signal
    if os.getppid() != parent_pid:
        os._exit(ORPHAN_EXIT)

    def poll() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(ORPHAN_EXIT)

    threading.Thread(target=poll, name="edgeq-watch-parent", daemon=True).start()


def _set_parent_death_signal(sig: int) -> bool:
    """prctl(PR_SET_PDEATHSIG, sig) through libc; False where libc or prctl is not there (the poll remains).

    The kernel sends it when the thread that started this process exits: run_child's caller blocks in
    relay() until the child ends, so that thread outlives it.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
