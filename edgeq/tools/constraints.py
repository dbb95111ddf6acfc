"""Write constraints.txt: the exact versions installed here of edgeq's dependency tree.

    python -m edgeq.tools.constraints [--extras train,labgrid] [-o constraints.txt]

Run it in the environment the test suite just passed in (`bash tests/run-all.sh`): it walks the
requirements of edgeq and the given extras through the installed distributions (markers evaluated for
this interpreter) and pins each one to its installed version, like `pip freeze` limited to that tree.
The nightly examples install with it: `pip install -c constraints.txt 'edgeq[train]'`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
HEADER = """\
# Exact versions edgeq's test suite passed with (edgeq and the extras: {extras}), written by
# `python -m edgeq.tools.constraints` on {date} (Python {python}). Use it to install what was tested:
#   pip install -c constraints.txt 'edgeq[train]'
# It constrains versions only: packages it names that the install does not need are not installed.
"""


def _declared(dist: str) -> list[str]:
    """edgeq's own requirements come from the checkout's pyproject.toml (an editable install's metadata
    may be older than the file); every other distribution's from its installed metadata."""
    if dist == "edgeq" and PYPROJECT.exists():
        project = tomllib.loads(PYPROJECT.read_text())["project"]
        lines = list(project["dependencies"])
        for extra, reqs in project.get("optional-dependencies", {}).items():
            lines += [f'{r}; extra == "{extra}"' for r in reqs]
        return lines
    return metadata.requires(dist) or []


def _requirements(dist: str, extras: set[str]) -> list[Requirement]:
    reqs = []
    for line in _declared(dist):
        r = Requirement(line)
        envs = [{"extra": e} for e in extras] or [{"extra": ""}]
        if r.marker is None or any(r.marker.evaluate(env) for env in envs):
            reqs.append(r)
    return reqs


def tree(root: str = "edgeq", extras: set[str] | None = None) -> dict[str, str]:
    """{distribution name: installed version} for root's dependencies (root itself excluded)."""
    pins: dict[str, str] = {}
    todo = [(root, extras or set())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, ex = todo.pop()
        key = (canonicalize_name(name), frozenset(ex))
        if key in seen:
            continue
        seen.add(key)
        for r in _requirements(name, ex):
            try:
                dist = metadata.distribution(r.name)
            except metadata.PackageNotFoundError:
                raise SystemExit(
                    f"{r.name} (needed by {name}) is not installed: install edgeq[{','.join(sorted(ex))}] first"
                ) from None
            pins[canonicalize_name(dist.metadata["Name"])] = dist.version
            todo.append((r.name, set(r.extras)))
    return pins


def render(pins: dict[str, str], extras: list[str]) -> str:
    head = HEADER.format(
        extras=", ".join(extras) or "none",
        date=dt.date.today().isoformat(),
        python=platform.python_version(),
    )
    return head + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extras", default="train,labgrid")
    ap.add_argument("-o", "--output", type=Path, default=Path("constraints.txt"))
    a = ap.parse_args()
    extras = [e for e in re.split(r"[,\s]+", a.extras) if e]
    a.output.write_text(render(tree("edgeq", set(extras)), extras))
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
