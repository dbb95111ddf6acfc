"""`devices setup` is as careful with the board's work dir as deploy: a real sshd board whose python is pyenv's
3.7 (a Coral's Mendel), offline, wheels from this machine (as tests/farm/test_setup.py).

- the work-dir check every other operation runs: a shared (world-writable) work dir is refused, and a planted
  W/venv symlink is never followed (`python -m venv --clear` emptied its target);
- pip installs with --require-hashes: a wheel swapped on the board after its sha256 check is refused;
- the host's wheel cache is re-hashed on use: a corrupted cached wheel is downloaded again;
- the new venv is built beside the current one (W/venvs/ID) and W/venv, a link edgeq made, is switched in one
  rename under W/lock (the board lock a bench holds); other venvs and old wheels are pruned.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from edgeq.testing import offline
from edgeq.testing.fleet import board_entry, run_json, write_devices

PY37 = "/root/.pyenv/versions/3.7.16/bin/python3.7"


@pytest.fixture
def board(farm, tmp_path, monkeypatch):
    if not Path(PY37).exists():
        pytest.fail(f"{PY37} is missing: pyenv install 3.7.16", pytrace=False)
    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "home"))
    offline.make_offline(farm.boards[0])
    return farm.boards[0]


def _devices(farm, board, tmp_path: Path, *names: str, **over) -> Path:
    entries = [board_entry(farm, board, tmp_path, name=n, python=PY37, **over) for n in names]
    return write_devices(tmp_path, *entries)


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("someone else's data\n")
    return victim


def test_a_planted_venv_symlink_in_a_shared_work_dir_is_not_followed(farm, board, tmp_path):
    w = tmp_path / "boards" / "shared"
    w.mkdir(parents=True)
    os.chmod(w, 0o1777)  # noqa: S103 - a shared work dir, like /tmp: anyone may add names to it
    victim = _victim(tmp_path)
    os.symlink(victim, w / "venv")  # planted by another user
    dev = _devices(farm, board, tmp_path, "shared")
    code, doc, err = run_json("devices", "setup", "shared", "--devices", dev)
    rec = doc["devices"][0]
    assert (victim / "precious.txt").exists(), "python -m venv --clear followed the planted symlink"
    assert code != 0 and rec["kind"] == "unsafe_workdir", rec
    assert "writable by" in rec["error"] and str(w) in rec["error"], rec


def test_a_venv_symlink_edgeq_did_not_make_is_refused(farm, board, tmp_path):
    w = tmp_path / "boards" / "mine"
    w.mkdir(parents=True, mode=0o700)
    victim = _victim(tmp_path)
    os.symlink(victim, w / "venv")
    dev = _devices(farm, board, tmp_path, "mine")
    code, doc, err = run_json("devices", "setup", "mine", "--devices", dev)
    rec = doc["devices"][0]
    assert (victim / "precious.txt").exists(), "python -m venv --clear followed the symlink"
    assert code != 0 and rec["kind"] == "unsafe_workdir", rec
    assert f"{w}/venv is a symbolic link to {str(victim)!r}" in rec["error"], rec
    assert os.readlink(w / "venv") == str(victim)  # left as found


def _doctored(wheel: Path, canary: Path) -> bytes:
    """The same wheel with one more file: a .pth that site.py runs at every start of the venv's python."""
    out = wheel.with_suffix(".doctored")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        dst.writestr("edgeq_canary.pth", f"import os; open({str(canary)!r}, 'w').write('ran')\n")
    return out.read_bytes()


