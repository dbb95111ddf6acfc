"""ctypes bindings to LiteRT's C API in ai-edge-litert's bundled libLiteRt.so: the structs, the symbols, the
library's loading with its run-time checks, and the profiler's events copied out.

Checked against ai-edge-litert 2.3.0 and the headers of google-ai-edge/LiteRT at 19a1585ff ("Bump LiteRT SDK
versions to 2.3.0"; unchanged from v2.2.0 but for LiteRtCompiledModelIsNonCpuFullyAccelerated):
litert/c/litert_profiler_event.h, litert_compiled_model.h, litert_options.h, litert_opaque_options.h,
litert_environment.h, litert_model.h, litert_model_types.h, litert_layout.h, litert_tensor_buffer*.h.
The library exports neither LiteRtGetStatusString nor a size constant for its structs: the status names and
the struct sizes below come from those headers, and load() checks the sizes before anything runs.

Runs on boards: stdlib only (ctypes), Python 3.7+.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import re
import sys

_H = ctypes.c_void_p  # an opaque LiteRt* handle
_S = ctypes.c_int  # LiteRtStatus
_I = ctypes.c_size_t  # LiteRtParamIndex
_P = ctypes.POINTER

STATUS = {
    0: "Ok",
    1: "ErrorInvalidArgument",
    2: "ErrorMemoryAllocationFailure",
    3: "ErrorRuntimeFailure",
    4: "ErrorMissingInputTensor",
    5: "ErrorUnsupported",
    6: "ErrorNotFound",
    7: "ErrorTimeoutExpired",
    8: "ErrorWrongVersion",
    9: "ErrorUnknown",
    10: "ErrorAlreadyExists",
    500: "ErrorFileIO",
    501: "ErrorInvalidFlatbuffer",
    502: "ErrorDynamicLoading",
    504: "ErrorCompilation",
    1000: "ErrorIndexOOB",
}
HW_CPU = 1  # kLiteRtHwAcceleratorCpu
LOCK_READ, LOCK_WRITE = 0, 1  # LiteRtTensorBufferLockMode
RANKED = 0  # kLiteRtRankedTensorType
MAX_RANK = 8  # LITERT_TENSOR_MAX_RANK
# LiteRtElementType (the TfLiteType values) -> numpy dtype name
ELEMENT_DTYPES = {
    1: "float32",
    2: "int32",
    3: "uint8",
    4: "int64",
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float16",
    11: "float64",
    13: "uint64",
    16: "uint32",
    17: "uint16",
}
EVENT_TYPES = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # LiteRtProfilerEventType, bit flags
EVENT_SOURCES = (0, 1, 2)  # ProfiledEventSource


class Unsupported(Exception):
    """This board cannot profile: `reason` says why, `fix` what would make it possible."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


class LiteRtError(RuntimeError):
    """A LiteRT C call returned a status other than Ok."""


def check(status: int, what: str) -> None:
    if status != 0:
        raise LiteRtError(what + " failed: status " + str(status) + " (" + STATUS.get(status, "?") + ")")


class LiteRtLayout(ctypes.Structure):
    # `unsigned int rank : 7; unsigned int has_strides : 1;` share one 32-bit unit: rank is its low 7 bits
    # (GCC and Clang, little-endian; load() refuses big-endian hosts)
    _fields_ = [("bits", ctypes.c_uint32), ("dimensions", ctypes.c_int32 * MAX_RANK), ("strides", ctypes.c_uint32 * MAX_RANK)]

    def dims(self) -> list:
        return [int(self.dimensions[i]) for i in range(self.bits & 0x7F)]

    def set_dims(self, dims) -> None:
        self.bits = len(dims) & 0x7F  # has_strides = 0
        for i, d in enumerate(dims):
            self.dimensions[i] = int(d)


class LiteRtRankedTensorType(ctypes.Structure):
    _fields_ = [("element_type", ctypes.c_int), ("layout", LiteRtLayout)]


class _MemoryUsage(ctypes.Structure):
    _fields_ = [("total", ctypes.c_size_t), ("in_use", ctypes.c_size_t), ("private_footprint", ctypes.c_size_t)]


class ProfiledEventData(ctypes.Structure):
    """litert/c/litert_profiler_event.h, field for field."""

    _fields_ = [
        ("tag", ctypes.c_void_p),  # const char*, the profiler's own string: valid until its next Reset
        ("event_type", ctypes.c_int),
        ("start_timestamp_us", ctypes.c_uint64),
        ("elapsed_time_us", ctypes.c_uint64),
        ("begin_mem_usage", _MemoryUsage),
        ("end_mem_usage", _MemoryUsage),
        ("event_metadata1", ctypes.c_uint64),
        ("event_metadata2", ctypes.c_uint64),
        ("event_source", ctypes.c_int),
    ]


