"""Stale-build cleanup with a real builder in its own PID namespace (a container sharing the edgeq home): root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeq.pipeline.cache import StageCache


def test_a_real_build_in_another_pid_namespace_survives_cleanup(tmp_path):
    """A real builder in its own PID namespace (a container sharing the edgeq home) is mid-build while we clean."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("needs root and unshare(1) (util-linux) to make a PID namespace")
    code = (
        "import sys, time; from pathlib import Path; from edgeq.pipeline.cache import StageCache\n"
        "c = StageCache(Path(sys.argv[1]))\n"
        "with c.build('train', 'k') as tmp:\n"
        "    (tmp / 'model.keras').write_bytes(b'm'); print('building', flush=True); sys.stdin.readline()\n"
        "    (tmp / 'meta.json').write_text('{}')\n"
        "print('done', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    p = subprocess.Popen(  # noqa: S603
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code, str(tmp_path / "cache")],  # noqa: S607
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stdin is not None and p.stdout is not None
    try:
        assert p.stdout.readline().strip() == "building"
        cache = StageCache(tmp_path / "cache")
        (building,) = [x for x in cache.tmp.iterdir() if x.is_dir()]
        assert json.loads(building.with_name(building.name + ".lock").read_text())["pidns"] != os.stat("/proc/self/ns/pid").st_ino
        assert cache.clean_stale() == [] and building.exists()
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "done"
    finally:
        p.kill()
        p.wait()
    assert cache.get("train", "k") is not None and not any(cache.tmp.iterdir())
