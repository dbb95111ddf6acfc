"""The README and docs/ as a reader follows them: every relative link opens a file that exists, every #anchor
is a heading of its target (GitHub's anchor rules), every docs page is reachable from the README, and the
README stays a front door (short, the two set-up commands first).

The helpers here (anchors, links) are also used by test_runbook_links.py and test_dashboard_files.py.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a bash block is not a heading)."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped except - and _,
    spaces to -."""
    text = _LINK.sub(r"\1", heading)
    text = _CODE_SPAN.sub(r"\2", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file offers; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: Counter[str] = Counter()
    out = set()
    for line in prose_lines(path.read_text()):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        out.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return out


def links(path: Path) -> list[str]:
    """Link targets of a Markdown file, outside code blocks and code spans."""
    out = []
    for line in prose_lines(path.read_text()):
        out += [m.group(2) for m in _LINK.finditer(_CODE_SPAN.sub("", line))]
    return out


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def _is_external(target: str) -> bool:
    return bool(re.match(r"[a-z][a-z0-9+.-]*:", target))


def _broken(path: Path) -> list[str]:
    bad = []
    for target in links(path):
        if not target or _is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{path.relative_to(REPO)}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{path.relative_to(REPO)}: {target}: no heading with that anchor in {dest.relative_to(REPO)}")
    return bad


def test_slug_follows_githubs_rules():
    assert slug("EdgeqLatencyRegression") == "edgeqlatencyregression"
    assert slug("Start a working folder: `edgeq init [DIR]`") == "start-a-working-folder-edgeq-init-dir"
    assert slug("Image folders (`data.source: images`)") == "image-folders-datasource-images"
    assert slug("`ssh_config:`") == "ssh_config"
    assert slug("Per-op timing: not offered, and why") == "per-op-timing-not-offered-and-why"
    assert slug("See [the docs](x.md) now") == "see-the-docs-now"


def test_anchors_skip_code_blocks_and_number_repeats(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("# Title\n\n```bash\n# not a heading\n```\n\n## Notes\n\n### Notes\n")
    assert anchors(md) == {"title", "notes", "notes-1"}


def test_every_relative_link_in_the_readme_and_docs_resolves():
    files = markdown_files()
    assert len(files) > 10, "docs/ is missing"
    bad = [b for f in files for b in _broken(f)]
    assert bad == [], "\n".join(bad)


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = set(), [REPO / "README.md"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for target in links(page):
            file_part = target.partition("#")[0]
            if file_part and not _is_external(target) and file_part.endswith(".md"):
                dest = (page.parent / file_part).resolve()
                if dest.is_relative_to(REPO) and dest.exists():
                    todo.append(dest)
    orphans = [str(p.relative_to(REPO)) for p in DOCS.rglob("*.md") if p.resolve() not in seen]
    assert orphans == [], f"not linked from the README or a page it links to: {orphans}"


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250, "the README is the front door: references, rationale and runbooks go to docs/"
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines() == [
        "# 1. create a virtualenv (.venv), install edgeq with training, and run the main job"
        " (digits + MLP on the embedded local board)",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[train]' && edgeq run pipelines/quickstart.yaml",
        "# 2. install everything the tests need (Debian packages included; Python packages into .venv) and run the whole suite",
        "bash tests/run-all.sh",
    ]
    assert "## Exit codes" in text and "PEP 668" in text