def header_event_size(ptr_size: int) -> int:
    """sizeof(ProfiledEventData) by the header's C layout rules, worked out by hand: 104 on LP64.

    tag (pointer) + enum (4) -> 8-aligned; 2 x u64; 2 x 3 x size_t; 2 x u64; enum (4); padded to 8.
    """
    off = (ptr_size + 4 + 7) // 8 * 8 + 16 + 6 * ptr_size
    off = (off + 7) // 8 * 8 + 16 + 4
    return (off + 7) // 8 * 8


_LAYOUT_SIZE = 68  # static_assert in litert_layout.h
_RANKED_TYPE_SIZE = 72  # static_assert in litert_model_types.h

# name -> (restype, argtypes); restype None is void
SIGNATURES = {
    "LiteRtCreateEnvironment": (_S, [ctypes.c_int, ctypes.c_void_p, _P(_H)]),
    "LiteRtDestroyEnvironment": (None, [_H]),
    "LiteRtCreateModelFromFile": (_S, [_H, ctypes.c_char_p, _P(_H)]),
    "LiteRtDestroyModel": (None, [_H]),
    "LiteRtGetNumModelSignatures": (_S, [_H, _P(_I)]),
    "LiteRtGetModelSignature": (_S, [_H, _I, _P(_H)]),
    "LiteRtGetSignatureKey": (_S, [_H, _P(ctypes.c_char_p)]),
    "LiteRtGetSignatureSubgraph": (_S, [_H, _P(_H)]),
    "LiteRtGetNumSignatureInputs": (_S, [_H, _P(_I)]),
    "LiteRtGetNumSignatureOutputs": (_S, [_H, _P(_I)]),
    "LiteRtGetSignatureInputName": (_S, [_H, _I, _P(ctypes.c_char_p)]),
    "LiteRtGetSignatureOutputName": (_S, [_H, _I, _P(ctypes.c_char_p)]),
    "LiteRtGetSignatureInputTensorByIndex": (_S, [_H, _I, _P(_H)]),
    "LiteRtGetSignatureOutputTensorByIndex": (_S, [_H, _I, _P(_H)]),
    "LiteRtGetTensorTypeId": (_S, [_H, _P(ctypes.c_int)]),
    "LiteRtGetRankedTensorType": (_S, [_H, _P(LiteRtRankedTensorType)]),
    "LiteRtGetNumSubgraphOps": (_S, [_H, _P(_I)]),
    "LiteRtGetSubgraphOp": (_S, [_H, _I, _P(_H)]),
    "LiteRtGetOpCode": (_S, [_H, _P(ctypes.c_int)]),
    "LiteRtCreateOptions": (_S, [_P(_H)]),
    "LiteRtDestroyOptions": (None, [_H]),
    "LiteRtSetOptionsHardwareAccelerators": (_S, [_H, ctypes.c_int]),
    "LiteRtCreateOpaqueOptions": (_S, [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, _P(_H)]),
    "LiteRtDestroyOpaqueOptions": (None, [_H]),
    "LiteRtAddOpaqueOptions": (_S, [_H, _H]),
    "LiteRtCreateCompiledModel": (_S, [_H, _H, _H, _P(_H)]),
    "LiteRtDestroyCompiledModel": (None, [_H]),
    "LiteRtCompiledModelResizeInputTensor": (_S, [_H, _I, _I, _P(ctypes.c_int), ctypes.c_size_t]),
    "LiteRtGetCompiledModelInputTensorLayout": (_S, [_H, _I, _I, _P(LiteRtLayout)]),
    "LiteRtGetCompiledModelOutputTensorLayouts": (_S, [_H, _I, ctypes.c_size_t, _P(LiteRtLayout), ctypes.c_bool]),
    "LiteRtGetCompiledModelInputBufferRequirements": (_S, [_H, _I, _I, _P(_H)]),
    "LiteRtGetCompiledModelOutputBufferRequirements": (_S, [_H, _I, _I, _P(_H)]),
    "LiteRtCompiledModelIsFullyAccelerated": (_S, [_H, _P(ctypes.c_bool)]),
    "LiteRtCreateManagedTensorBufferFromRequirements": (_S, [_H, _P(LiteRtRankedTensorType), _H, _P(_H)]),
    "LiteRtGetTensorBufferPackedSize": (_S, [_H, _P(ctypes.c_size_t)]),
    "LiteRtLockTensorBuffer": (_S, [_H, _P(ctypes.c_void_p), ctypes.c_int]),
    "LiteRtUnlockTensorBuffer": (_S, [_H]),
    "LiteRtDestroyTensorBuffer": (None, [_H]),
    "LiteRtRunCompiledModel": (_S, [_H, _I, ctypes.c_size_t, _P(_H), ctypes.c_size_t, _P(_H)]),
    "LiteRtCompiledModelGetProfiler": (_S, [_H, _P(_H)]),
    "LiteRtStartProfiler": (_S, [_H]),
    "LiteRtResetProfiler": (_S, [_H]),
    "LiteRtGetNumProfilerEvents": (_S, [_H, _P(ctypes.c_int)]),
    "LiteRtGetProfilerEvents": (_S, [_H, ctypes.c_int, ctypes.c_void_p]),
}

