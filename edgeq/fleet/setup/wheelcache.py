"""The host's cache of board wheels: `pip download` for a board's Python and platform, reused when present.

Boards are often offline; the host has PyPI. Wheels land in <edgeq home>/wheels/<platform>-cpXY/<set>/,
written to a temporary folder and renamed once complete, with a manifest of their sha256 (what the
board checks after the upload, and pip installs with --require-hashes). A file lock serialises boards of the
same kind set up in parallel. A cached set is re-hashed each time it is used: a wheel that no longer matches
its manifest (a bad disk, a hand edit) makes the whole set download again instead of failing on every board.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeq.errors import FleetError
from edgeq.hashing import file_sha256
from edgeq.paths import home as edgeq_home
from edgeq.records.setup import RuntimeChoice

PIP_TIMEOUT = 900  # a cold download of tflite-runtime + numpy is ~10 s here; a slow mirror gets minutes


class WheelsUnavailable(FleetError):
    """PyPI has no wheel set for this runtime on this board kind (pip's reason in the message)."""


@dataclass(frozen=True)
class WheelSet:
    folder: Path
    files: tuple[tuple[str, str], ...]  # (file name, sha256), sorted
    platform: str
    reused: bool

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.files)


def cache_root() -> Path:
    return edgeq_home() / "wheels"


def _set_dir(root: Path, key: str, choice: RuntimeChoice) -> Path:
    digest = hashlib.sha256("\n".join(choice.requirements).encode()).hexdigest()[:10]
    return root / key / f"{choice.runtime}-{digest}"


def fetch_wheels(
    choice: RuntimeChoice, py: tuple[int, int], platforms: list[str], key: str, *, root: Path | None = None
) -> WheelSet:
    """The wheels of `choice` for a board (cached); raises WheelsUnavailable if PyPI has none."""
    final = _set_dir(root or cache_root(), key, choice)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _read_manifest(final)
        if cached is not None and all(file_sha256(final / n) == h for n, h in cached):
            return WheelSet(final, cached, key, reused=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            _pip_download(choice, py, platforms, tmp)
            files = tuple(sorted((p.name, file_sha256(p)) for p in tmp.glob("*.whl")))
            doc = {"requirements": list(choice.requirements), "platforms": platforms, "files": dict(files)}
            (tmp / "wheels.json").write_text(json.dumps(doc, indent=1) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return WheelSet(final, files, key, reused=False)


def _read_manifest(folder: Path) -> tuple[tuple[str, str], ...] | None:
    try:
        files = json.loads((folder / "wheels.json").read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not files or not all((folder / n).is_file() for n in files):
        return None
    return tuple(sorted(files.items()))


def _pip_download(choice: RuntimeChoice, py: tuple[int, int], platforms: list[str], dest: Path) -> None:
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet", "--only-binary=:all:"]
    argv += ["--python-version", f"{py[0]}.{py[1]}", "--implementation", "cp"]
    for tag in platforms:
        argv += ["--platform", tag]
    argv += ["-d", str(dest), *choice.requirements]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        raise WheelsUnavailable(
            f"pip download {' '.join(choice.requirements)} took over {PIP_TIMEOUT} s", "check this machine's access to PyPI"
        ) from None
    if p.returncode:
        why = [ln for ln in p.stderr.splitlines() if ln.startswith("ERROR")] or p.stderr.strip().splitlines()[-3:]
        raise WheelsUnavailable(
            f"no {choice.runtime} wheels for cp{py[0]}{py[1]} {platforms[0]}: {' '.join(why)[-500:]}",
            "this machine needs PyPI access (or a pip index with these wheels) to prepare offline boards",
        )
