"""Write a pipeline's trained model as a float .tflite: a model "made elsewhere", for model.tflite.

    python3 -m edgeq.tools.float_tflite pipelines/fashion-mnist-cnn.yaml data/fashion-mnist-cnn-float.tflite

It trains through edgeq's stage cache under the same key as `edgeq run` of that pipeline, so a pipeline
already run is not trained again (and pipelines/from-tflite.yaml then quantizes exactly the model that
pipeline's own int8 variant was converted from). The file is written atomically; no run is recorded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def write_float_tflite(pipeline: Path, out: Path, log=lambda s: None) -> dict:
    """Train (or take from the cache) the pipeline's model, convert it to fp32 and write it to out."""
    from edgeq import paths
    from edgeq.config import QuantizeSpec, VariantSpec, read_pipeline
    from edgeq.data import zoo
    from edgeq.errors import ConfigError
    from edgeq.pipeline.cache import StageCache
    from edgeq.pipeline.context import RunContext
    from edgeq.pipeline.runner import data_stage_key, library_versions, new_run_id
    from edgeq.pipeline.steps import quantize_stage, train_stage

    loaded = read_pipeline(pipeline)
    if loaded.spec.model.tflite:
        raise ConfigError(f"{loaded.where(('model', 'tflite'))}: this pipeline already starts from a .tflite", None)
    fp32 = VariantSpec(type="fp32")
    spec = loaded.spec.model_copy(update={"quantize": QuantizeSpec(variants=[fp32]), "deploy": None, "benchmark": None})
    home = paths.home()
    with tempfile.TemporaryDirectory(prefix="edgeq-float-tflite-") as tmp:
        ctx = RunContext(spec, loaded.base, StageCache(home / "cache"), Path(tmp), new_run_id(), library_versions(), False, log)
        train = train_stage(ctx, data_stage_key(ctx), zoo.fingerprint(spec.model, loaded.base))
        q, _ = quantize_stage(ctx, fp32, train, data_stage_key(ctx))
        blob = Path(q.output).read_bytes()
    out.parent.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_bytes(out, blob)
    return {"out": str(out), "size_bytes": len(blob), "trained": not train.cached, "train_key": train.key}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline", type=Path, help="a pipeline YAML whose model to train, e.g. pipelines/fashion-mnist-cnn.yaml")
    ap.add_argument("out", type=Path, help="the .tflite to write, e.g. data/fashion-mnist-cnn-float.tflite")
    a = ap.parse_args(argv)
    from edgeq.errors import EdgeqError

    def log(s: str) -> None:
        print(s, file=sys.stderr)

    try:
        info = write_float_tflite(a.pipeline, a.out, log)
    except EdgeqError as e:
        print(f"error: {e.message}" + (f"\nhint: {e.hint}" if e.hint else ""), file=sys.stderr)
        return int(e.exit_code)
    how = "trained" if info["trained"] else "from the stage cache"
    print(f"wrote {info['out']} ({info['size_bytes']} bytes, float32; model {how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
