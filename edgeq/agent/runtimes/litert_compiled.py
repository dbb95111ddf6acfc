"""LiteRT's CompiledModel on the CPU (XNNPACK), driven through ai-edge-litert's libLiteRt.so: the runtime that
can time each op of a run (its profiler), where the Interpreter API cannot.

The bindings and the library's run-time checks live in litert_capi.py; this module holds the Runtime and
Model of the protocol. What the C API needs, from LiteRT's sources (litert/runtime/compiled_model.cc,
litert_runtime_options.cc, litert_cpu_options.cc, litert/cc/litert_compiled_model.h):
- options reach the runtime as opaque options carrying a NUL-terminated TOML string, freed by a destructor
  that must not be NULL: the payload is malloc'd and libc's free is the destructor (no Python callback);
- `enable_profiling = true` under "runtime_options_string" gives the compiled model a profiler;
- `num_threads` is read under two identifiers: "xnnpack" (the XNNPACK threadpool) and "cpu_delegate"
  (the interpreter, for ops XNNPACK leaves); with the second alone XNNPACK stays on one thread;
- a model with a -1 dimension (every Keras conversion's batch) is resized first and its buffers are made
  from the compiled model's concrete layouts: the model's own type (-1) fails to size a buffer;
- teardown order: buffers, compiled model (and its profiler), options, model, environment.

Runs on boards: stdlib + numpy + ai-edge-litert, Python 3.7+.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

from . import Model, Runtime, dist_version, load_numpy
from .litert_capi import (
    ELEMENT_DTYPES,
    HW_CPU,
    LOCK_READ,
    LOCK_WRITE,
    RANKED,
    UPGRADE_FIX,
    LiteRtError,
    ProfiledEventData,
    Unsupported,
    check,
    glibc_version,
    load,
    op_name,
    read_events,
    version_key,
)
from .litert_capi import LiteRtLayout as _Layout
from .litert_capi import LiteRtRankedTensorType as _TensorType

NAME = "litert-compiled"
PACKAGE = "ai-edge-litert"
DISTRIBUTIONS = ("ai-edge-litert", "ai-edge-litert-nightly")
# 2.2.0 and 2.3.0 share the C API bound here (LiteRT's headers, v2.2.0..2.3.0); 2.1.0's differs: its
# LiteRtCreateModelFromFile read our environment handle as the file name ("Could not open '<bytes>'")
MIN_VERSION = (2, 2)
_H = ctypes.c_void_p


def _text(value) -> str:
    return value.decode("utf-8", "replace") if value else ""


class ModelFile:
    """A LiteRT environment, a model read from a file, and its first signature's inputs, outputs and ops."""

    def __init__(self, lib, path: str):
        self.lib = lib
        self.env, self.model = _H(), _H()
        check(lib.LiteRtCreateEnvironment(0, None, ctypes.byref(self.env)), "LiteRtCreateEnvironment")
        try:
            check(
                lib.LiteRtCreateModelFromFile(self.env, os.fsencode(path), ctypes.byref(self.model)), "LiteRtCreateModelFromFile"
            )
            n, sig = ctypes.c_size_t(), _H()
            check(lib.LiteRtGetNumModelSignatures(self.model, ctypes.byref(n)), "LiteRtGetNumModelSignatures")
            if n.value < 1:
                raise LiteRtError("the model has no signature")
            check(lib.LiteRtGetModelSignature(self.model, 0, ctypes.byref(sig)), "LiteRtGetModelSignature")
            self.inputs = self._tensors(sig, "Input")
            self.outputs = self._tensors(sig, "Output")
            self.ops = self._ops(sig)
        except BaseException:
            self.close()
            raise

    def _tensors(self, sig, side: str) -> list:
        """[(name, element type, model dims with -1 for dynamic)] of the signature's inputs or outputs."""
        lib, n = self.lib, ctypes.c_size_t()
        check(getattr(lib, "LiteRtGetNumSignature" + side + "s")(sig, ctypes.byref(n)), "LiteRtGetNumSignature" + side + "s")
        found = []
        for i in range(n.value):
            name, tensor, type_id, ranked = ctypes.c_char_p(), _H(), ctypes.c_int(), _TensorType()
            check(getattr(lib, "LiteRtGetSignature" + side + "Name")(sig, i, ctypes.byref(name)), "LiteRtGetSignatureName")
            check(getattr(lib, "LiteRtGetSignature" + side + "TensorByIndex")(sig, i, ctypes.byref(tensor)), "TensorByIndex")
            check(lib.LiteRtGetTensorTypeId(tensor, ctypes.byref(type_id)), "LiteRtGetTensorTypeId")
            if type_id.value != RANKED:
                raise LiteRtError("tensor " + _text(name.value) + " is unranked")
            check(lib.LiteRtGetRankedTensorType(tensor, ctypes.byref(ranked)), "LiteRtGetRankedTensorType")
            if ranked.element_type not in ELEMENT_DTYPES:
                raise LiteRtError("tensor " + _text(name.value) + " has element type " + str(ranked.element_type))
            found.append((_text(name.value), ranked.element_type, ranked.layout.dims()))
        return found

    def _ops(self, sig) -> list:
        """The op names of the signature's subgraph, by op index (what a TFLite-run op's event names)."""
        lib, subgraph, n = self.lib, _H(), ctypes.c_size_t()
        if lib.LiteRtGetSignatureSubgraph(sig, ctypes.byref(subgraph)) or lib.LiteRtGetNumSubgraphOps(subgraph, ctypes.byref(n)):
            return []
        names = []
        for i in range(n.value):
            op, code = _H(), ctypes.c_int(-1)
            if lib.LiteRtGetSubgraphOp(subgraph, i, ctypes.byref(op)) == 0:
                lib.LiteRtGetOpCode(op, ctypes.byref(code))
            names.append(op_name(code.value))
        return names

    def close(self) -> None:
        if self.model:
            self.lib.LiteRtDestroyModel(self.model)
            self.model = _H()
        if self.env:
            self.lib.LiteRtDestroyEnvironment(self.env)
            self.env = _H()


