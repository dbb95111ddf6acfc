"""CLI conventions: -h everywhere, --debug anywhere on the line, shell completion of commands."""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path


def test_short_help_on_the_app_and_a_subcommand(edgeq):
    for args in (["-h"], ["bench", "-h"], ["devices", "setup", "-h"]):
        r = edgeq(*args)
        assert r.code == 0 and "Usage: edgeq" in r.stdout, (args, r.stderr)


def test_debug_after_the_subcommand_shows_the_traceback(edgeq, tmp_path):
    missing = tmp_path / "none.tflite"
    r = edgeq("inspect", missing)
    assert r.code == 5 and "Traceback" not in r.stderr and "file not found" in r.stderr
    r = edgeq("inspect", missing, "--debug")
    assert r.code != 0 and "Traceback" in r.stderr and "ModelError" in r.stderr, r.stderr
    r = edgeq("inspect", "--", "--debug")  # after `--` it is an argument (a file named --debug), not the flag
    assert "Traceback" not in r.stderr and "--debug" in r.stderr, r.stderr


def test_bash_completion_of_commands(tmp_path):
    exe = Path(sysconfig.get_path("scripts")) / "edgeq"
    env = {**os.environ, "_EDGEQ_COMPLETE": "complete_bash", "COMP_WORDS": "edgeq dev", "COMP_CWORD": "1"}
    p = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)  # noqa: S603
    assert p.returncode == 0 and p.stdout.split() == ["devices"], (p.stdout, p.stderr)
    env["COMP_WORDS"], env["COMP_CWORD"] = "edgeq devices s", "2"
    p = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)  # noqa: S603
    assert sorted(p.stdout.split()) == ["setup"], p.stdout


def test_run_several_pipelines_one_summary_highest_exit(edgeq, write_pipeline, home):
    """A nightly runs several pipelines: each runs whatever the others did, one summary, the highest exit code."""
    import json

    good = write_pipeline({"name": "good"}, name="good.yaml")
    gated = write_pipeline({"name": "gated", "validate": {"gates": {"max_size_bytes": 100}}}, name="gated.yaml")
    r = edgeq("run", gated, good, "--json")
    assert r.code == 7 and "1 of 2 pipelines failed" in r.stderr and "Traceback" not in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 7 and not doc["ok"]
    first, second = doc["runs"]
    assert first["exit_code"] == 7 and first["run"]["status"] == "gate_failed"
    assert second["ok"] and second["run"]["status"] == "ok" and second["run"]["pipeline"] == "good"


def test_run_several_checks_every_file_before_training(edgeq, write_pipeline, home):
    good = write_pipeline({"name": "good"}, name="good.yaml")
    bad = write_pipeline("name: bad\nbogus_key: 1\n", name="bad.yaml")
    r = edgeq("run", good, bad)
    assert r.code == 3 and "bad.yaml:2" in r.stderr and "bogus_key" in r.stderr, r.stderr
    assert not (home / "runs").exists() or not list((home / "runs").iterdir())  # nothing ran


def _command_paths() -> list[list[str]]:
    """Every command and group of the real app, as argv after `edgeq` (the Click tree Typer builds)."""
    import typer

    from edgeq.cli.app import app

    out: list[list[str]] = []

    def walk(cmd, path):
        out.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def test_every_help_screen_has_an_example():
    """Walks the real command tree, so a command added later without an example fails here."""
    from typer.testing import CliRunner

    from edgeq.cli.app import app

    paths = _command_paths()
    assert ["metrics", "backfill"] in paths and ["devices", "setup"] in paths and len(paths) > 15
    runner = CliRunner()
    for path in paths:
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, (path, r.output)
        text = r.output
        assert "Example" in text, (path, text[-600:])
        example = text[text.index("Example") :]
        assert f"$ edgeq {' '.join(path)}".rstrip() in example, (path, example)


def test_quiet_and_verbose_anywhere_on_the_line(edgeq, tmp_path):
    from edgeq.results import load_manifest, record_run
    from edgeq.testing.promfarm import synthetic_manifest

    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1", started="2026-01-01T02:30:00+00:00", devices=("pi5",))), db)
    out = tmp_path / "edgeq.prom"
    r = edgeq("metrics", "textfile", out, "--db", db, "--quiet")  # after the command: Click alone would refuse it
    assert r.code == 0 and r.stderr == "" and out.exists(), r.stderr
    r = edgeq("metrics", "textfile", "-v", out, "--db", db)
    assert r.code == 0 and "edgeq.metrics: textfile:" in r.stderr and "wrote" in r.stderr, r.stderr
    # -q never hides why it failed
    r = edgeq("-q", "metrics", "textfile", out, "--db", tmp_path / "none.db")
    assert r.code == 10 and "error:" in r.stderr and "hint:" in r.stderr, r.stderr
