"""PyTorch models (model.torch): converted to a float .tflite by litert-torch (the extra edgeq[torch]).

The float .tflite then goes the model.tflite way (edgeq/stages/litert.py): the LiteRT quantizer makes the
int8 / dynamic / weight_only variants, validate measures each .tflite on the test split. edgeq trains
nothing here: the module comes trained (its factory loads the weights) or as a torch.export file (.pt2).
Both are code the pipeline trusts: a factory runs as imported, and a .pt2 is loaded with every torch.load
weights-only and without the parts torch unpickles or evaluates past that (edgeq/stages/pt2guard.py).

Layout: edgeq's image rows are NHWC. A PyTorch vision model takes NCHW, so with torch_layout: nchw (the
default) litert-torch's to_channel_last_io wraps the module: the .tflite takes NHWC like the data, and the
transposes are part of the graph.

The conversion runs in a child process (python -m edgeq.stages.torchsrc JOB, through edgeq/stages/child.py like
QAT): torch.export imports torch._dynamo and with it triton, whose native code crashes (SIGSEGV) in a process that
has already loaded TensorFlow, which an edgeq process may have (checked on this stack: `import tensorflow;
import torch._dynamo`).
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from edgeq.config import ModelSpec
from edgeq.data import zoo
from edgeq.errors import MissingExtraError, ModelError
from edgeq.records.stages import TorchConversion
from edgeq.stages import pt2guard
from edgeq.stages.child import child_main, run_child
from edgeq.stages.quiet import captured_output

DIST = "litert-torch"
EXTRA = "torch"


def converter_version() -> str | None:
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:
        return None


def _missing(e: object) -> MissingExtraError:
    return MissingExtraError(
        f"model.torch needs PyTorch and litert-torch ({DIST}), which are not installed ({e})",
        f"pip install 'edgeq[{EXTRA}]' (about 3 GB: PyPI's torch for x86_64 Linux is the CUDA build), "
        "or convert the model elsewhere and give the float .tflite as model.tflite",
    )


def _modules():
    try:
        import litert_torch
        import torch
    except ImportError as e:
        raise _missing(e) from None
    return torch, litert_torch


def load_module(spec: ModelSpec, base: Path, input_shape: tuple, num_classes: int):
    """The torch.nn.Module to convert, in eval mode: a factory's return value, or a .pt2 file's program."""
    torch, _ = _modules()
    src = spec.torch or ""
    if src.endswith(".pt2"):
        path = zoo.torch_export_file(spec, base)
        pt2guard.check_pt2(path)  # what no torch setting makes safe: refused before torch reads the file
        try:
            with pt2guard.weights_only_loads():  # torch.export.load has no weights_only of its own
                module = torch.export.load(str(path)).module()
        except pickle.UnpicklingError as e:
            # torch's message starts with its 2.6 default change; the reason is the line after "WeightsUnpickler error"
            lines = [x.strip() for x in str(e).splitlines() if x.strip()]
            why = next((lines[i + 1] for i, x in enumerate(lines[:-1]) if "WeightsUnpickler error" in x), "")
            raise ModelError(
                f"model.torch {path}: edgeq does not load this .pt2: it holds a pickle that is not plain tensors, "
                f"which torch.load refused to unpickle weights-only{f' ({why[:200]})' if why else ''}",
                "a .pt2 can run its author's code when loaded: export a module you trust, with tensors only "
                "(docs/pipeline-yaml.md#a-pipeline-yaml-is-code)",
            ) from None
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else ""
            raise ModelError(
                f"model.torch {path}: not a torch.export program: {type(e).__name__}: {msg[:300]}",
                "write it with torch.export.save(torch.export.export(model.eval(), (sample,)), 'model.pt2')",
            ) from None
        return module
    module = zoo.call_factory(src, base, input_shape, num_classes, "model.torch")
    if not isinstance(module, torch.nn.Module):
        raise ModelError(
            f"model.torch {src!r} returned {type(module).__name__}, not a torch.nn.Module",
            "return the trained module (load its state_dict inside the function)",
        )
    return module.eval()


def convert_torch(
    spec: ModelSpec, base: Path, input_shape: tuple, num_classes: int, out_dir: Path, log: Callable[[str], None]
) -> TorchConversion:
    """Write out_dir/model.tflite (float32) from model.torch, in a child process; returns the stage's metrics."""
    for name in ("torch", "litert_torch"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError) as e:
            raise _missing(e) from None
        if not found:
            raise _missing(f"no module named {name!r}")
    job = {
        "model": spec.model_dump(mode="json", exclude_unset=True),
        "base": str(base),
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "out_dir": str(out_dir),
    }
    # the child reports JSON on purpose (torch cannot share a process with TensorFlow): this is the one place
    # where it becomes a record
    result = run_child(
        "edgeq.stages.torchsrc",
        job,
        out_dir,
        log,
        name="torch",
        died=f"model.torch {spec.torch!r}: the conversion process",
        error=ModelError,
        # the relay this shared with QAT always set it; kept so the torch child's environment is unchanged
        env={"TF_USE_LEGACY_KERAS": "1"},
    )
    return TorchConversion.from_json(result)


def _convert(
    spec: ModelSpec, base: Path, input_shape: tuple, num_classes: int, out_dir: Path, say: Callable[[str], None]
) -> TorchConversion:
    """The child's work: load the module, wrap it for NHWC, convert, export out_dir/model.tflite."""
    torch, litert_torch = _modules()
    module = load_module(spec, base, input_shape, num_classes)
    images = len(input_shape) == 3
    if images and spec.torch_layout == "nchw":
        h, w, c = input_shape
        try:  # the module's own layout first: a wrong shape fails here with torch's message, not in the converter
            with torch.no_grad():
                module(torch.zeros(1, c, h, w))
        except Exception as e:
            raise ModelError(
                f"model.torch {spec.torch!r} does not take NCHW input [1, {c}, {h}, {w}] (the data's {list(input_shape)} "
                f"rows, channels first): {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                "make data produce what the model was trained on (image_size, color), or set model.torch_layout: nhwc",
            ) from None
        module = litert_torch.to_channel_last_io(module, args=[0], outputs=[])
    sample = (torch.zeros(1, *input_shape),)
    say(f"  converting {spec.torch} with litert-torch {converter_version()} (input [1, {', '.join(map(str, input_shape))}])")
    t0 = time.perf_counter()
    try:
        with captured_output():
            edge = litert_torch.convert(module, sample)
            edge.export(str(out_dir / "model.tflite"))
    except MissingExtraError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ModelError(
            f"model.torch {spec.torch!r}: litert-torch could not convert it: {type(e).__name__}: {msg[:400]}",
            "rerun with --debug for the converter's output; litert-torch converts what torch.export can trace",
        ) from None
    return TorchConversion(
        skipped="PyTorch model: converted by litert-torch, not trained",
        train_seconds=round(time.perf_counter() - t0, 3),
        params=int(sum(p.numel() for p in module.parameters())),
    )


def _work(job: dict, say: Callable[[str], None]) -> dict:
    """The child's side of convert_torch(): its record as JSON, which the parent turns back into the record."""
    spec = ModelSpec.model_validate(job["model"])
    out = _convert(spec, Path(job["base"]), tuple(job["input_shape"]), job["num_classes"], Path(job["out_dir"]), say)
    return out.to_json()


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:], _work))
