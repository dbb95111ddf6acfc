"""Write constraints/<set>.txt: for each documented install set, every package a fresh install of it gets today.

    python -m edgeq.tools.constraints [SET ...] [--use-pip-config]

For each set (SETS: base, train, labgrid, tflite-quant, torch, test) pip resolves this checkout with the set's
extras as a user's plain pip would (`pip install --dry-run --ignore-installed --report`, nothing downloaded but
metadata), and every package of the resolved tree is pinned to the version pip chose: the newest releases that
edgeq's ranges allow, i.e. the versions a user of that set gets. pip's config files, find-links, extra indexes and
constraints of this machine are ignored (PIP_INDEX_URL, a mirror of the index, is kept) unless --use-pip-config.
The train set is also what `edgeq init` writes: edgeq/skel/constraints.txt is written with it (the top-level
constraints.txt is a link to constraints/train.txt, for the nightly examples and tests/unit/test_skel.py).

tests/func/test_constraints_resolve.py checks that each file still resolves and pins its whole tree;
tests/unit/test_constraints_sets.py that the test venv's set and the extras move no version of the train set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from edgeq import paths

REPO = Path(__file__).resolve().parents[2]
DIR = REPO / "constraints"
SKEL_COPY = REPO / "edgeq" / "skel" / "constraints.txt"
SKEL_SET = "train"
SHOWN = ("pydantic", "typing-extensions", "numpy", "tensorflow", "torch")  # the versions people ask about


@dataclass(frozen=True)
class InstallSet:
    extras: tuple[str, ...]
    what: str

    @property
    def spec(self) -> str:
        """The requirement a user types: edgeq[train,labgrid]."""
        return "edgeq" + (f"[{','.join(self.extras)}]" if self.extras else "")

    def target(self, repo: Path = REPO) -> str:
        """This checkout with the set's extras, as pip takes it: /path/to/edgeq[train]."""
        return str(repo) + (f"[{','.join(self.extras)}]" if self.extras else "")


# One file per documented install set. `edgeq run` needs [train], so each extra's set is [train] plus the extra
# (a file for a larger set also constrains a smaller one: `-c constraints/labgrid.txt 'edgeq[labgrid]'` resolves).
SETS: dict[str, InstallSet] = {
    "base": InstallSet((), "the base install (inspect, fleet, results, metrics)"),
    "train": InstallSet(("train",), "README command 1 and the nightly units"),
    "labgrid": InstallSet(("train", "labgrid"), "shared fleets through a labgrid coordinator"),
    "tflite-quant": InstallSet(("train", "tflite-quant"), "model.tflite and weight_only variants (the LiteRT quantizer)"),
    "torch": InstallSet(("train", "torch", "tflite-quant"), "model.torch (PyTorch, litert-torch); the torch tests' venv"),
    "test": InstallSet(("train", "labgrid", "tflite-quant", "test"), "the test suite's venv (bash tests/run-all.sh)"),
}

# pip settings a user's plain pip may have too: the index itself (a mirror), TLS, timeouts, the cache
_KEEP = {"PIP_INDEX_URL", "PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "PIP_PROXY", "PIP_TRUSTED_HOST"}
_KEEP |= {"PIP_CACHE_DIR", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}

HEADER = """\
# constraints/{name}.txt: {what}.
# Every package of `pip install '{spec}'`, pinned to the version a fresh install got on {date}
# (Python {python}, {machine}): the newest releases edgeq's ranges allowed, i.e. a user's versions.
# Written by `python -m edgeq.tools.constraints`; tests/func/test_constraints_resolve.py checks that it resolves.
#   pip install -c constraints/{name}.txt '{spec}'
{also}# It constrains versions only: packages it names that the install does not need are not installed.
"""


def index_only_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a pip that sees the index alone: no config files, find-links, extra indexes, constraints."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if not k.startswith("PIP_") or k in _KEEP}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no config file at all
    return env


def pins_of_report(report: dict) -> dict[str, str]:
    """{name: version} of what a `pip install --report` would install, edgeq itself left out."""
    pins: dict[str, str] = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    pins.pop("edgeq", None)
    return pins


def resolve(
    s: InstallSet, constraints: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> dict[str, str]:
    """What `pip install` of the set would install into an empty venv (this interpreter's markers)."""
    with tempfile.TemporaryDirectory(prefix="edgeq-resolve-") as d:
        report = Path(d) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report)]
        cmd += ["-c", str(constraints)] if constraints else []
        p = subprocess.run(  # noqa: S603 - pip of this interpreter, argv list, no shell
            [*cmd, s.target()], capture_output=True, text=True, env=env, timeout=timeout, cwd=d
        )
        if p.returncode:
            raise SystemExit(f"pip could not resolve {s.spec} (exit {p.returncode}):\n{p.stderr[-4000:]}")
        return pins_of_report(json.loads(report.read_text()))


def read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def render(name: str, pins: dict[str, str]) -> str:
    s = SETS[name]
    head = HEADER.format(
        name=name,
        spec=s.spec,
        what=s.what,
        date=dt.date.today().isoformat(),
        python=platform.python_version(),
        machine=f"{platform.system()} {platform.machine()}",
        also="# (`edgeq init` writes this file as constraints.txt: pip install -c constraints.txt 'edgeq[train]')\n"
        if name == SKEL_SET
        else "",
    )
    return head + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("sets", nargs="*", metavar="SET", help=f"default: all of {', '.join(SETS)}")
    ap.add_argument("--use-pip-config", action="store_true", help="resolve with this machine's pip configuration")
    a = ap.parse_args()
    unknown = [s for s in a.sets if s not in SETS]
    if unknown:
        ap.error(f"unknown set {', '.join(unknown)}: choose from {', '.join(SETS)}")
    env = None if a.use_pip_config else index_only_env()
    DIR.mkdir(exist_ok=True)
    for name in a.sets or list(SETS):
        pins = resolve(SETS[name], env=env)
        text = render(name, pins).encode()
        paths.atomic_write_bytes(DIR / f"{name}.txt", text)
        if name == SKEL_SET:
            paths.atomic_write_bytes(SKEL_COPY, text)
        shown = ", ".join(f"{n} {pins[n]}" for n in SHOWN if n in pins)
        print(f"wrote constraints/{name}.txt: {len(pins)} packages ({shown})")


if __name__ == "__main__":
    main()