UPGRADE_FIX = (
    "install ai-edge-litert 2.3.0 on the board (the version these bindings follow; 2.2.0 has the same C API): "
    "`pip install ai-edge-litert==2.3.0` with the python edgeq runs there"
)
_CPU_POSSIBLE = "/sys/devices/system/cpu/possible"  # XNNPACK's cpuinfo reads it when a CompiledModel is created


def glibc_version():
    """The C library's version ("2.36"), or None off glibc (musl)."""
    try:
        fn = ctypes.CDLL(None).gnu_get_libc_version
    except (AttributeError, OSError):
        return None
    fn.restype = ctypes.c_char_p
    return fn().decode("ascii", "replace")


def version_key(text) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", text or ""))


def glibc_needed(path: str):
    """The newest GLIBC_x.y symbol version a shared library asks for (its .gnu.version_r strings), or None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    found = set(re.findall(rb"GLIBC_(2(?:\.[0-9]+)+)\x00", data))
    return max((v.decode() for v in found), key=version_key) if found else None


def glibc_too_old(host, needed, machine: str, version):
    """Unsupported if the host's glibc is older than the one the library needs, else None."""
    if not host or not needed or version_key(host) >= version_key(needed):
        return None
    return Unsupported(
        "glibc "
        + host
        + " < "
        + needed
        + " ("
        + machine
        + "): libLiteRt.so of ai-edge-litert "
        + str(version)
        + " needs glibc "
        + needed,
        "profile on a board with glibc " + needed + " or newer (Debian 12 / Raspberry Pi OS Bookworm have 2.36)",
    )


def _load_failure(path: str, exc: OSError, version) -> Unsupported:
    """Why dlopen refused the library: an old glibc said as such (ai-edge-litert 2.3.0's aarch64 wheel is tagged
    manylinux_2_27 but its libLiteRt.so asks for GLIBC_2.34, so pip installs it where it cannot load), else its error."""
    too_old = glibc_too_old(glibc_version(), glibc_needed(path), platform.machine(), version)
    return too_old or Unsupported("cannot load " + path + ": " + str(exc)[:300], UPGRADE_FIX)


def _layout_problems() -> list:
    problems = []
    want = header_event_size(ctypes.sizeof(ctypes.c_void_p))
    if ctypes.sizeof(ProfiledEventData) != want:
        problems.append("sizeof(ProfiledEventData) " + str(ctypes.sizeof(ProfiledEventData)) + " != header " + str(want))
    if ctypes.sizeof(LiteRtLayout) != _LAYOUT_SIZE or ctypes.sizeof(LiteRtRankedTensorType) != _RANKED_TYPE_SIZE:
        problems.append("LiteRtLayout/LiteRtRankedTensorType sizes differ from litert_layout.h")
    return problems


def _host_problem():
    """Why this process cannot use the library at all, or None."""
    if not sys.platform.startswith("linux"):
        return Unsupported("LiteRT's C library is handled on Linux only, not " + sys.platform, "profile on a Linux board")
    if ctypes.sizeof(ctypes.c_void_p) != 8 or sys.byteorder != "little":
        return Unsupported(
            "a " + str(8 * ctypes.sizeof(ctypes.c_void_p)) + "-bit " + sys.byteorder + "-endian process: ai-edge-litert "
            "ships 64-bit little-endian libraries only",
            "profile on a 64-bit OS (aarch64 or x86_64)",
        )
    problems = _layout_problems()
    if problems:
        return Unsupported("struct layout: " + "; ".join(problems), UPGRADE_FIX)
    if not os.path.exists(_CPU_POSSIBLE):
        return Unsupported(
            _CPU_POSSIBLE + " is missing (/sys not mounted): XNNPACK cannot create a CompiledModel without it",
            "mount /sys on the board (in a chroot: mount --bind /sys <root>/sys)",
        )
    return None


