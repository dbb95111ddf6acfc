"""The constraints files (constraints/<set>.txt, one per documented install set, written by
`python -m edgeq.tools.constraints`): each pins its declared requirements within their ranges, the test suite's
venv and every extra's set move no version a user of [train] gets, and the torch set moves only what litert-torch
is known to move. Files only, no network: tests/func/test_constraints_resolve.py asks pip whether they resolve."""

from __future__ import annotations

import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from edgeq.tools import constraints as c

REGENERATE = "python -m edgeq.tools.constraints"
# litert-torch 0.10's converter pins xdsl 0.28, which needs typing-extensions < 4.13, and pydantic >= 2.12 needs a
# newer one: pip moves the pair (and pydantic's own parts) down. The reason the torch tests have a venv of their own.
TORCH_MOVES = {"typing-extensions", "pydantic", "pydantic-core", "typing-inspection"}


def pins(name: str) -> dict[str, str]:
    return c.read_pins(c.DIR / f"{name}.txt")


def test_one_file_per_install_set_and_the_train_set_is_what_init_writes():
    assert sorted(p.stem for p in c.DIR.glob("*.txt")) == sorted(c.SETS)
    train = (c.DIR / "train.txt").read_bytes()
    assert c.SKEL_COPY.read_bytes() == train, f"edgeq/skel/constraints.txt is not constraints/train.txt: {REGENERATE}"
    # the nightly examples (dashboards/nightly/) install with `-c constraints.txt` from a checkout
    assert (c.REPO / "constraints.txt").read_bytes() == train


@pytest.mark.parametrize("name", list(c.SETS))
def test_each_set_pins_its_declared_requirements_within_their_ranges(name):
    s = c.SETS[name]
    project = tomllib.loads((c.REPO / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(r for e in s.extras for r in project["optional-dependencies"][e])]
    got = pins(name)
    for req in map(Requirement, declared):
        if req.marker is not None and not req.marker.evaluate():
            continue
        n = canonicalize_name(req.name)
        assert n in got, f"constraints/{name}.txt misses {req.name}: {REGENERATE}"
        assert req.specifier.contains(got[n], prereleases=True), f"{name}: {req.name}=={got[n]} is outside {req.specifier}"
    assert "edgeq" not in got
    text = (c.DIR / f"{name}.txt").read_text()
    assert f"pip install -c constraints/{name}.txt '{s.spec}'" in text  # the header says how to use it


@pytest.mark.parametrize("name", ["base", "labgrid", "tflite-quant", "test"])
def test_no_set_but_torch_moves_a_version_a_train_user_gets(name):
    train, other = pins("train"), pins(name)
    moved = {n: f"{train[n]} -> {other[n]}" for n in sorted(train.keys() & other.keys()) if train[n] != other[n]}
    assert not moved, f"installing {c.SETS[name].spec} moves what a user of edgeq[train] has: {moved}"
    if "train" in c.SETS[name].extras:
        assert set(train) <= set(other)


def test_the_test_venv_has_every_package_a_train_user_has_and_no_torch():
    train, test = pins("train"), pins("test")
    assert set(train) <= set(test)
    assert not {"torch", "litert-torch", "jax"} & set(test)  # the torch tests' own venv has them


def test_the_torch_set_moves_only_what_litert_torch_is_known_to_move():
    train, torch = pins("train"), pins("torch")
    moved = {n for n in train.keys() & torch.keys() if train[n] != torch[n]}
    assert moved <= TORCH_MOVES, f"[torch] now also moves {sorted(moved - TORCH_MOVES)}: say so in the README and pyproject"
    assert {"torch", "litert-torch"} <= set(torch) and set(train) <= set(torch)
