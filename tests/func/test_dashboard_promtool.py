"""The shipped Prometheus files as Prometheus' own linter reads them: `promtool check config` on
dashboards/prometheus.yml, and every dashboard panel's PromQL parsed by `promtool check rules`.

The files' structure is checked without promtool in tests/unit/test_dashboard_files.py; the alert rules'
`promtool check/test rules` and every panel returning series are tests/farm/test_dashboards.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from edgeq.testing.common import REPO

DASH = REPO / "dashboards"
DASHBOARD = DASH / "grafana" / "edgeq.json"


def _substituted(expr: str) -> str:
    """A panel's PromQL with Grafana's variables replaced by values promtool can parse."""
    values = {
        "lab": "l",
        "pipeline": "p",
        "device": "d",
        "variant": "v",
        "__rate_interval": "5m",
        "__interval": "1m",
        "__range": "1h",
    }
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), "x"), expr)


def test_prometheus_config_passes_promtool():
    p = subprocess.run(["promtool", "check", "config", str(DASH / "prometheus.yml")], capture_output=True, text=True)  # noqa: S603,S607
    assert p.returncode == 0, p.stdout + p.stderr


def test_every_panel_expression_parses_in_promtool(tmp_path: Path):
    dash = json.loads(DASHBOARD.read_text())
    rules = [
        {"record": f"lint:panel{panel['id']}_{i}", "expr": _substituted(t["expr"])}
        for panel in dash["panels"]
        for i, t in enumerate(panel["targets"])
    ]
    assert rules
    f = tmp_path / "panels.rules.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    p = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True)  # noqa: S603,S607
    assert p.returncode == 0, p.stdout + p.stderr
