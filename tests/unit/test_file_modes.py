"""Files other programs read (textfile export, report, manifest) get the umask's permissions, not mkstemp's 0600;
an edited file keeps its own mode."""

from __future__ import annotations

import os
import stat

from edgeq import paths


def _mode(p) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert paths.umask() == 0o022
        paths.atomic_write_bytes(tmp_path / "a.prom", b"x 1\n")
        assert _mode(tmp_path / "a.prom") == 0o644
        os.umask(0o077)
        assert paths.umask() == 0o077
        paths.atomic_write_json(tmp_path / "m.json", {"a": 1})
        assert _mode(tmp_path / "m.json") == 0o600
    finally:
        os.umask(old)


def test_replacing_keeps_the_mode_and_explicit_mode_wins(tmp_path):
    p = tmp_path / "devices.yaml"
    p.write_text("devices: []\n")
    p.chmod(0o640)
    paths.atomic_write_bytes(p, b"devices: [] # edited\n")
    assert _mode(p) == 0o640 and p.read_bytes().endswith(b"edited\n")
    paths.atomic_write_bytes(p, b"x", mode=0o600)
    assert _mode(p) == 0o600
    assert not [q for q in tmp_path.iterdir() if q.name.endswith(".tmp")]
