"""Read a .tflite flatbuffer into plain data without TensorFlow.

The generated schema reader that ai-edge-litert ships (ai_edge_litert.schema_py_generated, the same
file as tensorflow/lite/python/schema_py_generated.py) does no verification: a truncated or forged
file makes it raise from deep inside `struct`, or loop over a vector whose length is a garbage 2**31.
So the header is checked first ("TFL3" file identifier, root offset inside the file) and every
vector length is bounded by what the file could possibly hold, against one element budget per file.
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgeq.errors import ModelError

FILE_IDENTIFIER = b"TFL3"  # schema.fbs: file_identifier "TFL3"
_HINT = "pass a .tflite file written by the TFLite converter (e.g. an artifact of `edgeq run`)"
CUSTOM = 32  # BuiltinOperator.CUSTOM


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError:  # same generated module, heavier import
        from tensorflow.lite.python import schema_py_generated as s
    return s


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def load_bytes(path_or_bytes) -> tuple[bytes, str]:
    """The model's bytes and a label for messages. Missing file, directory, unreadable: ModelError."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), "<bytes>"
    p = Path(path_or_bytes)
    if p.is_dir():
        raise ModelError(f"{p}: is a directory, not a .tflite file", _HINT)
    try:
        return p.read_bytes(), str(p)
    except FileNotFoundError:
        raise ModelError(f"{p}: file not found", "check the path") from None
    except OSError as e:
        raise ModelError(f"{p}: cannot read: {e.strerror or e}", "check the file's permissions") from None


def check_header(buf: bytes, where: str) -> None:
    """Refuse anything that is not a TFLite flatbuffer before the unverified reader sees it."""
    if len(buf) < 8:
        raise ModelError(f"{where}: not a TFLite model: {len(buf)} bytes, too short for a flatbuffer header", _HINT)
    ident = buf[4:8]
    if ident != FILE_IDENTIFIER:
        raise ModelError(
            f"{where}: not a TFLite model: file identifier is {ident!r}, expected {FILE_IDENTIFIER!r}",
            _HINT + "; a .tflite file carries 'TFL3' at bytes 4-8",
        )
    root = struct.unpack_from("<I", buf, 0)[0]
    if root < 8 or root + 4 > len(buf):
        raise ModelError(
            f"{where}: truncated or corrupt TFLite model: root table offset {root} is outside the {len(buf)}-byte file",
            "the file was cut short or damaged: copy or convert it again",
        )


class _Budget:
    """Bounds how many vector elements one parse may visit: a real model stores each element at least
    once, so more elements than bytes means a forged length (the reader would otherwise spin)."""

    def __init__(self, size: int):
        self.left = 4 * size + 1024

    def n(self, length: int, elem_size: int, size: int) -> int:
        if length < 0 or length * elem_size > size:
            raise ValueError(f"vector of {length} elements cannot fit in a {size}-byte file")
        self.left -= length
        if self.left < 0:
            raise ValueError("more vector elements than the file can hold")
        return length


def _ints(arr) -> list[int]:
    # the generated *AsNumpy methods return the int 0 (not an array) for an absent vector
    return [] if isinstance(arr, int) else [int(x) for x in arr]


def _str(b) -> str:
    return b.decode("utf-8", errors="replace") if b else ""


def parse(buf: bytes, where: str) -> dict:
    """Plain data for every subgraph, tensor, op and buffer. Corrupt content raises ModelError."""
    check_header(buf, where)
    s = _schema()
    try:
        return _parse(s, buf)
    except ModelError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, AttributeError, MemoryError) as e:
        raise ModelError(
            f"{where}: truncated or corrupt TFLite model ({type(e).__name__}: {e})",
            "the file was cut short or damaged: copy or convert it again",
        ) from None


