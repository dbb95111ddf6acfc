"""What `edgeq init` and `edgeq dashboards export` write: copies, shipped in the wheel, of top-level files.

The top-level devices.yaml, pipelines/quickstart.yaml, constraints.txt and dashboards/ are the source of
truth; `python -m edgeq.tools.skel` refreshes the copies here and tests/unit/test_skel.py fails when they
drift. Files are written with the umask's permissions (edgeq.paths.atomic_write_bytes).
"""

from __future__ import annotations

from pathlib import Path

from edgeq import paths
from edgeq.errors import EdgeqError, ExitCode

SKEL = Path(__file__).resolve().parent
# relative to the repository root and to the scaffolded folder alike
SOURCES = ("devices.yaml", "pipelines/quickstart.yaml", "constraints.txt", "dashboards")
DASHBOARDS = "dashboards/"
NIGHTLY = "dashboards/nightly/"  # systemd units and the CI example: `init` writes them, `dashboards export` not


class WouldOverwrite(EdgeqError):
    """init/export never replace a file unless asked (--force): a scaffold over an edited config loses work."""

    exit_code = ExitCode.USAGE


def files() -> list[str]:
    """Every shipped file, relative to the skeleton (and to the folder it is written to)."""
    return sorted(
        str(f.relative_to(SKEL))
        for f in SKEL.rglob("*")
        if f.is_file() and "__pycache__" not in f.parts and f.name != "__init__.py"
    )


def dashboard_files() -> list[str]:
    """The dashboards, alert rules and Prometheus configs, without the nightly units; relative to dashboards/."""
    return [r.removeprefix(DASHBOARDS) for r in files() if r.startswith(DASHBOARDS) and not r.startswith(NIGHTLY)]


def write(dest: Path, rels: list[str], src_prefix: str = "", force: bool = False) -> list[Path]:
    """Copy skeleton files (SKEL/src_prefix/rel) to dest/rel. Nothing is written if any target exists
    (unless force): the whole scaffold or none of it."""
    targets = [(SKEL / src_prefix / r, dest / r) for r in rels]
    if not force:
        existing = [str(t) for _, t in targets if t.exists() or t.is_symlink()]
        if existing:
            shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
            raise WouldOverwrite(f"would overwrite {shown}", "pass --force to replace them, or choose another folder")
    for src, dst in targets:
        if dst.is_dir():
            raise WouldOverwrite(f"{dst} is a folder where a file goes", "move it away or choose another folder")
        dst.parent.mkdir(parents=True, exist_ok=True)
        paths.atomic_write_bytes(dst, src.read_bytes())
    return [t for _, t in targets]