class CompiledModel(Model):
    """A CompiledModel on the CPU with a managed buffer per input and output. Tensor indices: the signature's
    inputs, then its outputs. With profiling, restart_profiler() and profiler_events() read its profiler."""

    def __init__(self, library, path: str, threads: int, profiling: bool):
        self._library, lib = library, library.lib
        self._lib = lib
        self.opts, self.cm, self.profiler = _H(), _H(), _H()
        self._buffers: list = []
        self._details: list = []  # tensor details by buffer: the inputs', then the outputs'
        note = "LiteRT CompiledModel on the CPU: XNNPACK runs the ops it supports, the builtin kernels the rest"
        self.delegate = {"requested": "xnnpack", "used": "xnnpack", "note": note}
        start = time.perf_counter()
        self.file = ModelFile(lib, path)  # closes what it made if it fails
        try:
            self._compile(threads, profiling)
            self._allocate()
        except BaseException:
            self.close()
            raise
        self.init_seconds = time.perf_counter() - start
        fn, args = lib.LiteRtRunCompiledModel, (self.cm, 0, self._n_in, self._in, len(self._buffers) - self._n_in, self._out)

        def run():
            status = fn(*args)
            if status:
                check(status, "LiteRtRunCompiledModel")

        self.run = run
        self.set_input = self._write

    def _add_opaque(self, identifier: str, toml: str) -> None:
        lib, libc = self._lib, self._library.libc
        data = toml.encode("ascii") + b"\0"  # the runtime reads the payload with strlen
        payload = libc.malloc(len(data))
        if not payload:
            raise MemoryError("malloc of " + str(len(data)) + " bytes")
        ctypes.memmove(payload, data, len(data))
        opaque = _H()
        status = lib.LiteRtCreateOpaqueOptions(
            identifier.encode("ascii"), payload, self._library.free_address, ctypes.byref(opaque)
        )
        if status:
            libc.free(payload)
            check(status, "LiteRtCreateOpaqueOptions(" + identifier + ")")
        status = lib.LiteRtAddOpaqueOptions(self.opts, opaque)  # takes ownership when it succeeds
        if status:
            lib.LiteRtDestroyOpaqueOptions(opaque)
            check(status, "LiteRtAddOpaqueOptions(" + identifier + ")")

    def _compile(self, threads: int, profiling: bool) -> None:
        lib = self._lib
        check(lib.LiteRtCreateOptions(ctypes.byref(self.opts)), "LiteRtCreateOptions")
        check(lib.LiteRtSetOptionsHardwareAccelerators(self.opts, HW_CPU), "LiteRtSetOptionsHardwareAccelerators")
        for identifier in ("xnnpack", "cpu_delegate"):
            self._add_opaque(identifier, "num_threads = " + str(int(threads)) + "\n")
        if profiling:
            self._add_opaque("runtime_options_string", "enable_profiling = true\n")
        env, model = self.file.env, self.file.model
        check(lib.LiteRtCreateCompiledModel(env, model, self.opts, ctypes.byref(self.cm)), "LiteRtCreateCompiledModel")
        if profiling:
            check(lib.LiteRtCompiledModelGetProfiler(self.cm, ctypes.byref(self.profiler)), "LiteRtCompiledModelGetProfiler")
            if not self.profiler:
                raise Unsupported("LiteRT ignored enable_profiling: the compiled model has no profiler", UPGRADE_FIX)

    def _allocate(self) -> None:
        """Resize -1 dimensions to 1, then one buffer per input and output from the concrete layouts."""
        lib, cm = self._lib, self.cm
        for i, (name, element_type, dims) in enumerate(self.file.inputs):
            if any(d < 0 for d in dims):
                wanted = [d if d >= 0 else 1 for d in dims]  # strict resize: only the -1 dimensions change
                check(
                    lib.LiteRtCompiledModelResizeInputTensor(cm, 0, i, (ctypes.c_int * len(wanted))(*wanted), len(wanted)),
                    "LiteRtCompiledModelResizeInputTensor(" + name + " -> " + str(wanted) + ")",
                )
            layout = _Layout()
            check(
                lib.LiteRtGetCompiledModelInputTensorLayout(cm, 0, i, ctypes.byref(layout)), "GetCompiledModelInputTensorLayout"
            )
            self._add_buffer(name, element_type, dims, layout.dims(), lib.LiteRtGetCompiledModelInputBufferRequirements, i)
        self._n_in = len(self._buffers)
        n_out = len(self.file.outputs)
        layouts = (_Layout * max(n_out, 1))()
        check(lib.LiteRtGetCompiledModelOutputTensorLayouts(cm, 0, n_out, layouts, True), "GetCompiledModelOutputTensorLayouts")
        for j, (name, element_type, dims) in enumerate(self.file.outputs):
            self._add_buffer(name, element_type, dims, layouts[j].dims(), lib.LiteRtGetCompiledModelOutputBufferRequirements, j)
        self._in = (_H * max(self._n_in, 1))(*self._buffers[: self._n_in])
        self._out = (_H * max(n_out, 1))(*self._buffers[self._n_in :])

    def _add_buffer(self, name, element_type, signature, dims, requirements_of, position) -> None:
        if any(d < 0 for d in dims):
            raise LiteRtError("tensor " + name + " keeps a dynamic shape " + str(dims) + " after the resize")
        requirements, ranked, buffer = _H(), _TensorType(), _H()
        check(requirements_of(self.cm, 0, position, ctypes.byref(requirements)), "GetBufferRequirements(" + name + ")")
        ranked.element_type = element_type
        ranked.layout.set_dims(dims)
        check(
            self._lib.LiteRtCreateManagedTensorBufferFromRequirements(
                self.file.env, ctypes.byref(ranked), requirements, ctypes.byref(buffer)
            ),
            "LiteRtCreateManagedTensorBufferFromRequirements(" + name + " " + str(dims) + ")",
        )
        self._buffers.append(buffer)
        dtype = ELEMENT_DTYPES[element_type]
        self._details.append(
            {"name": name, "index": len(self._details), "shape": dims, "shape_signature": signature, "dtype": dtype}
        )

    def _locked(self, index: int, mode: int):
        """(address, size) of a buffer locked for `mode`; the caller unlocks it."""
        buffer, size, address = self._buffers[index], ctypes.c_size_t(), ctypes.c_void_p()
        check(self._lib.LiteRtGetTensorBufferPackedSize(buffer, ctypes.byref(size)), "LiteRtGetTensorBufferPackedSize")
        check(self._lib.LiteRtLockTensorBuffer(buffer, ctypes.byref(address), mode), "LiteRtLockTensorBuffer")
        return address.value, size.value

    def _write(self, index: int, value) -> None:
        np = load_numpy()
        arr = np.ascontiguousarray(value, dtype=self._details[index]["dtype"])
        address, size = self._locked(index, LOCK_WRITE)
        try:
            if size != arr.nbytes:
                raise LiteRtError(
                    "input " + self._details[index]["name"] + " takes " + str(size) + " bytes, not " + str(arr.nbytes)
                )
            ctypes.memmove(address, arr.ctypes.data, size)
        finally:
            self._lib.LiteRtUnlockTensorBuffer(self._buffers[index])

    def tensor(self, index: int):
        np = load_numpy()
        detail = self._details[index]
        address, size = self._locked(index, LOCK_READ)
        try:
            raw = ctypes.string_at(address, size)
        finally:
            self._lib.LiteRtUnlockTensorBuffer(self._buffers[index])
        return np.frombuffer(raw, dtype=detail["dtype"]).reshape(detail["shape"]).copy()

    def inputs(self) -> list:
        return self._details[: self._n_in]

    def outputs(self) -> list:
        return self._details[self._n_in :]

    def ops(self) -> list:
        """{"index", "op_name"} of every op in the model (before delegation)."""
        return [{"index": i, "op_name": name} for i, name in enumerate(self.file.ops)]

    def fully_accelerated(self):
        """Whether XNNPACK runs every op (None if the runtime does not say)."""
        value = ctypes.c_bool(False)
        if self._lib.LiteRtCompiledModelIsFullyAccelerated(self.cm, ctypes.byref(value)):
            return None
        return bool(value.value)

    def restart_profiler(self) -> None:
        """Empty the profiler's buffer and record again. Reset alone stops recording (tflite's
        ProfileBuffer::Reset clears its enabled flag while the profiler still says it profiles): Start after it."""
        check(self._lib.LiteRtResetProfiler(self.profiler), "LiteRtResetProfiler")
        check(self._lib.LiteRtStartProfiler(self.profiler), "LiteRtStartProfiler")

    def profiler_events(self) -> list:
        """The events recorded since restart_profiler(): (tag, type, elapsed_us, metadata1, metadata2)."""
        return read_events(self._lib, self.profiler)

    def close(self) -> None:
        lib = self._lib
        for buffer in self._buffers:
            lib.LiteRtDestroyTensorBuffer(buffer)
        self._buffers = []
        if self.cm:
            lib.LiteRtDestroyCompiledModel(self.cm)  # its profiler with it
            self.cm, self.profiler = _H(), _H()
        if self.opts:
            lib.LiteRtDestroyOptions(self.opts)  # the opaque options and their payloads with them
            self.opts = _H()
        self.file.close()


