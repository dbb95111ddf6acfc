"""Config checked at the door: repeated threads/variants (each would be a duplicate Prometheus series) and
deploy/benchmark targets or variants that name nothing, reported with file:line and key before any stage runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeq.config import load_pipeline
from edgeq.errors import ConfigError
from edgeq.pipeline import runner as pipeline

HEAD = """\
name: t
model: {builtin: mlp}
quantize:
  variants:
    - type: fp32
    - type: int8
"""


def _err(tmp_path: Path, text: str) -> str:
    p = tmp_path / "pipe.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_pipeline(p)
    return e.value.message


@pytest.mark.parametrize(
    ("body", "line", "key", "value"),
    [
        ("benchmark:\n  targets: [local]\n  threads:\n    - 1\n    - 2\n    - 1\n", 12, "benchmark.threads[2]", "1"),
        ("benchmark:\n  targets: [local]\n  variants:\n    - int8\n    - int8\n", 11, "benchmark.variants[1]", "'int8'"),
        ("deploy:\n  targets: [local]\n  variants: [fp32, int8, fp32]\n", 9, "deploy.variants[2]", "'fp32'"),
    ],
)
def test_duplicate_threads_or_variants_are_refused(tmp_path, body, line, key, value):
    msg = _err(tmp_path, HEAD + body)
    assert msg.startswith(f"{tmp_path / 'pipe.yaml'}:{line}: {key}: duplicate entry {value}"), msg


def test_duplicate_variant_key_names_its_line(tmp_path):
    text = "name: t\nmodel: {builtin: mlp}\nquantize:\n  variants:\n    - type: int8\n    - type: fp32\n    - type: int8\n"
    msg = _err(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'pipe.yaml'}:7: quantize.variants[2]: duplicate variant key 'int8'"), msg
    named = text.replace("    - type: int8\n", "    - {type: int8, name: a}\n")
    assert "duplicate variant key 'a'" in _err(tmp_path, named)


def test_distinct_entries_pass(tmp_path):
    p = tmp_path / "pipe.yaml"
    p.write_text(HEAD + "benchmark:\n  targets: [local]\n  threads: [1, 2, 4]\n  variants: [fp32, int8]\n")
    spec, _ = load_pipeline(p)
    assert spec.benchmark is not None and spec.benchmark.threads == [1, 2, 4]


def test_unknown_variant_names_its_line(tmp_path):
    msg = _err(tmp_path, HEAD + "deploy:\n  targets: [local]\n  variants:\n    - int8\n    - int4\n")
    assert msg.startswith(f"{tmp_path / 'pipe.yaml'}:11: deploy.variants[1]: unknown variant(s) ['int4']"), msg


@pytest.mark.parametrize(
    ("body", "line", "key", "target"),
    [
        ("deploy:\n  targets:\n    - b1\n    - lcoal\n", 11, "deploy.targets[1]", "lcoal"),
        ("deploy:\n  targets: [b1]\nbenchmark:\n  targets: [farm, nope]\n", 11, "benchmark.targets[1]", "nope"),
    ],
)
def test_unknown_target_is_refused_before_any_stage(tmp_path, monkeypatch, body, line, key, target):
    devices = tmp_path / "devices.yaml"
    devices.write_text("devices:\n  - {name: b1, host: 127.0.0.1, tags: [farm]}\n  - {name: local, transport: local}\n")
    p = tmp_path / "pipe.yaml"
    p.write_text(HEAD + "devices: devices.yaml\n" + body)
    home = tmp_path / "home"
    trained: list[str] = []
    with pytest.raises(ConfigError) as e:
        pipeline.run_pipeline(p, home=home, log=trained.append)
    assert e.value.message.startswith(f"{p}:{line}: {key}: target '{target}' matches no device or tag in {devices}"), e.value
    assert "known devices: b1, local" in (e.value.hint or "")
    assert not trained and not (home / "runs").exists()  # nothing ran, no run folder


def test_known_targets_pass_the_check(tmp_path):
    devices = tmp_path / "devices.yaml"
    devices.write_text("devices:\n  - {name: b1, host: 127.0.0.1, tags: [farm]}\n")
    p = tmp_path / "pipe.yaml"
    p.write_text(HEAD + "devices: devices.yaml\ndeploy:\n  targets: [farm, b1, all]\nbenchmark:\n  targets: [b1]\n")
    from edgeq.config import read_pipeline

    pipeline.check_fleet_targets(read_pipeline(p))
