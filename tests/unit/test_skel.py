"""What the wheel ships beside the code: the copies `edgeq init` writes (edgeq/skel/) equal their top-level
sources, and the bundled digits (edgeq/bundled/digits.npz) equal scikit-learn's load_digits()."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from edgeq import skel
from edgeq.config import DataSpec
from edgeq.data import datasets as data
from edgeq.tools import skel as skel_tool

REPO = Path(__file__).resolve().parents[2]


def test_skel_copies_equal_the_top_level_files():
    # after editing dashboards/, devices.yaml, pipelines/quickstart.yaml or constraints.txt:
    # python -m edgeq.tools.skel
    assert skel_tool.differences() == []
    assert "dashboards/nightly/edgeq-nightly.service" in skel.files()
    assert "grafana/edgeq.json" in skel.dashboard_files() and not any("nightly" in f for f in skel.dashboard_files())


def test_the_wheel_ships_the_skeleton_and_the_digits():
    pkg_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert pkg_data["edgeq.bundled"] == ["*.npz"] and pkg_data["edgeq.skel"] == ["**/*"]


def test_bundled_digits_are_sklearns_and_give_the_same_split():
    from sklearn.datasets import load_digits

    d = load_digits()
    with np.load(data.DIGITS_FILE) as z:
        np.testing.assert_array_equal(z["images"], d.images)
        np.testing.assert_array_equal(z["target"], d.target)
    # the split the old sklearn-backed loader made: same permutation of the same rows
    ds = data.load(DataSpec(), REPO, 42)
    x = d.images.astype(np.float32)[..., None] / 16.0 * 255.0
    idx = np.random.default_rng(42).permutation(len(x))
    te = idx[: int(round(len(x) * 0.2))]
    np.testing.assert_array_equal(ds.y_test, d.target[te])
    np.testing.assert_allclose(ds.x_test, x[te] / 255.0, rtol=1e-6)


def test_constraints_pin_every_declared_dependency_within_its_range():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    declared = [*project["dependencies"], *project["optional-dependencies"]["train"]]
    for req in map(Requirement, declared):
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt misses {req.name}: python -m edgeq.tools.constraints"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} is outside {req.specifier}"
