"""The working folder is found like git's (issue 26): from a subfolder of an `edgeq init` folder, the commands
use that folder's devices.yaml and .edgeq/ home, and say so (a `using ...` line on stderr, `files` in --json).

Through the real CLI, in a subprocess whose working directory is the subfolder, with none of the explicit
settings ($EDGEQ_HOME, $EDGEQ_DEVICES, $EDGEQ_HISTORY_DB) in its environment unless a test sets one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeq.testing.common import Result

EXPLICIT = ("EDGEQ_HOME", "EDGEQ_DEVICES", "EDGEQ_HISTORY_DB")


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
    e = {k: v for k, v in os.environ.items() if k not in EXPLICIT}
    e.update(env or {})
    p = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "edgeq", *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout
    )
    return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """An `edgeq init` folder under a fake $HOME (the walk from its subfolders never reaches the ceiling)."""
    home = tmp_path / "user"
    r = cli("init", "lab", cwd=tmp_path, env={"HOME": str(home)})
    assert r.code == 0, r.stderr
    return tmp_path / "lab"


def test_init_writes_a_gitignore_and_its_hint_starts_with_cd(tmp_path: Path):
    r = cli("init", "lab", cwd=tmp_path)
    assert r.code == 0, r.stderr
    lab = tmp_path / "lab"
    assert ".edgeq/" in (lab / ".gitignore").read_text().splitlines()
    assert f"wrote {Path('lab') / '.gitignore'}" in r.stdout
    assert "next: `cd lab`, edit devices.yaml" in r.stderr
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(lab)], check=True)  # noqa: S603, S607
        (lab / ".edgeq").mkdir()
        (lab / ".edgeq" / "history.db").write_bytes(b"")
        ignored = subprocess.run(["git", "check-ignore", ".edgeq/history.db"], cwd=lab)  # noqa: S603, S607
        assert ignored.returncode == 0  # git reads the file init wrote: the home stays out of version control


def test_init_adds_the_line_to_an_existing_gitignore_and_never_replaces_it(tmp_path: Path):
    (tmp_path / ".gitignore").write_text("*.pyc")
    r = cli("init", ".", cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert (tmp_path / ".gitignore").read_text().splitlines() == ["*.pyc", *skel_gitignore_lines()]
    assert "wrote .gitignore" in r.stdout
    assert "next: edit devices.yaml" in r.stderr  # `init .`: no `cd`
    r = cli("init", ".", "--force", "--json", cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert ".gitignore" not in json.loads(r.stdout)["written"]  # already ignores .edgeq/: left as it is
    assert (tmp_path / ".gitignore").read_text().count(".edgeq/") == 1


def skel_gitignore_lines() -> list[str]:
    from edgeq import skel

    return skel.GITIGNORE_TEXT.splitlines()


def test_devices_list_from_a_subfolder_uses_the_init_folder(lab: Path, tmp_path: Path):
    sub = lab / "notebooks" / "deep"
    sub.mkdir(parents=True)
    r = cli("devices", "list", "--json", cwd=sub, env={"HOME": str(tmp_path / "user")})
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)  # the `using` line is on stderr: stdout stays one JSON document
    assert doc["source"] == str(lab / "devices.yaml")
    assert doc["files"] == {"devices": str(lab / "devices.yaml")}
    assert doc["devices"][0]["workdir"] == str(lab / ".edgeq" / "boards" / "local")  # the home is the folder's too
    assert f"using devices {lab / 'devices.yaml'}" in r.stderr
    r = cli("devices", "list", cwd=sub, env={"HOME": str(tmp_path / "user")})
    assert r.code == 0 and f"using devices {lab / 'devices.yaml'}" in r.stderr


def test_a_home_ceiling_stops_the_walk(tmp_path: Path):
    """A devices.yaml above $HOME (or $HOME's own) is not picked up from a folder below $HOME."""
    assert cli("init", ".", cwd=tmp_path).code == 0
    home = tmp_path / "user"
    (home / "project").mkdir(parents=True)
    (home / "devices.yaml").write_text((tmp_path / "devices.yaml").read_text())
    r = cli("devices", "list", "--json", cwd=home / "project", env={"HOME": str(home)})
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["source"] == "embedded default"
    # standing in $HOME itself, its devices.yaml is the working directory's (as before discovery)
    r = cli("devices", "list", "--json", cwd=home, env={"HOME": str(home)})
    assert json.loads(r.stdout)["source"] == "devices.yaml"


def test_explicit_settings_win(lab: Path, tmp_path: Path):
    sub = lab / "sub"
    sub.mkdir()
    other = tmp_path / "other-home"
    mine = tmp_path / "mine.yaml"
    mine.write_text((lab / "devices.yaml").read_text().replace("name: local", "name: mine"))
    env = {"HOME": str(tmp_path / "user"), "EDGEQ_HOME": str(other)}
    r = cli("devices", "list", "--json", "--devices", str(mine), cwd=sub, env=env)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["files"] == {"devices": str(mine)}
    assert [d["name"] for d in doc["devices"]] == ["mine"]
    assert doc["devices"][0]["workdir"] == str(other / "boards" / "mine")
    r = cli("devices", "list", "--json", cwd=sub, env={**env, "EDGEQ_DEVICES": str(mine)})
    assert json.loads(r.stdout)["source"] == str(mine)


def test_check_run_and_report_from_a_subfolder_use_the_init_folder(lab: Path, tmp_path: Path):
    """The quickstart, end to end from a subfolder (~20 s: TensorFlow trains the tiny model once)."""
    pytest.importorskip("tensorflow")
    sub = lab / "work"
    sub.mkdir()
    env = {"HOME": str(tmp_path / "user")}
    home = lab / ".edgeq"

    r = cli("devices", "check", "--json", cwd=sub, env=env)
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["files"] == {"devices": str(lab / "devices.yaml"), "home": str(home)}
    assert f"using devices {lab / 'devices.yaml'}, home {home}" in r.stderr
    assert (home / "known_hosts").exists() or (home / "boards").exists()

    r = cli("run", "../pipelines/quickstart.yaml", "--json", cwd=sub, env=env, timeout=900)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["files"] == {"home": str(home)}
    assert f"using home {home}" in r.stderr
    assert (home / "history.db").is_file() and not (sub / ".edgeq").exists()

    r = cli("report", "latest", "--json", "-o", "report.html", cwd=sub, env=env)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["files"] == {"history": str(home / "history.db")}
    assert f"using history {home / 'history.db'}" in r.stderr
    assert (sub / "report.html").is_file()