class Library:
    """libLiteRt.so with every symbol in SIGNATURES bound, and the C library's malloc/free."""

    def __init__(self, lib, libc, path: str):
        self.lib = lib
        self.libc = libc
        self.path = path
        self.free_address = ctypes.cast(libc.free, ctypes.c_void_p)


def load(path: str, version=None) -> Library:
    """Load `path` and bind its symbols; Unsupported (with reason and fix) when this board or library can't."""
    problem = _host_problem()
    if problem is not None:
        raise problem
    if not os.path.isfile(path):
        raise Unsupported(path + " does not exist: ai-edge-litert " + str(version) + " has no C library", UPGRADE_FIX)
    try:
        lib = ctypes.CDLL(path)  # RTLD_LOCAL: its symbols never clash with the Interpreter's own copy of TFLite
    except OSError as exc:
        raise _load_failure(path, exc, version) from None
    missing = [name for name in SIGNATURES if not hasattr(lib, name)]
    if missing:
        raise Unsupported("ai-edge-litert version " + str(version) + ": symbols missing: " + ", ".join(missing), UPGRADE_FIX)
    for name, (restype, argtypes) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.restype = None
    libc.free.argtypes = [ctypes.c_void_p]
    return Library(lib, libc, path)


_GUARD = 0xA5


def read_events(lib, profiler) -> list:
    """Every event in the profiler's buffer as (tag, event_type, elapsed_us, metadata1, metadata2), copied out.

    The buffer handed to the library is followed by a guard zone as large again: a library whose struct is
    larger than the header's would write into it, which is Unsupported, never a silent misread.
    """
    n = ctypes.c_int(0)
    check(lib.LiteRtGetNumProfilerEvents(profiler, ctypes.byref(n)), "LiteRtGetNumProfilerEvents")
    if n.value <= 0:
        return []
    size = ctypes.sizeof(ProfiledEventData)
    body = n.value * size
    raw = (ctypes.c_char * (2 * body + 64))()
    ctypes.memset(raw, _GUARD, len(raw))
    check(lib.LiteRtGetProfilerEvents(profiler, n.value, raw), "LiteRtGetProfilerEvents")
    tail = ctypes.string_at(ctypes.addressof(raw) + body, len(raw) - body)
    if tail.count(_GUARD) != len(tail):
        raise Unsupported(
            "LiteRtGetProfilerEvents wrote past " + str(n.value) + " x " + str(size) + " bytes: this library's "
            "ProfiledEventData is larger than litert_profiler_event.h says",
            UPGRADE_FIX,
        )
    out = []
    for e in (ProfiledEventData * n.value).from_buffer(raw):
        if not e.tag or e.event_type not in EVENT_TYPES or e.event_source not in EVENT_SOURCES:
            raise Unsupported(
                "a profiler event with tag "
                + hex(e.tag or 0)
                + ", type "
                + str(e.event_type)
                + ", source "
                + str(e.event_source)
                + ": this library's ProfiledEventData differs from litert_profiler_event.h",
                UPGRADE_FIX,
            )
        tag = ctypes.string_at(e.tag).decode("utf-8", "replace")  # the tag's memory goes at the next Reset
        out.append((tag, int(e.event_type), int(e.elapsed_time_us), int(e.event_metadata1), int(e.event_metadata2)))
    return out


# TFLite's BuiltinOperator names by code (== LiteRtOpCode for builtins), schema.fbs as of ai-edge-litert 2.3.0
OP_NAMES = tuple(
    (
        "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP FLOOR "
        "FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION LOGISTIC "
        "LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH "
        "SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER "
        "BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE "
        "BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM "
        "ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE "
        "TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK "
        "LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL "
        "FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL "
        "REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND "
        "HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM "
        "BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS "
        "HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE "
        "ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU "
        "DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 "
        "UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE "
        "STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE "
        "STABLEHLO_BROADCAST_IN_DIM STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE "
        "STABLEHLO_ABS STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG "
        "STABLEHLO_MINIMUM STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT "
        "STABLEHLO_SELECT STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT "
        "STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA STABLEHLO_DOT_GENERAL "
        "STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE STABLEHLO_GATHER STABLEHLO_TRANSPOSE DILATE "
        "STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE"
    ).split()
)


def op_name(code: int) -> str:
    return OP_NAMES[code] if 0 <= code < len(OP_NAMES) else "OPCODE_" + str(code)
