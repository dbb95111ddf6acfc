"""A misspelt key or target gets the nearest valid name in its error (pipeline YAML, devices.yaml, --target)."""

from __future__ import annotations

import pytest

from edgeq.config import read_pipeline
from edgeq.errors import ConfigError
from edgeq.fleet.inventory.devices import load_inventory


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: x\nmodel: {builtin: mlp}\ndata: {sourse: idx}\n", "data.sourse: unknown key (did you mean 'source'?)"),
        (
            "name: x\nmodel: {builtin: mlp}\nquantize:\n  variants:\n    - {type: int8, calibraton_samples: 5}\n",
            "variants[0].calibraton_samples: unknown key (did you mean 'calibration_samples'?)",
        ),
        ("name: x\nmodel: {builtin: mlp}\nvalidate: {gates: {min_acuracy: 0.5}}\n", "(did you mean 'min_accuracy'?)"),
        ("name: x\nmodel: {builtin: mlp}\nzzz: 1\n", "zzz: unknown key\n"),  # nothing near: no guess
    ],
)
def test_pipeline_keys(tmp_path, text, needle):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_pipeline(p)
    assert needle in e.value.message + "\n", e.value.message


def test_devices_key_and_target(tmp_path):
    p = tmp_path / "devices.yaml"
    p.write_text("devices:\n  - {name: pi5-a, transport: local, workdri: /tmp/x}\n")
    with pytest.raises(ConfigError, match=r"workdri: unknown key \(did you mean 'workdir'\?\)"):
        load_inventory(p)
    p.write_text("devices:\n  - {name: pi5-a, transport: local, tags: [lab]}\n")
    inv = load_inventory(p)
    with pytest.raises(ConfigError, match=r"\(did you mean 'pi5-a'\?\)"):
        inv.select(["pi5a"])
    with pytest.raises(ConfigError) as e:
        inv.select(["zzz"])
    assert "did you mean" not in e.value.message
