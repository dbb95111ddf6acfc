"""Dashboards and rules against a real Prometheus fed by real `edgeq run`s (local board, real agent, hwmon power).

Every panel's PromQL of dashboards/grafana/edgeq.json must return series; promtool checks and unit-tests the rules.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgeq.results import load_manifest, open_for_reading, query, record_run
from edgeq.testing.common import REPO, TINY, Result
from edgeq.testing.promfarm import free_port, synthetic_manifest

DASH = REPO / "dashboards"
DASHBOARD = DASH / "grafana" / "edgeq.json"


def _targets(dash: dict):
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield p, t


@pytest.fixture(scope="module")
def farm_run(tmp_path_factory, promfarm):  # noqa: F811
    """One real pipeline run benchmarked on a local board with a (file-backed) hwmon power probe. Its push goes to a
    closed port and fails; `edgeq metrics push` delivers it afterwards."""
    root = tmp_path_factory.mktemp("dash")
    power = root / "power1_input"
    power.write_text("2500000\n")  # µW: 2.5 W, read by the agent's real hwmon probe
    (root / "devices.yaml").write_text(
        yaml.safe_dump(
            {
                "devices": [
                    {
                        "name": "board-a",
                        "transport": "local",
                        "model": "Test Board",
                        "tags": ["lab"],
                        "power": {"probe": "hwmon", "path": str(power), "interval_s": 0.02, "idle_s": 0.0},
                    }
                ]
            }
        )
    )
    doc = json.loads(json.dumps(TINY))
    doc.update(
        {
            "name": "dash",
            "devices": "devices.yaml",
            "validate": {"gates": {"max_accuracy_drop": 0.5}},
            "benchmark": {
                "targets": ["board-a"],
                "variants": ["fp32", "int8"],
                "runs": 30,
                "warmup": 3,
                "min_seconds": 0.2,
                "threads": [1],
                "numeric_check": True,  # the numeric-check panel reads its gauge
                "ops": True,  # the per-op panels read the op gauges (the local board profiles through ai-edge-litert)
            },
        }
    )
    pipe = root / "dash.yaml"
    pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
    home = root / "home"

    def run(*args, env=None, timeout=600) -> Result:
        e = {**os.environ, "EDGEQ_HOME": str(home), **(env or {})}
        if "EDGEQ_HISTORY_DB" not in (env or {}):
            e.pop("EDGEQ_HISTORY_DB", None)
        p = subprocess.run(
            [sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True, cwd=root, timeout=timeout, env=e
        )
        return Result(p.returncode, p.stdout, p.stderr)

    closed = f"http://127.0.0.1:{free_port()}"
    first = run("run", pipe, "--push-gateway", closed, "--json")
    push = run("metrics", "push", "latest", "--gateway", promfarm.pg_url, "--json")
    return {"root": root, "home": home, "pipe": pipe, "run": run, "first": first, "closed": closed, "push": push}


def test_failed_push_keeps_results_and_a_later_push_delivers_them(farm_run, promfarm):  # noqa: F811
    r = farm_run["first"]
    assert r.code == 11, r.stderr
    assert "metrics push failed" in r.stderr and farm_run["closed"] in r.stderr and "Traceback" not in r.stderr
    assert f"edgeq metrics push {r.json()['run_id']} --gateway" in r.stderr
    doc = r.json()
    assert doc["status"] == "ok" and doc["metrics_push"]["ok"] is False
    with open_for_reading(farm_run["home"] / "history.db") as h:
        run = query.load(h, query.resolve(h, doc["run_id"]), samples=True)
    assert run.status == "ok" and set(run.validations) == {"fp32", "int8"}
    assert {b.key for b in run.benchmarks} == {
        ("board-a", "fp32", 1),
        ("board-a", "int8", 1),
    }
    for b in run.benchmarks:
        assert b.ok and len(b.samples_s) >= 30 and b.power_mean_w == pytest.approx(2.5) and b.energy_j > 0
    p = farm_run["push"]
    assert p.code == 0, p.stderr
    assert p.json()["run_id"] == doc["run_id"] and p.json()["series"] > 20
    assert 'pipeline="dash"' in promfarm.pushgateway_text()


def _substitute(expr: str, values: dict) -> str:
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr)


@pytest.mark.parametrize(
    "values",
    [
        {"lab": ".*", "pipeline": ".*", "device": ".*", "variant": ".*"},
        {"lab": ".*", "pipeline": "dash", "device": "board-a", "variant": "fp32|int8"},
    ],
    ids=["all", "one"],
)
def test_every_dashboard_panel_query_returns_series(farm_run, promfarm, values):  # noqa: F811
    assert farm_run["push"].code == 0
    promfarm.wait_for('edgeq_last_run_ok{job="edgeq", pipeline="dash"}')
    dash = json.loads(DASHBOARD.read_text())
    checked = 0
    for panel, t in _targets(dash):
        expr = _substitute(t["expr"], values)
        res = promfarm.wait_for(expr, timeout=10)  # raises with the expression if it never returns series
        assert all(r["value"][1] not in ("NaN", "+Inf", "-Inf") for r in res), (panel["title"], expr, res)
        checked += 1
    assert checked >= 13
    # the template variables' label_values() queries find the pushed labels
    for var in dash["templating"]["list"]:
        if var["type"] in ("datasource", "textbox") or var["name"] == "lab":  # no query / no lab label on one Prometheus
            continue  # (lab: tests/farm/test_federation.py)
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
        match, label = _substitute(m.group(1), values), m.group(2)
        series = promfarm.api("series", **{"match[]": match})
        assert any(s.get(label) for s in series), (var["name"], match)
    speedup = promfarm.query(_substitute(next(t["expr"] for p, t in _targets(dash) if "speed-up" in p["title"]), values))
    assert speedup and float(speedup[0]["value"][1]) > 0
    power = promfarm.query('max by (device) (edgeq_power_watts{pipeline="dash"})')
    assert float(power[0]["value"][1]) == pytest.approx(2.5)


def test_recording_rules_evaluate_on_real_data(farm_run, promfarm):  # noqa: F811
    assert farm_run["push"].code == 0
    res = promfarm.wait_for('edgeq:int8_speedup_p50:ratio{pipeline="dash", device="board-a"}', timeout=30)
    assert float(res[0]["value"][1]) > 0
    promfarm.wait_for('edgeq:latency_p50_seconds:max{pipeline="dash"}', timeout=30)


def test_rules_pass_promtool_check_and_unit_tests(promfarm):  # noqa: F811 - the farm installs promtool
    p = subprocess.run(["promtool", "check", "rules", "edgeq.rules.yml"], cwd=DASH / "rules", capture_output=True, text=True)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr
    p = subprocess.run(
        ["promtool", "test", "rules", "edgeq.rules.test.yml"], cwd=DASH / "rules", capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr
    alerts = {r["name"] for g in promfarm.api("rules")["groups"] for r in g["rules"] if r["type"] == "alerting"}
    assert {"EdgeqLatencyRegression", "EdgeqAccuracyDropOverBudget", "EdgeqNightlyMissed"} <= alerts


def _previous(db: Path, fast: bool) -> None:
    """A synthetic earlier run of the same pipeline on the same board: far faster (so the real run regresses) or
    far slower with no accuracy (so the real run improves on everything)."""
    p50 = 1e-8 if fast else 1e-3
    m = synthetic_manifest(
        "20200101T000000Z-prev00",
        pipeline="dash",
        devices=("board-a",),
        started="2020-01-01T00:00:00+00:00",
        p50_s={("board-a", "fp32"): p50, ("board-a", "int8"): p50},
        accuracy=None if fast else {"fp32": 0.0, "int8": 0.0},
        peak_rss=None if fast else {("board-a", "fp32"): 10**10, ("board-a", "int8"): 10**10},
        power_w={"board-a": 2.5 if fast else 1000.0},
    )
    record_run(load_manifest(m), db)


def test_run_pushes_and_fails_on_regression(farm_run, promfarm, tmp_path):  # noqa: F811
    db = tmp_path / "regress.db"
    _previous(db, fast=True)
    r = farm_run["run"](
        "run",
        farm_run["pipe"],
        "--push-gateway",
        promfarm.pg_url,
        "--fail-on-regression",
        "--json",
        env={"EDGEQ_HISTORY_DB": str(db)},
    )
    assert r.code == 9, r.stderr
    assert "regression(s) from run 20200101T000000Z-prev00" in r.stderr and "Traceback" not in r.stderr
    doc = r.json()
    assert doc["metrics_push"]["ok"] is True and doc["regressions"]["regressed"]  # pushed before the check
    assert any("latency fp32 on board-a" in s for s in doc["regressions"]["list"])
    with open_for_reading(db) as h:
        assert query.resolve(h, "latest").run_id == doc["run_id"]  # stored although the run exits 9
    promfarm.wait_for(
        'edgeq_last_run_timestamp_seconds{job="edgeq", pipeline="dash"}', predicate=lambda res: any(r["value"][1] for r in res)
    )
    # the same run against a much slower, less accurate past passes
    db2 = tmp_path / "improve.db"
    _previous(db2, fast=False)
    r = farm_run["run"]("run", farm_run["pipe"], "--fail-on-regression", env={"EDGEQ_HISTORY_DB": str(db2)})
    assert r.code == 0, r.stderr
    assert "regression check against run 20200101T000000Z-prev00: no regression" in r.stderr
    # the first run of a pipeline has nothing to compare with: said, not failed
    r = farm_run["run"]("run", farm_run["pipe"], "--fail-on-regression", env={"EDGEQ_HISTORY_DB": str(tmp_path / "new.db")})
    assert r.code == 0 and "no earlier run of pipeline 'dash'" in r.stderr
