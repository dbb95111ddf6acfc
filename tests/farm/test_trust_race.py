"""Two `devices trust` at once, for different boards, must both end up in known_hosts (real sshd, real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgeq.testing.fleet import board_entry, write_devices

REPO = Path(__file__).resolve().parents[2]

# Each worker fetches its board's host key over SSH once, then records it whenever the parent says "go": both
# workers start their read-modify-write of known_hosts within a millisecond or so of each other.
WORKER = """
import sys
from pathlib import Path
from edgeq.fleet import load_inventory
from edgeq.fleet.transport.hostkeys import fetch_host_key, record_host_key
dev = load_inventory(sys.argv[1]).get(sys.argv[2])
key = fetch_host_key(dev)
print("ready", flush=True)
for line in sys.stdin:
    print(record_host_key(Path(sys.argv[3]), key), flush=True)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}


def test_concurrent_record_keeps_both_lines(farm, tmp_path):
    kh = tmp_path / "known_hosts"
    dev = write_devices(tmp_path, *(board_entry(farm, b, tmp_path, known_hosts=str(kh)) for b in farm.boards[:2]))
    workers = [
        subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-c", WORKER, str(dev), b.name, str(kh)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for b in farm.boards[:2]
    ]
    lost = 0
    try:
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        for _ in range(200):
            kh.write_text("")
            for w in workers:
                assert w.stdin is not None
                w.stdin.write("go\n")
                w.stdin.flush()
            results = [w.stdout.readline().strip() for w in workers if w.stdout is not None]
            assert results == ["added", "added"], results
            text = kh.read_text()
            lost += sum(b.known_hosts_line not in text for b in farm.boards[:2])
    finally:
        for w in workers:
            w.kill()
            w.wait()
    assert lost == 0, f"{lost} known_hosts line(s) lost in 200 concurrent trusts"


def test_two_cli_trusts_at_once(farm, tmp_path):
    kh = tmp_path / "known_hosts"
    dev = write_devices(tmp_path, *(board_entry(farm, b, tmp_path, known_hosts=str(kh)) for b in farm.boards))
    env = {**_env(), "EDGEQ_HOME": str(tmp_path / "home")}
    for _ in range(5):
        kh.unlink(missing_ok=True)
        procs = [
            subprocess.Popen(  # noqa: S603 - fixed argv
                [sys.executable, "-m", "edgeq", "devices", "trust", b.name, "--yes", "--devices", str(dev)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for b in farm.boards
        ]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        text = kh.read_text()
        assert all(b.known_hosts_line in text for b in farm.boards), text
        assert len(text.splitlines()) == len(farm.boards)
