"""`edgeq init DIR --docs-url URL` and `edgeq dashboards export DIR --docs-url URL`, run as a user runs them:
the runbook links in the rules written point at that base, the rules' promtool tests still pass against them,
and a URL that would break the files is refused before anything is written."""

from __future__ import annotations

import json
import subprocess

import yaml

from edgeq.skel import DOCS_URL

WIKI = "https://wiki.example.org/edgeq/"


def _runbooks(rules_file):
    doc = yaml.safe_load(rules_file.read_text())
    return {r["alert"]: r["annotations"]["runbook_url"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _promtool_test(rules_dir):
    p = subprocess.run(["promtool", "test", "rules", "edgeq.rules.test.yml"], cwd=rules_dir, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_init_writes_runbook_links_under_the_given_base(edgeq, tmp_path):
    lab = tmp_path / "lab"
    r = edgeq("init", lab, "--docs-url", WIKI, "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["docs_url"] == WIKI and "dashboards/rules/edgeq.rules.yml" in doc["written"]
    runbooks = _runbooks(lab / "dashboards" / "rules" / "edgeq.rules.yml")
    assert len(runbooks) >= 6
    for alert, url in runbooks.items():
        assert url == f"{WIKI}operations.md#{alert.lower()}", (alert, url)
    written = [f for f in lab.rglob("*") if f.is_file()]
    assert not [f for f in written if DOCS_URL in f.read_text()], "the upstream base is left in a written file"
    dashboard = (lab / "dashboards" / "grafana" / "edgeq.json").read_text()
    assert f"{WIKI}measurement.md#board-state-and-bench-controls" in dashboard
    json.loads(dashboard)
    _promtool_test(lab / "dashboards" / "rules")  # the rule tests expect the rewritten annotations


def test_dashboards_export_adds_the_slash_and_defaults_to_the_upstream_docs(edgeq, tmp_path):
    r = edgeq("dashboards", "export", tmp_path / "wiki", "--docs-url", WIKI.rstrip("/"))
    assert r.code == 0, r.stderr
    for alert, url in _runbooks(tmp_path / "wiki" / "rules" / "edgeq.rules.yml").items():
        assert url == f"{WIKI}operations.md#{alert.lower()}", (alert, url)
    _promtool_test(tmp_path / "wiki" / "rules")
    r = edgeq("dashboards", "export", tmp_path / "upstream")
    assert r.code == 0, r.stderr
    assert all(u.startswith(DOCS_URL) for u in _runbooks(tmp_path / "upstream" / "rules" / "edgeq.rules.yml").values())


def test_a_bad_docs_url_exits_2_and_writes_nothing(edgeq, tmp_path):
    lab = tmp_path / "lab"
    r = edgeq("init", lab, "--docs-url", 'https://wiki.example.org/"edgeq')
    assert r.code == 2 and "--docs-url" in r.stderr and "hint:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not lab.exists()
    r = edgeq("dashboards", "export", lab, "--docs-url", "wiki.example.org/edgeq", "--json")
    assert r.code == 2 and json.loads(r.stdout)["exit_code"] == 2
    assert not lab.exists()