def _parse(s, buf: bytes) -> dict:
    size = len(buf)
    budget = _Budget(size)
    m = s.Model.GetRootAs(buf, 0)
    builtin_names = _names(s.BuiltinOperator)
    dtype_names = {k: v.lower() for k, v in _names(s.TensorType).items()}

    op_codes = []
    for i in range(budget.n(m.OperatorCodesLength(), 4, size)):
        c = m.OperatorCodes(i)
        code = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())  # schema.fbs: the larger of the two is the real one
        name = _str(c.CustomCode()) if code == CUSTOM else builtin_names.get(code, f"BUILTIN_{code}")
        op_codes.append({"name": name or "CUSTOM", "custom": code == CUSTOM, "version": c.Version()})

    buffers = []
    for i in range(budget.n(m.BuffersLength(), 4, size)):
        b = m.Buffers(i)
        # DataAsNumpy is a view; it raises when the vector runs past the end of a truncated file
        n = 0 if b.DataIsNone() else budget.n(len(b.DataAsNumpy()), 1, size)
        external = b.Offset() > 1  # models over 2 GB keep data after the flatbuffer (offset/size)
        buffers.append({"bytes": int(b.Size()) if external else int(n), "external": external})

    metadata = []
    for i in range(budget.n(m.MetadataLength(), 4, size)):
        md = m.Metadata(i)
        metadata.append({"name": _str(md.Name()), "buffer": md.Buffer()})

    subgraphs = []
    for g in range(budget.n(m.SubgraphsLength(), 4, size)):
        sg = m.Subgraphs(g)
        tensors = []
        for t in range(budget.n(sg.TensorsLength(), 4, size)):
            tensors.append(_tensor(sg.Tensors(t), t, dtype_names, buffers, budget, size))
        ops = []
        for k in range(budget.n(sg.OperatorsLength(), 4, size)):
            op = sg.Operators(k)
            oc = op.OpcodeIndex()
            if not 0 <= oc < len(op_codes):
                raise ValueError(f"op #{k} refers to operator code {oc} of {len(op_codes)}")
            ins = _ints(op.InputsAsNumpy())
            outs = _ints(op.OutputsAsNumpy())
            for ti in ins + outs:
                if not -1 <= ti < len(tensors):  # -1 marks an omitted optional input
                    raise ValueError(f"op #{k} refers to tensor {ti} of {len(tensors)}")
            ops.append(
                {
                    "index": k,
                    "op": op_codes[oc]["name"],
                    "version": op_codes[oc]["version"],
                    "custom": op_codes[oc]["custom"],
                    "inputs": ins,
                    "outputs": outs,
                }
            )
        io = {"inputs": _ints(sg.InputsAsNumpy()), "outputs": _ints(sg.OutputsAsNumpy())}
        for kind, idx in io.items():
            if any(not 0 <= ti < len(tensors) for ti in idx):
                raise ValueError(f"subgraph {g} {kind} {idx} refer to tensors outside 0..{len(tensors) - 1}")
        subgraphs.append({"name": _str(sg.Name()), **io, "tensors": tensors, "ops": ops})
    if not subgraphs:
        raise ValueError("the model has no subgraph")
    return {
        "schema_version": m.Version(),
        "description": _str(m.Description()),
        "size_bytes": size,
        "op_codes": op_codes,
        "buffers": buffers,
        "metadata": metadata,
        "subgraphs": subgraphs,
    }


def _tensor(t, index: int, dtype_names: dict, buffers: list, budget: _Budget, size: int) -> dict:
    shape = _ints(t.ShapeAsNumpy())
    sig = _ints(t.ShapeSignatureAsNumpy()) or list(shape)  # absent signature: the shape is static
    budget.n(len(shape) + len(sig), 1, size)
    buf = t.Buffer()
    if not 0 <= buf < max(len(buffers), 1):
        raise ValueError(f"tensor {index} refers to buffer {buf} of {len(buffers)}")
    nbytes = buffers[buf]["bytes"] if buffers else 0
    q = t.Quantization()
    quant = None
    if q is not None:
        scale = [float(x) for x in (q.ScaleAsNumpy() if not q.ScaleIsNone() else [])]
        zp = _ints(q.ZeroPointAsNumpy()) if not q.ZeroPointIsNone() else []
        budget.n(len(scale) + len(zp), 1, size)
        mins = [float(x) for x in (q.MinAsNumpy() if not q.MinIsNone() else [])]
        maxs = [float(x) for x in (q.MaxAsNumpy() if not q.MaxIsNone() else [])]
        if scale or mins:
            quant = {
                "scale": scale,
                "zero_point": zp or [0] * len(scale),
                "axis": q.QuantizedDimension(),
                "min": mins,
                "max": maxs,
            }
    return {
        "index": index,
        "name": _str(t.Name()),
        "dtype": dtype_names.get(t.Type(), f"type{t.Type()}"),
        "shape": shape,
        "shape_signature": sig,
        "buffer": buf,
        "bytes": nbytes,
        "constant": nbytes > 0,
        "variable": bool(t.IsVariable()),
        "quantization": quant,
    }
