"""The only YAML reader: turns pipeline and devices files into validated, immutable specs.

Errors name the file, the line, the key path and what was expected; nothing past this package
touches a raw dict. reader.py reads YAML with lines and validates; pipeline.py is the pipeline spec, pipelinefile.py reads one
(the devices spec is edgeq.fleet.inventory.devices's, read through this package).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from edgeq.config.reader import NAME_RE, Spec, load, read_yaml, validate, where

if TYPE_CHECKING:
    from edgeq.config.pipeline import (
        BenchmarkStageSpec,
        DataSpec,
        DeployStageSpec,
        EarlyStoppingSpec,
        GatesSpec,
        ModelSpec,
        PipelineSpec,
        QatSpec,
        QuantizeSpec,
        TrainSpec,
        ValidateSpec,
        VariantSpec,
    )
    from edgeq.config.pipelinefile import PipelineFile, load_pipeline, read_pipeline

# the pipeline specs are built on first use: `edgeq devices list` reads only devices.yaml (~15 ms of pydantic models)
_PIPELINE_FILE = ("PipelineFile", "load_pipeline", "read_pipeline")


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("edgeq.config.pipelinefile" if name in _PIPELINE_FILE else "edgeq.config.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "NAME_RE",
    "BenchmarkStageSpec",
    "DataSpec",
    "DeployStageSpec",
    "EarlyStoppingSpec",
    "GatesSpec",
    "ModelSpec",
    "PipelineFile",
    "PipelineSpec",
    "QatSpec",
    "QuantizeSpec",
    "Spec",
    "TrainSpec",
    "ValidateSpec",
    "VariantSpec",
    "load",
    "load_pipeline",
    "read_pipeline",
    "read_yaml",
    "validate",
    "where",
]
