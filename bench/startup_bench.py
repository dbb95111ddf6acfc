"""CLI start-up: CPU time of `edgeq -h` and `edgeq devices list`, and the imports that cost the most.

Run:  python bench/startup_bench.py [--runs 5] [--baseline REV] [--no-record]
Each command runs in a fresh temp dir with EDGEQ_HOME and EDGEQ_DEVICES unset (so `devices list` shows the
embedded `local` board), 1 warm-up then --runs timed runs; CPU is user+sys of the finished child
(getrusage(RUSAGE_CHILDREN)), the median is reported. Two modes:
  as configured  the environment as it is (PYTHONDONTWRITEBYTECODE=1 means edgeq's own modules are compiled
                 on every start: no .pyc beside an editable install);
  bytecode       a .pyc cache in a temp PYTHONPYCACHEPREFIX, filled by the warm-up: what an installed edgeq does.
--baseline REV also times `git archive REV edgeq` (imported first through PYTHONPATH) with the runs interleaved
A B A B, so before/after share the machine's moment. Targets (as configured): -h <= 0.25 s, devices list <= 0.30 s.
Prints the table and the `python -X importtime` top 10 (cumulative) of each command; appends both to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"edgeq -h": ["-h"], "edgeq devices list": ["devices", "list"]}
TARGETS = {"edgeq -h": 0.25, "edgeq devices list": 0.30}
# must not be imported by `edgeq -h` / `edgeq devices list` (tests/func/test_startup_imports.py asserts the same)
HEAVY = (
    *("tensorflow", "keras", "paramiko", "matplotlib", "numpy"),
    *("edgeq.config.pipeline", "edgeq.results", "edgeq.records", "edgeq.fleet.board"),
)


def edgeq_argv() -> list[str]:
    script = Path(sys.executable).with_name("edgeq")  # the console script a user runs
    return [str(script)] if script.exists() else [sys.executable, "-m", "edgeq"]


def base_env(pycache: Path | None, pythonpath: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEQ_HOME", "EDGEQ_DEVICES", "EDGEQ_HISTORY_DB")}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def cpu_of(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(user+sys, wall) seconds of one run, from the kernel's accounting of the reaped child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def measure(variants: dict[str, dict[str, str]], args: list[str], runs: int, cwd: Path) -> dict[str, tuple[float, float]]:
    """Median (cpu, wall) per variant; variants interleaved run by run after one warm-up each."""
    argv = edgeq_argv() + args
    for env in variants.values():
        cpu_of(argv, env, cwd)
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for _ in range(runs):
        for name, env in variants.items():
            samples[name].append(cpu_of(argv, env, cwd))
    return {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in samples.items()}


def importtime(
    args: list[str], env: dict[str, str], cwd: Path, repeat: int = 3
) -> tuple[list[tuple[int, int, str]], int, list[str]]:
    """(every import as (cumulative µs, self µs, module), medians of `repeat` runs, largest cumulative first;
    modules; heavy ones present)."""
    probe = (
        "import sys\nfrom edgeq.cli import main\n"
        f"sys.argv = ['edgeq', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"heavy = ','.join(m for m in {HEAVY!r} if m in sys.modules)\n"
        "sys.stderr.write(f'\\nMODULES {len(sys.modules)} HEAVY {heavy}\\n')\n"
    )
    seen: dict[str, list[tuple[int, int]]] = {}
    modules, heavy = 0, []
    for _ in range(repeat):
        p = subprocess.run(  # noqa: S603
            [sys.executable, "-X", "importtime", "-c", probe], env=env, cwd=cwd, capture_output=True, text=True, check=False
        )
        for line in p.stderr.splitlines():
            if line.startswith("import time:") and "|" in line and "cumulative" not in line:
                own, cum, name = (x.strip() for x in line.removeprefix("import time:").split("|", 2))
                seen.setdefault(name.strip(), []).append((int(cum), int(own)))
            elif line.startswith("MODULES "):
                parts = line.split()
                modules, heavy = int(parts[1]), [h for h in (parts[3:] or [""])[0].split(",") if h]
    rows = [(int(statistics.median(c for c, _ in v)), int(statistics.median(o for _, o in v)), k) for k, v in seen.items()]
    rows.sort(reverse=True)
    return rows, modules, heavy


def baseline_tree(rev: str, dest: Path) -> Path:
    tar = dest / "base.tar"
    with tar.open("wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "edgeq"], stdout=f, check=True)  # noqa: S603, S607
    with tarfile.open(tar) as t:
        t.extractall(dest / "tree", filter="data")
    return dest / "tree"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command and mode (after 1 warm-up)")
    ap.add_argument("--baseline", metavar="REV", help="also time this git revision, interleaved (e.g. a commit before a change)")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cwd = root / "cwd"
        cwd.mkdir()
        base = baseline_tree(a.baseline, root) if a.baseline else None
        modes = {
            "as configured": {"now": base_env(None, None)},
            "bytecode": {"now": base_env(root / "pyc-now", None)},
        }
        if base is not None:
            modes["as configured"]["base"] = base_env(None, base)
            modes["bytecode"]["base"] = base_env(root / "pyc-base", base)
        results = {(cmd, mode): measure(v, args, a.runs, cwd) for cmd, args in COMMANDS.items() for mode, v in modes.items()}
        imports = {cmd: importtime(args, base_env(None, None), cwd) for cmd, args in COMMANDS.items()}
        shutil.rmtree(cwd, ignore_errors=True)

    head = f"| command | mode | CPU s (median of {a.runs}) | wall s |"
    sep = "|---|---|---|---|"
    if a.baseline:
        head += f" baseline {a.baseline} CPU s | now/baseline |"
        sep += "---|---|"
    head += " target |"
    sep += "---|"
    lines = [head, sep]
    ok = True
    for (cmd, mode), figs in results.items():
        cpu, wall = figs["now"]
        target = ""
        if mode == "as configured":
            met = cpu <= TARGETS[cmd]
            ok = ok and met
            target = f"<= {TARGETS[cmd]:.2f} s {'met' if met else 'MISSED'}"
        row = f"| `{cmd}` | {mode} | {cpu:.3f} | {wall:.3f} |"
        if a.baseline:
            b_cpu = figs["base"][0]
            row += f" {b_cpu:.3f} | {cpu / b_cpu:.2f} |"
        lines.append(row + f" {target} |")
    for cmd, (rows, modules, heavy) in imports.items():
        by_self = sorted(rows, key=lambda r: -r[1])[:10]
        lines += [
            "",
            f"`python -X importtime` of `{cmd}` (as configured, median of 3): {modules} modules;"
            f" heavy ones present: {', '.join(heavy) or 'none'} (checked: {', '.join(HEAVY)})",
            "",
            "| cumulative ms | self ms | module |",
            "|---|---|---|",
            *(f"| {cum / 1000:.1f} | {own / 1000:.1f} | `{name}` |" for cum, own, name in rows[:10]),
            "",
            "largest self times (ms): " + ", ".join(f"`{name}` {own / 1000:.1f}" for _, own, name in by_self),
        ]
    env_note = "PYTHONDONTWRITEBYTECODE=1" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "bytecode writes allowed"
    lines += ["", f"- environment: {env_note}; load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    body = "\n".join(lines)
    print(body)
    print("targets met" if ok else "TARGET MISSED")
    if not a.no_record:
        cmd = "python bench/startup_bench.py" + (f" --runs {a.runs}" if a.runs != 5 else "")
        cmd += f" --baseline {a.baseline}" if a.baseline else ""
        append_results("CLI start-up: edgeq -h and edgeq devices list", cmd, body)


if __name__ == "__main__":
    main()
