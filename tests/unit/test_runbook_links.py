"""Runbook links as Alertmanager and Grafana open them: absolute, under the docs base, to a heading that exists.

Every link into the docs in the shipped alert rules, their promtool tests and the dashboards (top level and the
copies `edgeq init` writes) starts with edgeq.skel.DOCS_URL, names a file of docs/ and an anchor that is a
heading of that file; each alert's runbook is its own heading of docs/operations.md. `--docs-url` rewrites the
base in every file written and nothing else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from edgeq import skel
from tests.unit.test_docs_links import anchors

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SHIPPED = (REPO / "dashboards", skel.SKEL / "dashboards")
DOC_LINK = re.compile(r"https?://[^\s\"'()<>\[\]]+")


def _alerts(rules_file: Path) -> list[dict]:
    doc = yaml.safe_load(rules_file.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _shipped_files() -> list[Path]:
    return [f for d in SHIPPED for f in sorted(d.rglob("*")) if f.is_file() and f.suffix in (".yml", ".yaml", ".json")]


def _check_doc_link(url: str, base: str = skel.DOCS_URL) -> str | None:
    """None if the link opens an existing heading of docs/ under base; else what is wrong."""
    if not url.startswith(base):
        return f"{url}: not under {base}"
    file_part, sep, anchor = url.removeprefix(base).partition("#")
    target = DOCS / file_part
    if not file_part or not target.is_file():
        return f"{url}: docs/{file_part} does not exist"
    if sep and anchor not in anchors(target):
        return f"{url}: no heading with anchor {anchor!r} in docs/{file_part}"
    return None


@pytest.mark.parametrize("where", SHIPPED, ids=["dashboards", "skel"])
def test_every_alert_has_a_runbook_heading_in_operations(where):
    alerts = _alerts(where / "rules" / "edgeq.rules.yml")
    assert len(alerts) >= 6
    headings = anchors(DOCS / "operations.md")
    for a in alerts:
        url = a["annotations"]["runbook_url"]
        assert url == f"{skel.DOCS_URL}operations.md#{a['alert'].lower()}", (a["alert"], url)
        assert _check_doc_link(url) is None and url.rsplit("#", 1)[1] in headings, (a["alert"], url)


@pytest.mark.parametrize("where", SHIPPED, ids=["dashboards", "skel"])
def test_the_rule_tests_expect_the_rules_runbook_urls(where):
    """promtool compares annotations exactly: the tests must expect what the rules say (and --docs-url rewrites both)."""
    want = {a["alert"]: a["annotations"]["runbook_url"] for a in _alerts(where / "rules" / "edgeq.rules.yml")}
    tests = yaml.safe_load((where / "rules" / "edgeq.rules.test.yml").read_text())
    seen = 0
    for t in tests["tests"]:
        for case in t.get("alert_rule_test", []):
            for exp in case.get("exp_alerts", []):
                if "runbook_url" in exp.get("exp_annotations", {}):
                    assert exp["exp_annotations"]["runbook_url"] == want[case["alertname"]], case["alertname"]
                    seen += 1
    assert seen >= len(want)


def test_every_link_into_the_docs_in_shipped_files_opens_a_heading():
    bad, found = [], 0
    for f in _shipped_files():
        text = f.read_text()
        assert "README.md#" not in text, f"{f}: a link into the README (the runbooks live in docs/)"
        for url in DOC_LINK.findall(text):
            if "/docs/" in url or "runbook" in url.lower():
                found += 1
                problem = _check_doc_link(url)
                if problem:
                    bad.append(f"{f.relative_to(REPO)}: {problem}")
    assert found >= 2 * 13, "the rules, their tests and the dashboard link into docs/"
    assert bad == [], "\n".join(bad)


def test_a_link_to_a_missing_file_or_heading_is_caught():
    assert _check_doc_link(f"{skel.DOCS_URL}operations.md#edgeqboarddown") is None
    assert "no heading" in _check_doc_link(f"{skel.DOCS_URL}operations.md#edgeqnosuchalert")
    assert "does not exist" in _check_doc_link(f"{skel.DOCS_URL}runbooks.md#edgeqboarddown")
    assert "not under" in _check_doc_link("README.md#edgeqboarddown")


def test_dashboards_are_valid_json_with_their_doc_links():
    for f in (REPO / "dashboards" / "grafana").glob("*.json"):
        json.loads(f.read_text())
    assert (
        f"{skel.DOCS_URL}measurement.md#board-state-and-bench-controls"
        in (REPO / "dashboards" / "grafana" / "edgeq.json").read_text()
    )


def test_docs_url_rewrites_the_base_in_every_file_written(tmp_path):
    base = "https://wiki.example.org/edgeq/"
    written = skel.write(tmp_path, skel.dashboard_files(), src_prefix=skel.DASHBOARDS, docs_url=base)
    texts = {p: p.read_text() for p in written}
    assert not any(skel.DOCS_URL in t for t in texts.values())
    for a in _alerts(tmp_path / "rules" / "edgeq.rules.yml"):
        assert a["annotations"]["runbook_url"] == f"{base}operations.md#{a['alert'].lower()}"
    tests = (tmp_path / "rules" / "edgeq.rules.test.yml").read_text()
    assert tests.count(f'"{base}operations.md#') == (REPO / "dashboards/rules/edgeq.rules.test.yml").read_text().count(
        f'"{skel.DOCS_URL}operations.md#'
    )
    json.loads((tmp_path / "grafana" / "edgeq.json").read_text())
    # everything else is byte for byte what ships
    for p, t in texts.items():
        shipped = (skel.SKEL / skel.DASHBOARDS / p.relative_to(tmp_path)).read_text()
        assert t == shipped.replace(skel.DOCS_URL, base), p


def test_default_docs_url_writes_the_shipped_bytes(tmp_path):
    written = skel.write(tmp_path, ["rules/edgeq.rules.yml"], src_prefix=skel.DASHBOARDS)
    assert written[0].read_bytes() == (REPO / "dashboards" / "rules" / "edgeq.rules.yml").read_bytes()


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://wiki.example.org/edgeq", "https://wiki.example.org/edgeq/"),
        ("http://10.0.0.5:8080/docs/", "http://10.0.0.5:8080/docs/"),
        ("https://git.example.org/ml/edgeq/-/blob/v1.4/docs/", "https://git.example.org/ml/edgeq/-/blob/v1.4/docs/"),
    ],
)
def test_docs_base_adds_the_slash(given, base):
    assert skel.docs_base(given) == base


@pytest.mark.parametrize(
    "url",
    [
        "",
        "wiki.example.org/edgeq",
        "file:///srv/docs/",
        "javascript:alert(1)",
        'https://x.org/"a',
        "https://x.org/{{ $labels }}/",
        "https://x.org/a b/",
        "https://x.org/a\\b",
        "https://x.org/\n",
    ],
)
def test_a_bad_docs_url_is_refused_before_anything_is_written(tmp_path, url):
    with pytest.raises(skel.BadDocsUrl) as e:
        skel.write(tmp_path / "out", skel.dashboard_files(), src_prefix=skel.DASHBOARDS, docs_url=url)
    assert e.value.exit_code == 2 and "--docs-url" in e.value.message and e.value.hint
    assert not (tmp_path / "out").exists()
