"""The variant table (edgeq/stages/variants.py): one row per variant type, in step with the config's lists."""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path

import pytest

from edgeq.config import VariantSpec
from edgeq.config.pipeline import VariantType
from edgeq.config.pipelinefile import TFLITE_TYPES
from edgeq.stages.variants import KINDS, builder, kind

ROOT = Path(__file__).resolve().parents[2]


def test_one_row_per_type_the_config_accepts():
    assert set(KINDS) == set(typing.get_args(VariantType))
    assert all(k.type == t for t, k in KINDS.items())


def test_the_float_tflite_types_are_the_configs():
    # the config layer sits below stages and keeps its own list for model.tflite / model.torch checks
    assert {t for t, k in KINDS.items() if k.from_float_tflite} == set(TFLITE_TYPES)


@pytest.mark.parametrize("t", sorted(KINDS))
def test_calibration_selection_is_allowed_exactly_on_calibrated_types(t):
    if kind(t).calibrated:
        VariantSpec(type=t, calibration_selection="first")
    else:
        with pytest.raises(ValueError, match="calibration_selection applies to"):
            VariantSpec(type=t, calibration_selection="first")


def test_each_rows_extra_exists():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {k.extra for k in KINDS.values() if k.extra} <= set(extras)


# What the four dispatch sites decided before the table (steps.py, quantize.py, convert.py, litert.py):
# (draws calibration rows, full-integer check, builder for a Keras model, calibrated model kept for the debugger)
BEFORE = {
    "fp32": (False, False, "converter", False),
    "int8": (True, True, "converter", True),
    "int16x8": (True, True, "converter", False),
    "dynamic": (False, False, "converter", False),
    "float16": (False, False, "converter", False),
    "edgetpu": (True, True, "edgetpu", False),
    "weight_only": (False, False, "litert", False),
}


@pytest.mark.parametrize("t", sorted(BEFORE))
def test_the_table_decides_what_the_if_chains_did(t):
    k = kind(VariantSpec(type=t))
    assert (k.calibrated, k.full_integer, builder(VariantSpec(type=t), made_elsewhere=False), k.requantized) == BEFORE[t]


def test_qat_and_models_made_elsewhere_pick_their_builder():
    assert builder(VariantSpec(type="int8", qat=True), made_elsewhere=False) == "qat"
    for t in TFLITE_TYPES:
        assert builder(VariantSpec(type=t), made_elsewhere=True) == "litert"
