"""What `devices setup` accepts in the board's work dir (edgeq.fleet.setup.layout.judge, pure), and the hashed
requirements pip installs from. tests/farm/test_setup_safety.py runs the real thing on an sshd board."""

from __future__ import annotations

import stat

import pytest

from edgeq.fleet.setup.layout import judge
from edgeq.fleet.setup.run import requirements

W = "/home/pi/.edgeq"
ME = 1000
DIR = {"uid": ME, "mode": stat.S_IFDIR | 0o755, "owner": "pi"}
ROOTS = {**DIR, "uid": 0, "owner": "root"}
V = f"{W}/venvs/0123456789ab"


def link(to: str, target: dict | None = DIR) -> dict:
    return {"uid": ME, "mode": stat.S_IFLNK | 0o777, "owner": "pi", "link": to, "target": target}


@pytest.mark.parametrize(
    "extra",
    [
        {},  # a bare board
        {f"{W}/venv": DIR, f"{W}/wheels": DIR},  # an older edgeq's venv: a real directory
        {f"{W}/venv": link("venvs/0123456789ab"), f"{W}/venvs": DIR},  # edgeq's own link
        {f"{W}/venv": link("venvs/0123456789ab", None), f"{W}/venvs": DIR},  # its venv gone: built again
    ],
)
def test_what_setup_builds_in(extra):
    assert judge(W, extra, ME) is None


@pytest.mark.parametrize(
    "extra, path, why",
    [
        ({f"{W}/venv": link("/home/pi/photos")}, f"{W}/venv", "symbolic link to '/home/pi/photos' that edgeq did not make"),
        ({f"{W}/venv": link("venvs/../../photos")}, f"{W}/venv", "that edgeq did not make"),
        ({f"{W}/venv": link("venvs/0123456789ab", ROOTS)}, V, "owned by root"),
        ({f"{W}/venv": link("venvs/0123456789ab", link("/etc"))}, V, "is a symbolic link"),
        ({f"{W}/venvs": {**DIR, "mode": stat.S_IFDIR | 0o777}}, f"{W}/venvs", "writable by group and others"),
        ({f"{W}/wheels": link("/tmp/w")}, f"{W}/wheels", "is a symbolic link"),
        ({f"{W}/venv": {**DIR, "uid": 1001, "owner": "bob"}}, f"{W}/venv", "owned by bob"),
        ({f"{W}/venv": {**DIR, "mode": stat.S_IFREG | 0o644}}, f"{W}/venv", "is not a directory"),
    ],
)
def test_what_setup_refuses(extra, path, why):
    bad = judge(W, extra, ME)
    assert bad is not None and bad[0] == path and why in bad[1], bad


def test_requirements_pin_every_file_by_hash_and_quote_the_path():
    text = requirements("/srv/my boards/w/wheels", (("numpy-1.21.6-cp37-cp37m-x.whl", "ab" * 32),))
    assert text == f"file:///srv/my%20boards/w/wheels/numpy-1.21.6-cp37-cp37m-x.whl --hash=sha256:{'ab' * 32}\n"
