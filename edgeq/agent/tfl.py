"""TFLite runtime selection, interpreter creation and input preparation for the board agent.

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.9+, numpy 1.x or 2.x.
"""

from __future__ import annotations

import faulthandler
import importlib
import json
import os
import re
import signal
import time

from .codes import AgentFailure

np = None  # set by load_numpy(): `status` (every deploy) never needs numpy, and importing it was most of its run time


def load_numpy():
    """numpy, imported on first need (None if missing: find_runtime reports kind "no_runtime")."""
    global np
    if np is None:
        try:
            import numpy
        except ImportError:
            return None
        np = numpy
    return np


# (name reported, module to import, distributions to ask importlib.metadata for the version)
RUNTIMES = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", ("ai-edge-litert", "ai-edge-litert-nightly")),
    ("tflite-runtime", "tflite_runtime.interpreter", ("tflite-runtime", "tflite-runtime-nightly")),
    ("tensorflow", "tensorflow", ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64", "tf-nightly", "tensorflow-intel")),
)
RUNTIME_ENV = "EDGEQ_AGENT_RUNTIME"  # optional comma list restricting RUNTIMES, e.g. "tflite-runtime"
EDGETPU_LIBRARY = "libedgetpu.so.1"
DELEGATES = ("xnnpack", "none", "edgetpu")

_OP_PATTERNS = (
    re.compile(r"builtin opcode '([A-Za-z0-9_]+)' version '(\d+)'"),
    re.compile(r"unresolved custom op: ([A-Za-z0-9_]+(?:[.\-][A-Za-z0-9_]+)*)"),
)


class Runtime:
    """The TFLite runtime found on this board: Interpreter, load_delegate and OpResolverType (or None)."""

    def __init__(self, name: str, version: str | None, interpreter_cls, load_delegate, op_resolver_type):
        self.name = name
        self.version = version
        self.Interpreter = interpreter_cls
        self.load_delegate = load_delegate
        self.OpResolverType = op_resolver_type

    def info(self) -> dict:
        return {"name": self.name, "version": self.version}


def _dist_version(dists, module) -> str | None:
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        metadata = None  # type: ignore[assignment]
    if metadata is not None:
        for dist in dists:
            try:
                return metadata.version(dist)
            except Exception:  # noqa: S112 - PackageNotFoundError or a broken dist-info: try the next name
                continue
    version = getattr(module, "__version__", None)
    return str(version) if version is not None else None


def _load(name: str, module_name: str, dists) -> Runtime:
    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        lite = tf.lite
        return Runtime(
            name,
            _dist_version(dists, tf),
            lite.Interpreter,
            lite.experimental.load_delegate,
            getattr(lite.experimental, "OpResolverType", None),
        )
    mod = importlib.import_module(module_name)
    top = importlib.import_module(module_name.split(".")[0])
    return Runtime(name, _dist_version(dists, top), mod.Interpreter, mod.load_delegate, getattr(mod, "OpResolverType", None))


def find_runtime() -> Runtime:
    """The first importable runtime: ai-edge-litert, tflite-runtime, tensorflow (or those named in $EDGEQ_AGENT_RUNTIME)."""
    if load_numpy() is None:
        raise AgentFailure("no_runtime", "numpy is not importable on this board: install it (pip install numpy)")
    wanted = [w.strip() for w in os.environ.get(RUNTIME_ENV, "").split(",") if w.strip()]
    tried = {}
    for name, module_name, dists in RUNTIMES:
        if wanted and name not in wanted:
            continue
        try:
            return _load(name, module_name, dists)
        except Exception as exc:  # tflite_runtime built for numpy 1 raises ImportError/AttributeError under numpy 2
            tried[name] = type(exc).__name__ + ": " + str(exc)[:300]
    raise AgentFailure(
        "no_runtime",
        "no TFLite runtime importable on this board: install ai-edge-litert (pip install ai-edge-litert) "
        "or tflite-runtime (pip install tflite-runtime, needs numpy<2)",
        tried=tried,
    )


