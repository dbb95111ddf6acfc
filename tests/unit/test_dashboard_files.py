"""The shipped dashboard, provisioning and rules files as their consumers read them, without running Prometheus.

promtool's checks of the same files are in tests/func/test_dashboard_promtool.py; every panel returning series
from a real Prometheus fed by real runs is tests/farm/test_dashboards.py.
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
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "lab", "pipeline", "device", "variant", "edgeq_exporter"]
    ds_var = dash["templating"]["list"][0]
    assert ds_var["type"] == "datasource" and ds_var["query"] == "prometheus" and ds_var["current"]["value"] == "edgeq-prometheus"
    exporter = dash["templating"]["list"][-1]  # where the point links open a run's report
    assert exporter["type"] == "textbox" and exporter["query"].startswith("http://127.0.0.1:")
    for v in dash["templating"]["list"][1:-1]:
        assert v["datasource"]["uid"] == "${datasource}" and v["includeAll"] and v["allValue"] == ".*"
    assert "edgeq-prometheus" not in json.dumps(dash["panels"]) + json.dumps(dash.get("annotations"))
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
        "where the time goes: top 10 ops",
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


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom edgeq.cli import app\n"
        "for args in (['--help'], ['metrics', '--help'], ['history', '--help'], ['report', '--help']):\n"
        "    r = CliRunner().invoke(app, args)\n    assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('tensorflow', 'matplotlib', 'prometheus_client', 'numpy', 'sqlite3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_dashboard_lint_every_panel():
    """Every panel: the datasource variable, a unit, a description, at least one expression."""
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert (panel.get("fieldConfig") or {}).get("defaults", {}).get("unit"), f"{title}: no unit"
        assert len(panel.get("description") or "") >= 20, f"{title}: no description"
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), title
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", title


def test_every_alert_has_summary_description_and_a_runbook_that_exists():
    """Runbooks are headings of docs/operations.md, linked absolutely (Alertmanager opens them from elsewhere);
    tests/unit/test_runbook_links.py checks every link into the docs in the shipped files."""
    from edgeq.skel import DOCS_URL
    from tests.unit.test_docs_links import anchors

    runbooks = anchors(REPO / "docs" / "operations.md")
    doc = yaml.safe_load((DASH / "rules" / "edgeq.rules.yml").read_text())
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} >= {"EdgeqNoData", "EdgeqLatencyRegression", "EdgeqBoardDown"}
    assert any("absent(" in a["expr"] for a in alerts), "no alert fires when there is no data at all"
    for a in alerts:
        ann = a["annotations"]
        assert ann.get("summary") and ann.get("description"), a["alert"]
        url = ann.get("runbook_url", "")
        assert url == f"{DOCS_URL}operations.md#{a['alert'].lower()}" and url.split("#")[1] in runbooks, (a["alert"], url)


def test_points_link_to_their_run_report_and_runs_are_annotated():
    """Run ids are never labels: a point links to /report by its pipeline label and time, runs are annotations."""
    dash = json.loads(DASHBOARD.read_text())
    series = [p for p in dash["panels"] if p["type"] == "timeseries"]
    assert series
    for p in series:
        (link,) = p["fieldConfig"]["defaults"]["links"]
        assert link["url"] == "${edgeq_exporter}/report?pipeline=${__field.labels.pipeline}&time=${__value.time}", p["title"]
        assert all("pipeline" in t["expr"].split("(", 1)[0] or "pipeline" in t["expr"] for t in p["targets"])
    (ann,) = dash["annotations"]["list"]
    assert ann["useValueForTime"] and "edgeq_last_run_timestamp_seconds" in ann["expr"]
    assert "run_id" not in DASHBOARD.read_text()
    titles = " | ".join(p["title"] for p in dash["panels"])
    for needle in ("95% interval", "Session spread", "Board-state flags", "Numeric check"):
        assert needle in titles
