"""Install size: `pip install .` (no extras) in a fresh venv, then the base commands in that venv.

    python bench/install_bench.py [--python python3.11] [--extras ''] [--keep DIR]

Creates a venv (no system site-packages), installs this checkout from a built wheel, measures
site-packages (du) with and without pip/setuptools, lists the ten largest distributions, checks that
TensorFlow, tf-keras, tfmot and scikit-learn are absent, runs `edgeq --version` and `edgeq run` on the
quickstart (exit 12 expected without [train]), and appends the figures to bench/RESULTS.md.
Downloads from PyPI (or the machine's pip index): minutes, network-bound.
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

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "sklearn", "scipy", "keras")
TOOLING = ("pip", "setuptools", "_distutils_hack", "wheel")


def clean_copy(dest: Path) -> Path:
    """The checkout's files (tracked and untracked, not ignored) copied to dest: an in-tree build would
    leave build/ in the checkout, and a stale build/lib can put deleted files in the next wheel."""
    names = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, names):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def du(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() or f.is_symlink())


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def by_top_level(sp: Path) -> list[tuple[str, int]]:
    sizes = [(p.name, du(p) if p.is_dir() else p.stat().st_size) for p in sp.iterdir() if not p.name.endswith(".dist-info")]
    return sorted(sizes, key=lambda t: -t[1])


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--extras", default="", help="e.g. train (default: the base install)")
    ap.add_argument("--keep", type=Path, help="create the venv here and keep it")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgeq-install-"))
    venv = a.keep or tmp / "venv"
    try:
        wheel_dir = tmp / "wheel"
        src = clean_copy(tmp / "src")
        r = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(src)])
        if r.returncode:
            sys.exit(f"building the wheel failed:\n{r.stderr}")
        wheel = next(wheel_dir.glob("edgeq-*.whl"))
        r = run([a.python, "-m", "venv", str(venv)])
        if r.returncode:
            sys.exit(r.stderr)
        py = venv / "bin" / "python"
        sp = site_packages(venv)
        empty = du(sp)
        spec = f"{wheel}[{a.extras}]" if a.extras else str(wheel)
        t0 = time.monotonic()
        r = run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec])
        install_s = time.monotonic() - t0
        if r.returncode:
            sys.exit(f"pip install failed:\n{r.stderr[-3000:]}")
        body = report(a, py, sp, empty, install_s, venv)
        print(body)
        label = f"[{a.extras}]" if a.extras else "(no extras)"
        append_results(f"Install size: pip install . {label}", "python bench/install_bench.py" + _args(a), body)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _args(a: argparse.Namespace) -> str:
    return (f" --python {a.python}" if a.python != sys.executable else "") + (f" --extras {a.extras}" if a.extras else "")


def base_commands(venv: Path) -> str:
    """init, inspect, bench on the local board, report and textfile of a stored history, from the installed wheel."""
    import base64
    import os

    work = Path(tempfile.mkdtemp(prefix="edgeq-base-", dir=venv))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGEQ_DEVICES")}
    env["EDGEQ_HOME"] = str(work / "home")
    model = work / "noop.tflite"
    b64 = subprocess.run(  # the agent's no-op model, from the installed package
        [str(venv / "bin" / "python"), "-c", "from edgeq.agent.floor import NOOP_MODEL_B64 as m; print(m)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    model.write_bytes(base64.b64decode(b64))
    db = work / "history.db"
    shutil.copyfile(REPO / "tests" / "data" / "history-main.db", db)
    edgeq = str(venv / "bin" / "edgeq")
    cmds = [
        ["init", str(work / "lab")],
        ["dashboards", "export", str(work / "dash")],
        ["inspect", str(model)],
        ["devices", "check", "local"],
        ["bench", str(model), "-t", "local", "--runs", "50", "--sessions", "1", "--min-seconds", "0"],
        ["history", "--db", str(db)],
        ["report", "latest", "--pipeline", "synth", "--db", str(db), "-o", str(work / "r.html")],
        ["metrics", "textfile", str(work / "e.prom"), "--db", str(db)],
    ]
    out = []
    for c in cmds:
        r = subprocess.run([edgeq, *c], capture_output=True, text=True, cwd=work, env=env)
        words = [w if not w.startswith("/") else Path(w).name for w in c[:2]]  # no temp paths in RESULTS.md
        out.append(f"`{' '.join(words)}` exit {r.returncode}")
    files = sum(1 for f in (work / "lab").rglob("*") if f.is_file())
    return "; ".join(out) + f"; `init` wrote {files} files"


def report(a: argparse.Namespace, py: Path, sp: Path, empty: int, install_s: float, venv: Path) -> str:
    tops = by_top_level(sp)
    total = du(sp)
    tooling = sum(n for name, n in tops if name in TOOLING)
    present = [m for m in HEAVY if (sp / m).exists()]
    disk_kb = int(run(["du", "-sk", str(sp)]).stdout.split()[0])  # blocks on disk (apparent size above)
    version = run([str(venv / "bin" / "edgeq"), "--version"])
    quick = run([str(venv / "bin" / "edgeq"), "run", str(REPO / "pipelines" / "quickstart.yaml")], cwd=tempfile.gettempdir())
    last = (quick.stderr.strip().splitlines() or [""])[-2:]
    base = base_commands(venv)
    mb = 1e6
    lines = [
        f"- python: `{run([str(py), '-V']).stdout.strip()}`; install wall time {install_s:.0f} s (downloads; network-bound)",
        f"- load average after: {Path('/proc/loadavg').read_text().strip()} (the machine is shared)",
        f"- site-packages: **{total / mb:.0f} MB** ({(total - tooling) / mb:.0f} MB without pip/setuptools;"
        f" the empty venv had {empty / mb:.0f} MB, so `pip install` added {(total - empty) / mb:.0f} MB);"
        f" `du -sk` (disk blocks): {disk_kb * 1024 / mb:.0f} MB",
        f"- heavy packages present: {', '.join(present) or 'none (no tensorflow, tf_keras, tfmot, sklearn, scipy, keras)'}",
        f"- `edgeq --version`: exit {version.returncode} `{version.stdout.strip()}`",
        f"- `edgeq run pipelines/quickstart.yaml`: exit {quick.returncode}; stderr ends `{' / '.join(last)}`",
        f"- base commands from the venv (not the checkout): {base}",
        "",
        "| largest top-level entries | MB |",
        "|---|---|",
        *(f"| {name} | {n / mb:.1f} |" for name, n in tops[:12]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
