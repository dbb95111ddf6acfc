"""The base install (`pip install edgeq`, no extras) does its job without TensorFlow, tf-keras, tfmot, scikit-learn.

The real CLI runs in subprocesses whose interpreter cannot import those packages: a sitecustomize.py
on PYTHONPATH puts an import blocker first on sys.meta_path (what a fresh venv without the [train]
extra looks like to edgeq's code). bench/install_bench.py measures the real fresh-venv install.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edgeq.agent.floor import NOOP_MODEL_B64

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "sklearn", "scipy")
BLOCKER = f"""
import sys

class _Blocker:
    # a base install has none of these: importing one must fail as it would there
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: base install)", name=name)
        return None

sys.meta_path.insert(0, _Blocker())
"""


@pytest.fixture
def base(tmp_path):
    """Run `python -m edgeq ...` as a base install would: the heavy packages cannot be imported."""
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "EDGEQ_HOME": str(tmp_path / "home"),
    }
    env.pop("EDGEQ_DEVICES", None)
    work = tmp_path / "work"
    work.mkdir()

    def run(*args, timeout=300, py=("-m", "edgeq")):
        p = subprocess.run(
            [sys.executable, *py, *map(str, args)], capture_output=True, text=True, cwd=work, env=env, timeout=timeout
        )
        if py == ("-m", "edgeq"):
            assert "Traceback" not in p.stderr, p.stderr
        return p

    run.env, run.work = env, work  # type: ignore[attr-defined]
    return run


def test_the_blocker_blocks(base):
    p = base("import tensorflow", py=("-c",))
    assert p.returncode == 1 and "blocked: base install" in p.stderr
    p = base("import numpy, matplotlib, paramiko, ai_edge_litert, prometheus_client; print('ok')", py=("-c",))
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_run_names_the_train_extra(base):
    p = base("run", REPO / "pipelines" / "quickstart.yaml")
    assert p.returncode == 12, p.stderr
    assert "pip install 'edgeq[train]'" in p.stderr and "tensorflow" in p.stderr
    p = base("run", REPO / "pipelines" / "quickstart.yaml", "--json")
    assert p.returncode == 12, p.stderr
    doc = json.loads(p.stdout)
    assert doc["exit_code"] == 12 and doc["error"] == "MissingExtraError" and "edgeq[train]" in doc["hint"]


def test_inspect_bench_results_and_metrics_work_without_tensorflow(base, tmp_path):
    model = tmp_path / "noop.tflite"
    model.write_bytes(base64.b64decode(NOOP_MODEL_B64))
    p = base("inspect", model, "--json")
    assert p.returncode == 0, p.stderr
    assert set(json.loads(p.stdout)["op_counts"]) == {"MUL", "ADD"}
    # bench deploys first (upload, sha256 check, load on the board), then measures: deploy and bench in one
    p = base("bench", model, "-t", "local", "--runs", "20", "--warmup", "2", "--min-seconds", "0", "--sessions", "1", "--json")
    assert p.returncode == 0, p.stderr
    board = json.loads(p.stdout)["devices"][0]
    assert board["status"] == "ok" and board["deploy"] == "uploaded and installed"  # verified and loaded by the board
    assert board["results"][0]["count"] >= 20 and board["results"][0]["latency_ms"]["p50"] > 0

    db = tmp_path / "history.db"
    shutil.copyfile(REPO / "tests" / "data" / "history-main.db", db)  # a real history written by main
    p = base("history", "--db", db, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["runs"], p.stderr
    p = base("report", "latest", "--pipeline", "synth", "--db", db, "-o", tmp_path / "r.html")
    assert p.returncode == 0, p.stderr
    assert "<img" in (tmp_path / "r.html").read_text()  # matplotlib's plots: base has matplotlib
    p = base("metrics", "textfile", tmp_path / "edgeq.prom", "--db", db)
    assert p.returncode == 0, p.stderr
    assert "edgeq_" in (tmp_path / "edgeq.prom").read_text()
    _serve_once(base, db)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_once(base, db: Path) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "edgeq", "metrics", "serve", "--port", str(port), "--db", str(db)]
    proc = subprocess.Popen(cmd, env=base.env, cwd=base.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.1)
        assert "edgeq_" in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_init_refuses_to_overwrite_and_follows_the_umask(base, tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "devices.yaml").write_text("devices: []  # mine\n")
    p = base("init", lab)
    assert p.returncode == 2 and "would overwrite" in p.stderr and "--force" in p.stderr
    assert sorted(x.name for x in lab.iterdir()) == ["devices.yaml"]  # all or nothing
    old = os.umask(0o027)
    try:
        p = base("init", lab, "--force", "--json")
    finally:
        os.umask(old)
    assert p.returncode == 0, p.stderr
    written = json.loads(p.stdout)["written"]
    assert "devices.yaml" in written and "dashboards/nightly/edgeq-nightly.service" in written
    assert (lab / "devices.yaml").read_bytes() == (REPO / "devices.yaml").read_bytes()
    # the replaced file keeps its mode; new files get the umask's
    assert stat.S_IMODE((lab / "dashboards" / "grafana" / "edgeq.json").stat().st_mode) == 0o640
    p = base("dashboards", "export", tmp_path / "dash")
    assert p.returncode == 0, p.stderr
    got = sorted(str(f.relative_to(tmp_path / "dash")) for f in (tmp_path / "dash").rglob("*") if f.is_file())
    assert "grafana/edgeq.json" in got and "rules/edgeq.rules.yml" in got and not any("nightly" in g for g in got)
    assert (tmp_path / "dash" / "grafana" / "edgeq.json").read_bytes() == (REPO / "dashboards/grafana/edgeq.json").read_bytes()
