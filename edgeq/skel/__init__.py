"""What `edgeq init` and `edgeq dashboards export` write: copies, shipped in the wheel, of top-level files.

The top-level devices.yaml, pipelines/quickstart.yaml, constraints.txt and dashboards/ are the source of
truth; `python -m edgeq.tools.skel` refreshes the copies here and tests/unit/test_skel.py fails when they
drift. Files are written with the umask's permissions (edgeq.paths.atomic_write_bytes).

The alert rules' runbook links (and the dashboard's links into the docs) are absolute, because Alertmanager
and Grafana open them from elsewhere: they start with DOCS_URL, edgeq's upstream docs/ folder. `--docs-url`
writes another base in their place, for a team that serves its own copy of docs/.

`edgeq init` also keeps its home out of version control: it writes a .gitignore holding `.edgeq/`, or adds
that line to the folder's own .gitignore (never replaced, --force or not).
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeq import paths
from edgeq.errors import EdgeqError, ExitCode

SKEL = Path(__file__).resolve().parent
# relative to the repository root and to the scaffolded folder alike
SOURCES = ("devices.yaml", "pipelines/quickstart.yaml", "constraints.txt", "dashboards")
DASHBOARDS = "dashboards/"
NIGHTLY = "dashboards/nightly/"  # systemd units and the CI example: `init` writes them, `dashboards export` not
# The shipped files' links into docs/ start with this; tests/unit/test_runbook_links.py checks every one.
DOCS_URL = "https://github.com/edgeq/edgeq/blob/main/docs/"
# http(s), and none of the characters that would end the YAML or JSON string it lands in (quotes,
# backslash) or start a Go template in a Prometheus annotation ({{)
GITIGNORE = ".gitignore"
GITIGNORE_LINE = ".edgeq/"
GITIGNORE_TEXT = "# edgeq's home: runs, build cache, history.db, known_hosts (`edgeq init`)\n" + GITIGNORE_LINE + "\n"
_DOCS_URL_SHAPE = re.compile(r"https?://[^\s\"'\\<>{}|^`]+")


class WouldOverwrite(EdgeqError):
    """init/export never replace a file unless asked (--force): a scaffold over an edited config loses work."""

    exit_code = ExitCode.USAGE


class BadDocsUrl(EdgeqError):
    """A --docs-url that would break the files it is written into, or that Grafana/Alertmanager cannot open."""

    exit_code = ExitCode.USAGE


def docs_base(url: str | None) -> str:
    """The base the links are written with: DOCS_URL, or a --docs-url checked at the door (always ending in /)."""
    if url is None:
        return DOCS_URL
    if not _DOCS_URL_SHAPE.fullmatch(url):
        raise BadDocsUrl(
            f"--docs-url {url!r} is not an http(s) URL without spaces, quotes, backslashes or braces",
            "give the URL of the folder that holds operations.md, e.g. https://wiki.example.org/edgeq/docs/",
        )
    return url if url.endswith("/") else url + "/"


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


def write(dest: Path, rels: list[str], src_prefix: str = "", force: bool = False, docs_url: str | None = None) -> list[Path]:
    """Copy skeleton files (SKEL/src_prefix/rel) to dest/rel, their links into the docs under docs_url (default
    DOCS_URL). Nothing is written if any target exists (unless force): the whole scaffold or none of it."""
    base = docs_base(docs_url)
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
        data = src.read_bytes()
        if base != DOCS_URL:
            data = data.replace(DOCS_URL.encode(), base.encode())
        paths.atomic_write_bytes(dst, data)
    return [t for _, t in targets]


def write_gitignore(dest: Path) -> Path | None:
    """dest/.gitignore ignoring .edgeq/: written if missing, the line appended if absent; None when it was there."""
    path = dest / GITIGNORE
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    if old is None:
        paths.atomic_write_bytes(path, GITIGNORE_TEXT.encode())
        return path
    lines = {ln.strip() for ln in old.splitlines()}
    if lines & {GITIGNORE_LINE, ".edgeq", "/.edgeq", "/.edgeq/"}:
        return None
    sep = "" if old == "" or old.endswith("\n") else "\n"
    paths.atomic_write_bytes(path, (old + sep + GITIGNORE_TEXT).encode())
    return path
