"""Data for a model's tensors: .npy files, conversion to the input's dtype, seeded random inputs, batching,
and the JSON description of a tensor. Tensor details are the runtimes' dicts (name, shape, dtype, quantization).

Runs on boards: stdlib + numpy, Python 3.7+.
"""

from __future__ import annotations

import os

from .codes import AgentFailure
from .runtimes import load_numpy


def describe_tensor(detail: dict) -> dict:
    np = load_numpy()
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {
        "name": detail.get("name"),
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [int(d) for d in detail["shape"]],
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None,
    }


def zeros(detail: dict):
    """Zeros of the tensor's shape and dtype."""
    return load_numpy().zeros([int(d) for d in detail["shape"]], dtype=detail["dtype"])


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
