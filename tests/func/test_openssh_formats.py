"""Host-key fingerprints and hashed known_hosts entries as a live OpenSSH `ssh-keygen` writes them.

The unit tier checks the same functions against vectors this tool wrote once (tests/unit/test_fleet_units.py);
here a fresh key and a fresh `ssh-keygen -H` catch a format that moved with a newer OpenSSH.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from edgeq.fleet.transport.hostkeys import fingerprint, known_keys
from edgeq.testing import sshfarm


def test_fingerprint_matches_ssh_keygen(tmp_path: Path):
    sshfarm.keygen(tmp_path / "k")
    pub = (tmp_path / "k.pub").read_text().split()
    assert fingerprint(base64.b64decode(pub[1])) == sshfarm.fingerprint_of(tmp_path / "k.pub")


def test_entries_hashed_by_ssh_keygen_are_found(tmp_path: Path):
    sshfarm.keygen(tmp_path / "h")
    kt, b64 = (tmp_path / "h.pub").read_text().split()[:2]
    plain = tmp_path / "kh"
    plain.write_text(f"[127.0.0.1]:2200 {kt} {b64}\nother.host {kt} {b64}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(plain)], check=True, capture_output=True)  # noqa: S603,S607
    assert "127.0.0.1" not in plain.read_text()
    assert known_keys(plain, "[127.0.0.1]:2200") == [(kt, b64)]
    assert known_keys(plain, "other.host") == [(kt, b64)]
    assert known_keys(plain, "[127.0.0.1]:2201") == []
