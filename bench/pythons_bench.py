"""Supported Pythons: for each interpreter, a fresh venv, `pip install '.[train]'`, README command 1's quickstart.

    python bench/pythons_bench.py [--pythons /root/.pyenv/versions/3.12.1/bin/python3,...]

Per interpreter: create a venv (no system site-packages), install a clean copy of this checkout with the
[train] extra (TensorFlow: ~600 MB downloaded each time, minutes), run `edgeq run pipelines/quickstart.yaml`
from the copy's root (README command 1) and `edgeq --version`; record OK/fail, exit codes and times in
bench/RESULTS.md. Runs one interpreter after the other (the quickstart trains: CPU-bound).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402
from install_bench import clean_copy, du, site_packages  # noqa: E402

PYENV = Path("/root/.pyenv/versions")
DEFAULT = [str(PYENV / v / "bin" / "python3") for v in ("3.12.1", "3.13.0")]


def _run(cmd: list[str], cwd: Path, log: Path, env: dict | None = None, timeout: float = 3600) -> tuple[int, float]:
    t0 = time.monotonic()
    with log.open("a") as f:
        f.write(f"+ {' '.join(cmd)}\n")
        f.flush()
        try:
            rc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, env=env).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    return rc, time.monotonic() - t0


def one(python: str, work: Path) -> dict:
    import os

    src = clean_copy(work / "src")
    venv, log = work / "venv", work / "log.txt"
    out: dict = {"python": python, "log": str(log)}
    rc, _ = _run([python, "-m", "venv", str(venv)], work, log)
    if rc:
        return {**out, "result": "fail: venv", "install_rc": rc}
    py = str(venv / "bin" / "python")
    version = subprocess.run([py, "-V"], capture_output=True, text=True).stdout.strip()
    rc, t_install = _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{src}[train]"], work, log)
    out.update(version=version, install_rc=rc, install_s=t_install)
    if rc:
        return {**out, "result": "fail: pip install"}
    out["site_mb"] = du(site_packages(venv)) / 1e6
    env = {**os.environ, "EDGEQ_HOME": str(work / "home"), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    env.pop("EDGEQ_DEVICES", None)
    rc, t_run = _run(["edgeq", "run", "pipelines/quickstart.yaml"], src, log, env=env)
    out.update(run_rc=rc, run_s=t_run)
    lines = log.read_text(errors="replace").strip().splitlines()
    out["tail"] = next((t.strip() for t in reversed(lines) if t.startswith(("run folder", "error", "hint"))), "")[-200:]
    out["result"] = "OK" if rc == 0 else f"fail: quickstart exit {rc}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pythons", default=",".join(DEFAULT))
    ap.add_argument("--keep", action="store_true", help="keep the venvs and logs (printed)")
    a = ap.parse_args()
    rows = []
    for python in filter(None, a.pythons.split(",")):
        work = Path(tempfile.mkdtemp(prefix="edgeq-py-"))
        try:
            r = one(python, work)
            if not r["result"].startswith("OK") or a.keep:
                keep = Path(tempfile.gettempdir()) / f"edgeq-pythons-{Path(python).parents[1].name}.log"
                shutil.copyfile(work / "log.txt", keep)
                r["log"] = str(keep)
        finally:
            if not a.keep:
                shutil.rmtree(work, ignore_errors=True)
        print(r, flush=True)
        rows.append(r)
    body = "\n".join(
        [
            f"- load average at the end: {Path('/proc/loadavg').read_text().strip()} (the machine is shared; other"
            " helpers ran tests meanwhile, so the times are wall times under load)",
            "",
            "| python | result | pip install '.[train]' | site-packages | `edgeq run pipelines/quickstart.yaml` | last lines |",
            "|---|---|---|---|---|---|",
            *(
                f"| {r.get('version', r['python'])} | {r['result']} | exit {r.get('install_rc')}, {r.get('install_s', 0):.0f} s"
                f" | {r.get('site_mb', 0):.0f} MB | exit {r.get('run_rc', '-')}, {r.get('run_s', 0):.0f} s"
                f" | {r.get('tail', '').replace('|', '/')} |"
                for r in rows
            ),
        ]
    )
    print(body)
    append_results(
        "Supported Pythons: fresh venv, pip install '.[train]', README command 1", "python bench/pythons_bench.py", body
    )


if __name__ == "__main__":
    main()