def parse_op_error(message: str):
    """(op, op_version) named in a runtime's load error, e.g. ("FULLY_CONNECTED", 12); (None, None) if none."""
    for pattern in _OP_PATTERNS:
        m = pattern.search(message or "")
        if m:
            version = int(m.group(2)) if m.lastindex and m.lastindex >= 2 else None
            return m.group(1), version
    return None, None


def make_interpreter(rt: Runtime, model_path, threads: int = 1, delegate: str = "xnnpack"):
    """Load and allocate a model. Returns (interpreter, delegate_info, init_seconds).

    Raises AgentFailure "delegate_missing" or "unloadable" (with runtime, op and op_version).
    """
    kwargs = {"model_path": str(model_path), "num_threads": int(threads)}
    info = {"requested": delegate}
    if delegate == "edgetpu":
        try:
            kwargs["experimental_delegates"] = [rt.load_delegate(EDGETPU_LIBRARY)]
        except Exception as exc:  # OSError (library missing) or ValueError (no device) depending on runtime
            raise AgentFailure(
                "delegate_missing",
                "cannot load the Edge TPU delegate " + EDGETPU_LIBRARY + " (" + str(exc)[:200] + "): install "
                "libedgetpu1-std from the Coral apt repository and plug in the Edge TPU, or use --delegate xnnpack",
                runtime=rt.info(),
            ) from None
        info["used"] = "edgetpu"
        info["note"] = "ops not compiled for the Edge TPU run on the CPU"
    elif delegate == "none":
        no_default = getattr(rt.OpResolverType, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None) if rt.OpResolverType else None
        if no_default is not None:
            kwargs["experimental_op_resolver_type"] = no_default
            info["used"] = "none"
            info["note"] = "default delegates disabled (BUILTIN_WITHOUT_DEFAULT_DELEGATES): builtin CPU kernels only"
        else:
            info["used"] = "runtime-default"
            info["note"] = "this runtime cannot disable its default delegate: XNNPACK may run supported ops"
    else:
        info["used"] = "xnnpack"
        info["note"] = "XNNPACK is the runtime's default CPU delegate: it runs the ops it supports, builtin kernels the rest"
    start = time.perf_counter()
    try:
        interp = rt.Interpreter(**kwargs)
        interp.allocate_tensors()
    except Exception as exc:  # ValueError (not a flatbuffer), RuntimeError (op missing), ...
        message = str(exc).strip() or type(exc).__name__
        op, op_version = parse_op_error(message)
        raise AgentFailure(
            "unloadable",
            "the " + rt.name + " runtime cannot load " + os.path.basename(str(model_path)) + ": " + message[:500],
            runtime=rt.info(),
            op=op,
            op_version=op_version,
        ) from None
    return interp, info, time.perf_counter() - start


def describe_tensor(detail: dict) -> dict:
    np = load_numpy()
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {
        "name": detail.get("name"),
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [int(d) for d in detail["shape"]],
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None,
    }


