"""Refresh edgeq/skel/ (what `edgeq init` writes) from the top-level files, their source of truth.

    python -m edgeq.tools.skel          copy devices.yaml, pipelines/quickstart.yaml, constraints.txt, dashboards/
    python -m edgeq.tools.skel --check  exit 1 and list the files that differ (tests/unit/test_skel.py does this)

Run it from a checkout after editing any of those files; the wheel ships the copies.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from edgeq import skel

REPO = Path(skel.__file__).resolve().parents[2]


def top_level_files() -> list[str]:
    """The files the skeleton must hold, relative to the repository root."""
    out: list[str] = []
    for rel in skel.SOURCES:
        p = REPO / rel
        if p.is_dir():
            out += sorted(str(f.relative_to(REPO)) for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
        else:
            out.append(rel)
    return out


def differences() -> list[str]:
    want = set(top_level_files())
    have = set(skel.files())
    diff = [f"missing in edgeq/skel: {r}" for r in sorted(want - have)]
    diff += [f"not in the top level (delete it): edgeq/skel/{r}" for r in sorted(have - want)]
    diff += [f"differs: {r}" for r in sorted(want & have) if (REPO / r).read_bytes() != (skel.SKEL / r).read_bytes()]
    return diff


def sync() -> list[str]:
    for rel in skel.files():
        if rel not in set(top_level_files()):
            (skel.SKEL / rel).unlink()
    changed = []
    for rel in top_level_files():
        src, dst = REPO / rel, skel.SKEL / rel
        if dst.exists() and dst.read_bytes() == src.read_bytes():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        changed.append(rel)
    return changed


def main() -> None:
    if "--check" in sys.argv[1:]:
        diff = differences()
        print("\n".join(diff) or "edgeq/skel matches the top-level files")
        sys.exit(1 if diff else 0)
    changed = sync()
    print("\n".join(f"copied {r}" for r in changed) or "edgeq/skel was up to date")


if __name__ == "__main__":
    main()
