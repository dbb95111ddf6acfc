"""The load check before a model becomes current: load, allocate and run it once on zeros, in a forked child.

A model can load and allocate and still kill the process running it: tflite-runtime 2.14's arm64 kernels
segfault on TF 2.21's per-channel int8 FULLY_CONNECTED with few output channels. Doing it in a child turns
that crash into an "unloadable" failure instead of killing the agent mid-install, so the previous model stays
current and the orchestrator gets a reason; a model that never finishes (a WHILE that never ends) is killed.

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.7+.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import time

from . import inputs
from .codes import AgentFailure


def _run_on_zeros(model) -> None:
    for detail in model.inputs():
        model.set_input(detail["index"], inputs.zeros(detail))
    model.run()


def _die_with_parent() -> None:
    """Linux: SIGKILL this (forked) process when its parent dies, so a killed agent leaves no load check behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: S110 - not Linux/glibc: the parent's deadline still kills the group
        pass


def _child_setup(ppid: int) -> None:
    from . import boardfs

    for fd in list(boardfs.HELD_LOCK_FDS):  # the flock belongs to the agent alone: it must die with it
        try:
            os.close(fd)
        except OSError:
            pass
    os.setpgid(0, 0)
    _die_with_parent()
    if os.getppid() != ppid:  # the parent died before prctl
        os._exit(1)


def _child(rt, model_path, threads: int, delegate: str, ppid: int, rfd: int, wfd: int) -> None:
    """The forked child: report one JSON document on the pipe, never return into the agent."""
    code = 0
    try:
        _child_setup(ppid)
        os.close(rfd)
        faulthandler.disable()  # the parent names the signal; a stack dump here would only litter stderr
        try:
            model = rt.load(model_path, threads, delegate)
            t = time.perf_counter()
            _run_on_zeros(model)
            doc: dict | None = {"ok": True, "load_seconds": model.init_seconds, "invoke_seconds": time.perf_counter() - t}
        except AgentFailure as failure:
            doc = {"ok": False, "failure": failure.to_doc()}
        except Exception as exc:  # invoke() raising (RuntimeError from a kernel): the model cannot run here
            doc = {"ok": False, "invoke_error": type(exc).__name__ + ": " + str(exc)[:500]}
        data = json.dumps(doc).encode()
        while data:
            data = data[os.write(wfd, data) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _read_child(rfd: int, pid: int, timeout: float, name: str) -> bytes:
    """Everything the child writes, or kill its process group once `timeout` seconds have passed."""
    import select

    chunks: list = []
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(pid, 0)
            raise AgentFailure(
                "load_timeout",
                "the load check of "
                + name
                + " (allocate + one invoke on zeros) did not finish within "
                + format(timeout, "g")
                + " s and was killed: the model may loop forever (a WHILE that never ends)",
                load_timeout=timeout,
            )
        ready, _, _ = select.select([rfd], [], [], left)
        if ready:
            chunk = os.read(rfd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _wait_child(pid: int, rfd: int, timeout: float, name: str):
    """(what the child wrote, its wait status); a stop while it runs (deadline, host gone) kills it too."""
    from . import control

    try:
        os.setpgid(pid, pid)  # also here: whichever of parent and child runs first
    except OSError:
        pass
    control.add_child(pid)
    reaped = False
    try:
        try:
            data = _read_child(rfd, pid, timeout, name)
        except AgentFailure:
            reaped = True
            raise
        _, status = os.waitpid(pid, 0)
        reaped = True
    finally:
        os.close(rfd)
        control.drop_child(pid)
        if not reaped:
            try:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
    return data, status


def _crashed(rt, sig: int) -> AgentFailure:
    try:
        signame = signal.Signals(sig).name
    except ValueError:
        signame = "signal " + str(sig)
    return AgentFailure(
        "unloadable",
        "the " + rt.name + " " + str(rt.version) + " runtime loads the model but crashed (" + signame + ") running it "
        "once: this board cannot run it",
        runtime=rt.info(),
        crash={"signal": sig, "name": signame, "during": "load check (allocate + one invoke)"},
    )


def _verdict(rt, name: str, data: bytes, status: int) -> float:
    """The load seconds the child reported, or the failure it (or its death) stands for."""
    if os.WIFSIGNALED(status):
        raise _crashed(rt, os.WTERMSIG(status))
    try:
        doc = json.loads(data.decode() or "null")
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise AgentFailure("internal", "the load check of " + name + " exited (status " + str(status) + ") without a result")
    if doc.get("failure"):
        f = doc["failure"]
        extra = {k: v for k, v in f.items() if k not in ("ok", "kind", "error", "protocol")}
        raise AgentFailure(f.get("kind", "unloadable"), f.get("error", "load check failed"), **extra)
    if not doc.get("ok"):
        raise AgentFailure(
            "unloadable",
            "the " + rt.name + " runtime loads " + name + " but cannot run it: " + str(doc.get("invoke_error")),
            runtime=rt.info(),
        )
    return float(doc["load_seconds"])


def check_runs(rt, model_path, threads: int = 1, delegate: str = "xnnpack", timeout: float = 300.0) -> float:
    """Load, allocate and run once on zeros, in a forked child (see the module's doc). Returns the load seconds."""
    if not hasattr(os, "fork"):  # not a Linux board: check in-process (a crash still leaves current alone)
        model = rt.load(model_path, threads, delegate)
        _run_on_zeros(model)
        return model.init_seconds
    rfd, wfd = os.pipe()
    ppid = os.getpid()
    pid = os.fork()
    if pid == 0:
        _child(rt, model_path, threads, delegate, ppid, rfd, wfd)
    os.close(wfd)
    name = os.path.basename(str(model_path))
    data, status = _wait_child(pid, rfd, timeout, name)
    return _verdict(rt, name, data, status)