def random_input(detail: dict, rng):
    """Seeded random data: the whole range for integer inputs, uniform [0, 1) for floats."""
    np = load_numpy()
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(d) for d in detail["shape"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(int(info.min), int(info.max), size=shape, endpoint=True, dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.random(size=shape).astype(dtype)


def to_model_dtype(arr, detail: dict):
    """Convert data to the input tensor's dtype; float data for an int8/uint8 input is quantized with its scale/zero point."""
    np = load_numpy()
    dtype = np.dtype(detail["dtype"])
    if dtype.kind in "iu" and arr.dtype.kind == "f":
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if not scale:
            raise AgentFailure(
                "bad_input", "the model input is " + dtype.name + " without quantization parameters: pass integer data"
            )
        info = np.iinfo(dtype)
        x = arr.astype(np.float64) / float(scale)
        # round half away from zero, as TFLite's own quantize kernel (std::round)
        q = np.sign(x) * np.floor(np.abs(x) + 0.5) + int(zero_point)
        return np.clip(q, int(info.min), int(info.max)).astype(dtype)
    if dtype.kind in "iu" and arr.dtype.kind in "iu":
        info = np.iinfo(dtype)
        if arr.size and (int(arr.min()) < int(info.min) or int(arr.max()) > int(info.max)):
            raise AgentFailure("bad_input", "input values outside the " + dtype.name + " range of the model input")
    return arr.astype(dtype)


def load_npy(path):
    np = load_numpy()
    if not os.path.isfile(str(path)):
        raise AgentFailure("not_found", "inputs file " + str(path) + " does not exist")
    try:
        arr = np.load(str(path), allow_pickle=False)
    except Exception as exc:
        raise AgentFailure("bad_input", "cannot read " + str(path) + " as a .npy array: " + str(exc)[:200]) from None
    if not isinstance(arr, np.ndarray):
        raise AgentFailure("bad_input", str(path) + " is not a single .npy array (use np.save, not np.savez)")
    if arr.dtype.kind not in "iufb":
        raise AgentFailure("bad_input", str(path) + " holds " + str(arr.dtype) + " data, not numbers")
    return arr


def split_samples(arr, detail: dict) -> list:
    """Cut an array into tensors of the input's shape: one sample, or N rows along the batch axis."""
    shape = tuple(int(d) for d in detail["shape"])
    if arr.shape == shape:
        return [arr]
    if shape and shape[0] == 1 and arr.shape == shape[1:]:
        return [arr[None]]
    if shape and shape[0] >= 1 and arr.ndim == len(shape) and arr.shape[1:] == shape[1:] and arr.shape[0] % shape[0] == 0:
        if arr.shape[0] == 0:
            raise AgentFailure("bad_input", "the inputs file holds no rows")
        return [arr[i : i + shape[0]] for i in range(0, arr.shape[0], shape[0])]
    raise AgentFailure(
        "bad_input",
        "inputs of shape "
        + str(list(arr.shape))
        + " do not fit the model input "
        + str(detail.get("name"))
        + " of shape "
        + str(list(shape))
        + ": pass one sample of that shape or N rows of shape "
        + str(list(shape[1:])),
    )


def _zeros_invoke(interp) -> None:
    np = load_numpy()
    for detail in interp.get_input_details():
        interp.set_tensor(detail["index"], np.zeros([int(d) for d in detail["shape"]], dtype=detail["dtype"]))
    interp.invoke()


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


def check_runs(rt: Runtime, model_path, threads: int = 1, delegate: str = "xnnpack", timeout: float = 300.0) -> float:
    """Load, allocate and invoke once on zeros, in a forked child. Returns the load seconds.

    A model can pass allocate_tensors() and still kill the process in invoke(): tflite-runtime 2.14's
    arm64 kernels segfault on TF 2.21's per-channel int8 FULLY_CONNECTED with few output channels.
    Doing it in a child turns that crash into an "unloadable" failure instead of killing the agent
    mid-install, so the previous model stays current and the orchestrator gets a reason.
    """
    if not hasattr(os, "fork"):  # not a Linux board: check in-process (a crash still leaves current alone)
        interp, _info, seconds = make_interpreter(rt, model_path, threads, delegate)
        _zeros_invoke(interp)
        return seconds
    from . import control

    rfd, wfd = os.pipe()
    ppid = os.getpid()
    pid = os.fork()
    if pid == 0:  # child: report one JSON line on the pipe, never return into the agent
        code = 0
        try:
            _child_setup(ppid)
            os.close(rfd)
            faulthandler.disable()  # the parent names the signal; a stack dump here would only litter stderr
            try:
                _interp, _info, seconds = make_interpreter(rt, model_path, threads, delegate)
                t = time.perf_counter()
                _zeros_invoke(_interp)
                doc: dict | None = {"ok": True, "load_seconds": seconds, "invoke_seconds": time.perf_counter() - t}
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
    os.close(wfd)
    name = os.path.basename(str(model_path))
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
        if not reaped:  # a stop (deadline, host gone) while the check ran: it goes with us
            try:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
    chunks = [data]
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signame = signal.Signals(sig).name
        except ValueError:
            signame = "signal " + str(sig)
        raise AgentFailure(
            "unloadable",
            "the "
            + rt.name
            + " "
            + str(rt.version)
            + " runtime loads the model but crashed ("
            + signame
            + ") running it once: this board cannot run it",
            runtime=rt.info(),
            crash={"signal": sig, "name": signame, "during": "load check (allocate + one invoke)"},
        )
    try:
        doc = json.loads(b"".join(chunks).decode() or "null")
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