class CompiledRuntime(Runtime):
    """ai-edge-litert's CompiledModel API. `unsupported` holds why this board cannot use it (None if it can)."""

    name = NAME
    api = "compiled_model"

    def __init__(self, version, library_path: str, library=None, unsupported: Unsupported | None = None):
        self.version = version
        self.library_path = library_path
        self.library = library
        self.unsupported = unsupported
        self.can_profile = unsupported is None

    def delegates(self) -> list:
        return ["xnnpack"]

    def describe(self) -> dict:
        doc = super().describe()
        doc.update(package=PACKAGE, library=self.library_path, glibc=glibc_version())
        doc["event_struct_bytes"] = ctypes.sizeof(ProfiledEventData)
        if self.unsupported is not None:
            doc.update(reason=self.unsupported.reason, fix=self.unsupported.fix)
        return doc

    def load(self, path, threads: int = 1, delegate: str = "xnnpack", profiling: bool = False) -> CompiledModel:
        """A compiled model of `path`; LiteRtError if LiteRT refuses it, Unsupported if this board cannot."""
        if self.unsupported is not None:
            raise self.unsupported
        return CompiledModel(self.library, str(path), threads, profiling)


def install_fix() -> str:
    """How to get an ai-edge-litert that profiles, for this board's Python."""
    if sys.version_info >= (3, 10):  # noqa: UP036 - the agent runs on the board's Python (3.7+), not edgeq's
        return UPGRADE_FIX
    # the package index edgeq's setup uses has ai-edge-litert 2.1.0 at most for cp39 (its C API differs), none for cp37/cp38
    found = " (pip finds 2.1.0 at most, whose C API differs)" if sys.version_info >= (3, 9) else ""
    return (
        "ai-edge-litert 2.2.0 and newer have no wheels for Python "
        + ".".join(map(str, sys.version_info[:2]))
        + found
        + ": per-op profiles need a board with Python 3.10 or newer (Debian 12 / Raspberry Pi OS Bookworm have 3.11)"
    )


def version_problem(version) -> Unsupported | None:
    """Unsupported when the installed ai-edge-litert's C API is not the one bound here (older than 2.2.0)."""
    if version_key(version)[:2] >= MIN_VERSION:
        return None
    return Unsupported(
        "ai-edge-litert " + str(version) + " predates 2.2.0: its C API differs from the one these bindings follow "
        "(2.1.0's LiteRtCreateModelFromFile takes no environment)",
        install_fix(),
    )


def open_runtime() -> CompiledRuntime:
    """This runtime if ai_edge_litert imports here (raises otherwise), usable or with the reason it is not."""
    import ai_edge_litert

    version = dist_version(DISTRIBUTIONS, ai_edge_litert)
    path = os.path.join(os.path.dirname(os.path.abspath(ai_edge_litert.__file__)), "libLiteRt.so")
    too_old = version_problem(version)
    if too_old is not None:
        return CompiledRuntime(version, path, unsupported=too_old)
    try:
        return CompiledRuntime(version, path, load(path, version))
    except Unsupported as exc:
        return CompiledRuntime(version, path, unsupported=exc)