def test_a_wheel_swapped_after_its_check_is_refused_by_pip(farm, board, tmp_path, monkeypatch):
    from edgeq.fleet.setup import run as setup_run

    canary = tmp_path / "canary"
    real_install = setup_run.install

    def swap_then_install(s, wheels):
        # the moment between the board's sha256 check of W/wheels and pip reading them
        (wheel,) = Path(s.wheels).glob("tflite_runtime-*.whl")
        tmp = wheel.with_name(wheel.name + ".swap")
        tmp.write_bytes(_doctored(wheel, canary))
        os.replace(tmp, wheel)
        return real_install(s, wheels)

    monkeypatch.setattr(setup_run, "install", swap_then_install)
    dev = _devices(farm, board, tmp_path, "swap")
    code, doc, err = run_json("devices", "setup", "swap", "--devices", dev)
    rec = doc["devices"][0]
    assert not canary.exists(), "the swapped wheel was installed and its .pth ran"
    assert code != 0 and rec["kind"] == "install_failed", rec
    assert "no longer matches the sha256" in rec["error"] and "Expected sha256" in rec["error"], rec
    w = tmp_path / "boards" / "swap"
    assert not list(w.glob("**/edgeq_canary.pth"))
    assert not (w / "venv").exists()  # nothing was switched in


def test_a_corrupted_wheel_in_the_host_cache_is_downloaded_again(farm, board, tmp_path):
    dev = _devices(farm, board, tmp_path, "first", "second")
    code, doc, err = run_json("devices", "setup", "first", "--devices", dev)
    assert code == 0, (doc, err)
    (manifest,) = (tmp_path / "home" / "wheels").glob("*/*/wheels.json")
    files = json.loads(manifest.read_text())["files"]
    name = next(n for n in files if n.startswith("tflite_runtime-"))
    cached = manifest.parent / name
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a bit flipped on disk: same size, same name
    cached.write_bytes(bytes(data))
    code, doc, err = run_json("devices", "setup", "second", "--devices", dev)
    assert code == 0, (doc, err)
    assert doc["devices"][0]["action"] == "set up"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == files[name]


def _hold_lock(w: Path):
    fd = os.open(w / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"pid": os.getpid(), "hostname": "test", "command": "bench m"}).encode())
    return fd


def test_a_new_venv_is_built_beside_and_switched_in_under_the_board_lock(farm, board, tmp_path):
    w = tmp_path / "boards" / "sw"
    w.mkdir(parents=True, mode=0o700)
    # what an older edgeq left: W/venv a real directory
    subprocess.run([PY37, "-m", "venv", str(w / "venv")], check=True)
    (w / "venv" / "old-edgeq.txt").write_text("x")
    dev = _devices(farm, board, tmp_path, "sw", lock_timeout=2)
    code, doc, err = run_json("devices", "setup", "sw", "--devices", dev)
    assert code == 0, (doc, err)
    first = os.readlink(w / "venv")
    assert first.startswith("venvs/") and [p.name for p in (w / "venvs").iterdir()] == [first.split("/")[1]]
    assert doc["devices"][0]["python"] == str(w / "venv" / "bin" / "python")
    assert not list(w.glob("**/old-edgeq.txt"))  # the old directory was moved aside and removed

    (w / "wheels" / "stale-0.1-py3-none-any.whl").write_bytes(b"an earlier set-up's wheel")
    (w / "venv" / "edgeq-setup.json").unlink()  # no marker: the next set-up builds again
    fd = _hold_lock(w)  # a bench is measuring
    try:
        code, doc, err = run_json("devices", "setup", "sw", "--devices", dev)
        rec = doc["devices"][0]
        assert code != 0 and rec["kind"] == "locked" and "bench m" in rec["error"], rec
        assert os.readlink(w / "venv") == first  # the bench's venv stayed in place
        assert (w / first / "bin" / "python").exists()
    finally:
        os.close(fd)
    code, doc, err = run_json("devices", "setup", "sw", "--devices", dev)
    assert code == 0 and doc["devices"][0]["action"] == "set up", (doc, err)
    second = os.readlink(w / "venv")
    assert second != first and [p.name for p in (w / "venvs").iterdir()] == [second.split("/")[1]]
    assert not (w / "wheels" / "stale-0.1-py3-none-any.whl").exists()
    assert sorted(p.name for p in (w / "wheels").iterdir()) == sorted(doc["devices"][0]["wheels"])
    p = subprocess.run([str(w / "venv" / "bin" / "python"), "-c", "import tflite_runtime"], capture_output=True, check=False)
    assert p.returncode == 0, p.stderr
