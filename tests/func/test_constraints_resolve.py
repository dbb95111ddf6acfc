"""Every constraints file still resolves: pip, asked as a user would (`pip install -c constraints/<set>.txt
'.[extras]'` in the checkout) with --dry-run, finds an install of the set within the pins, and the file pins the
whole tree it installs. Needs the package index: pip reads metadata only (no wheel is downloaded) and builds edgeq's
own metadata from this checkout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeq.tools import constraints as c

REGENERATE = "python -m edgeq.tools.constraints"


def _dry_run(constraints: str, target: str, report: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", "--report", str(report)]
    return subprocess.run([*cmd, "-c", constraints, target], cwd=c.REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", list(c.SETS))
def test_constraints_file_resolves_and_pins_the_whole_tree(name, tmp_path):
    s = c.SETS[name]
    target = "." + (f"[{','.join(s.extras)}]" if s.extras else "")
    p = _dry_run(f"constraints/{name}.txt", target, tmp_path / "report.json")
    command = f"pip install -c constraints/{name}.txt '{target}'"
    assert p.returncode == 0, f"{command} does not resolve: {REGENERATE}\n{p.stderr[-3000:]}"
    installed = c.pins_of_report(json.loads((tmp_path / "report.json").read_text()))
    pinned = c.read_pins(c.DIR / f"{name}.txt")
    unpinned = sorted(set(installed) - set(pinned))
    assert not unpinned, f"constraints/{name}.txt does not pin {unpinned}, which the install brings: {REGENERATE}"
    assert {n: v for n, v in installed.items() if pinned[n] != v} == {}


@pytest.mark.parametrize(
    "constraints, target",
    [
        ("constraints.txt", ".[train]"),  # dashboards/nightly/github-actions-nightly.yml, in a checkout
        ("constraints/labgrid.txt", ".[labgrid]"),  # the README's `pip install 'edgeq[labgrid]'`: a set's file fits a subset
    ],
)
def test_documented_commands_resolve(constraints, target, tmp_path):
    p = _dry_run(constraints, target, tmp_path / "report.json")
    assert p.returncode == 0, p.stderr[-3000:]
