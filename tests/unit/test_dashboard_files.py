"""Dashboards and rules against a real Prometheus fed by real `edgeq run`s (local board, real agent, hwmon power).

Every panel's PromQL of dashboards/grafana/edgeq.json must return series; promtool checks and unit-tests the rules.
"""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from edgeq.testing.common import REPO

DASH = REPO / "dashboards"
DASHBOARD = DASH / "grafana" / "edgeq.json"


def test_dashboard_json_and_provisioning_are_consistent():
    raw = DASHBOARD.read_text()
    assert "${DS_" not in raw and "__inputs" not in raw
    dash = json.loads(raw)
    assert [v["name"] for v in dash["templating"]["list"]] == ["pipeline", "device", "variant"]
    for v in dash["templating"]["list"]:
        assert v["datasource"]["uid"] == "edgeq-prometheus" and v["includeAll"] and v["allValue"] == ".*"
    for panel in dash["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "edgeq-prometheus"}, panel["title"]
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == "edgeq-prometheus"
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for needle in (
        "latency p50 / p90",
        "int8 vs fp32 speed-up",
        "accuracy per variant",
        "accuracy drop",
        "model size",
        "peak memory",
        "power",
        "energy per inference",
        "last successful nightly",
        "board health",
    ):
        assert needle in titles, needle
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    ds = yaml.safe_load((DASH / "provisioning" / "datasources" / "edgeq.yml").read_text())
    assert ds["datasources"][0]["uid"] == "edgeq-prometheus" and ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load((DASH / "provisioning" / "dashboards" / "edgeq.yml").read_text())
    assert prov["providers"][0]["type"] == "file" and prov["providers"][0]["options"]["path"]
    prom = yaml.safe_load((DASH / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True and "edgeq-exporter" in jobs
    p = subprocess.run(["promtool", "check", "config", str(DASH / "prometheus.yml")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom edgeq.cli import app\n"
        "for args in (['--help'], ['metrics', '--help'], ['history', '--help'], ['report', '--help']):\n"
        "    r = CliRunner().invoke(app, args)\n    assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('tensorflow', 'matplotlib', 'prometheus_client', 'numpy', 'sqlite3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
