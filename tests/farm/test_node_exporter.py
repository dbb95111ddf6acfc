"""Debian's node_exporter, running as its own user (as its systemd unit runs it), exports edgeq's textfile."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from edgeq.results import load_manifest, record_run
from edgeq.testing import Missing
from edgeq.testing.promfarm import free_port, http_get, stop, synthetic_manifest

BINARY = "prometheus-node-exporter"  # Debian's name (package prometheus-node-exporter)
USER = "prometheus"  # the package's system user, the one its systemd unit runs as


def _scrape(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"node_exporter exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            code, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=2.0)
            if code == 200:
                return body.decode()
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"node_exporter not answering on {port}: {log.read_text()[-2000:]}")


@pytest.fixture
def textfile_dir():
    # not under pytest's tmp_path: its parents are 0700 root, which the exporter's user could not traverse
    d = Path(tempfile.mkdtemp(prefix="edgeq-textfile-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_node_exporter_as_its_own_user_exports_the_textfile(tmp_path, edgeq, textfile_dir):
    exe = shutil.which(BINARY)
    if exe is None:
        raise Missing(f"needs the Debian package {BINARY} (tests/run-all.sh installs it)")
    try:
        uid = pwd.getpwnam(USER).pw_uid
    except KeyError:
        raise Missing(f"the {BINARY} package's user {USER!r} is missing: reinstall the package") from None
    assert uid != 0
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1", started="2026-01-01T02:30:00+00:00", devices=("pi5",))), db)
    prom = textfile_dir / "edgeq.prom"
    old = os.umask(0o022)  # a service's usual umask; the file must not come out 0600 whatever mkstemp does
    try:
        r = edgeq("metrics", "textfile", prom, "--db", db)
    finally:
        os.umask(old)
    assert r.code == 0, r.stderr
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644
    port = free_port()
    log = tmp_path / "node-exporter.log"
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            exe,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={textfile_dir}",
        ],
        user=USER,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        text = _scrape(port, proc, log)
        assert Path(f"/proc/{proc.pid}/status").read_text().split("Uid:")[1].split()[0] == str(uid)
        assert "node_textfile_scrape_error 0" in text, text[-2000:]
        series = [x for x in text.splitlines() if x.startswith("edgeq_latency_p50_seconds{")]
        assert series and all('device="pi5"' in x and 'pipeline="synth"' in x for x in series), text[-2000:]
        assert any(x.startswith('edgeq_last_run_ok{pipeline="synth"} 1') for x in text.splitlines())
    finally:
        stop(proc)
