"""Metrics from many labs: each lab's Prometheus (the shipped dashboards/federation/lab-prometheus.yml, its own
`lab` external label and Pushgateway) feeds a central Prometheus (central-prometheus.yml, /federate); the
dashboard's `lab` variable lists the labs and its panels filter by lab. Real Prometheus and Pushgateway processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import yaml

from edgeq.results import load_manifest, record_run
from edgeq.testing import Missing, promfarm
from edgeq.testing.common import REPO

FED = REPO / "dashboards" / "federation"
DASHBOARD = REPO / "dashboards" / "grafana" / "edgeq.json"


def _lab_config(lab: str, pg_port: int) -> str:
    cfg = yaml.safe_load((FED / "lab-prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s", external_labels={"lab": lab})
    cfg["rule_files"] = [str(promfarm.RULES)]
    cfg["scrape_configs"] = [j for j in cfg["scrape_configs"] if j["job_name"] == "pushgateway"]
    cfg["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{pg_port}"]}]
    return yaml.safe_dump(cfg)


def _central_config(lab_ports: list[int]) -> str:
    cfg = yaml.safe_load((FED / "central-prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(promfarm.RULES)]
    cfg["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{p}" for p in lab_ports]}]
    return yaml.safe_dump(cfg)


def _query(port: int, expr: str) -> list:
    q = promfarm.urllib.parse.urlencode({"query": expr})
    code, body = promfarm.http_get(f"http://127.0.0.1:{port}/api/v1/query?{q}")
    assert code == 200, body
    return json.loads(body)["data"]["result"]


@pytest.fixture(scope="module")
def labs(tmp_path_factory):
    try:
        promfarm.ensure_installed()
    except Missing as e:
        pytest.fail(str(e), pytrace=False)
    root = tmp_path_factory.mktemp("federation")
    procs, labs = [], {}
    try:
        for lab, device in (("lab-a", "pi-a"), ("lab-b", "pi-b")):
            pg_port, prom_port = promfarm.free_port(), promfarm.free_port()
            procs.append(promfarm.start_pushgateway(root, pg_port))
            procs.append(promfarm.start_prometheus(root / lab, _lab_config(lab, pg_port), prom_port))
            db = root / f"{lab}.db"
            m = promfarm.synthetic_manifest("20260101T023000Z-000001", pipeline="nightly", devices=(device,), n=200)
            record_run(load_manifest(m), db)
            p = subprocess.run(  # noqa: S603 - fixed argv
                [
                    sys.executable,
                    "-m",
                    "edgeq",
                    "metrics",
                    "push",
                    "latest",
                    "--gateway",
                    f"http://127.0.0.1:{pg_port}",
                    "--db",
                    str(db),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert p.returncode == 0, p.stderr
            labs[lab] = {"prom": prom_port, "device": device}
        central = promfarm.free_port()
        procs.append(promfarm.start_prometheus(root / "central", _central_config([v["prom"] for v in labs.values()]), central))
        yield {"labs": labs, "central": central}
    finally:
        for p in reversed(procs):
            promfarm.stop(p)


def _wait(port: int, expr: str, n: int, timeout: float = 60.0) -> list:
    import time

    deadline = time.monotonic() + timeout
    res: list = []
    while time.monotonic() < deadline:
        res = _query(port, expr)
        if len(res) >= n:
            return res
        time.sleep(0.5)
    raise AssertionError(f"{expr!r}: {len(res)} series after {timeout}s, wanted {n}: {res}")


def test_shipped_federation_configs_pass_promtool():
    for name in ("lab-prometheus.yml", "central-prometheus.yml"):
        p = subprocess.run(["promtool", "check", "config", name], cwd=FED, capture_output=True, text=True)  # noqa: S603,S607
        assert p.returncode == 0, p.stdout + p.stderr


def test_central_prometheus_holds_every_lab_and_the_dashboard_filters_by_lab(labs):
    central = labs["central"]
    res = _wait(central, 'edgeq_last_run_timestamp_seconds{pipeline="nightly"}', 2)
    assert sorted(r["metric"]["lab"] for r in res) == ["lab-a", "lab-b"]
    # the lab variable's label_values() finds both labs
    dash = json.loads(DASHBOARD.read_text())
    var = next(v for v in dash["templating"]["list"] if v["name"] == "lab")
    metric = re.fullmatch(r"label_values\((\w+), lab\)", var["query"]["query"]).group(1)
    labs_seen: set = set()
    for _ in range(120):  # federated scrape by scrape: a lab's other series may land one scrape after its first
        labs_seen = {r["metric"]["lab"] for r in _query(central, metric)}
        if labs_seen == {"lab-a", "lab-b"}:
            break
        time.sleep(0.5)
    assert labs_seen == {"lab-a", "lab-b"}
    # the board-health panel with lab=lab-a shows lab-a's board only; with All, both
    panel = next(p for p in dash["panels"] if "Board health" in p["title"])
    expr = panel["targets"][0]["expr"]

    def sub(lab: str) -> str:
        values = {"lab": lab, "pipeline": "nightly", "device": ".*", "variant": ".*"}
        return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr)

    only_a = _wait(central, sub("lab-a"), 1)
    assert [(r["metric"]["lab"], r["metric"]["device"]) for r in only_a] == [("lab-a", "pi-a")]
    both = _wait(central, sub(".*"), 2)
    assert sorted(r["metric"]["device"] for r in both) == ["pi-a", "pi-b"]
    # recording rules on the central Prometheus keep the labs apart
    rec = _wait(central, 'edgeq:latency_p50_seconds:max{pipeline="nightly"}', 4)
    assert {r["metric"]["lab"] for r in rec} == {"lab-a", "lab-b"}
