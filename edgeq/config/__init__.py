"""The only YAML reader: turns pipeline and devices files into validated, immutable specs.

Errors name the file, the line, the key path and what was expected; nothing past this package
touches a raw dict. reader.py reads YAML with lines and validates; pipeline.py is the pipeline spec, pipelinefile.py reads one
(the devices spec is edgeq.fleet.inventory.devices's, read through this package).
"""

from edgeq.config.pipeline import (
    NAME_RE,
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
from edgeq.config.reader import Spec, load, read_yaml, validate, where

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
