"""Content-addressed stage outputs, like DVC: a stage whose key (inputs + params + tool versions) already
has a completed output is reused.

Outputs are built in a temp folder and renamed into the cache only when complete, so a run killed
mid-stage leaves nothing a later run trusts, and the next run resumes after the last completed stage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE_VERSION = 1  # bump when a stage's output format or semantics change


def stage_key(obj: Any) -> str:
    """The cache key of a stage: a hash of everything its output depends on."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


class StageCache:
    """Content-addressed stage outputs under HOME/cache/<stage>/<key>/ (complete or absent)."""

    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / ".tmp"

    def get(self, stage: str, key: str) -> Path | None:
        d = self.root / stage / key
        return d if (d / "meta.json").exists() else None

    @contextlib.contextmanager
    def build(self, stage: str, key: str, replace: bool = False):
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{stage}-{key}-{os.getpid()}-{secrets.token_hex(3)}"
        tmp.mkdir()
        try:
            yield tmp
            if not (tmp / "meta.json").exists():
                raise RuntimeError(f"stage {stage} wrote no meta.json")
            final = self.root / stage / key
            final.parent.mkdir(parents=True, exist_ok=True)
            old = None
            if replace and final.exists():  # --force: the fresh output wins
                old = self.tmp / f"old-{stage}-{key}-{os.getpid()}-{secrets.token_hex(3)}"
                os.rename(final, old)
            try:
                os.rename(tmp, final)
            except OSError:  # another run finished the same stage first: theirs is as good
                shutil.rmtree(tmp, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def clean_stale(self) -> None:
        """Remove temp folders left by killed runs (their pid is gone)."""
        if not self.tmp.exists():
            return
        for d in self.tmp.iterdir():
            parts = d.name.split("-")
            try:
                pid = int(parts[-2])
            except (ValueError, IndexError):
                continue
            if pid != os.getpid() and not _alive(pid):
                shutil.rmtree(d, ignore_errors=True)

    def run(
        self,
        stage: str,
        key: str,
        build: Callable[[Path], dict | None],
        *,
        run_id: str,
        force: bool,
        log: Callable[[str], None],
        label: str | None = None,
    ) -> tuple[Path, bool, dict]:
        """The stage's output folder, whether it came from the cache, and its metrics (meta.json).

        A cached output's metrics say which run built it (`from_run`).
        """
        label = label or stage
        hit = None if force else self.get(stage, key)
        if hit is not None:
            meta = json.loads((hit / "meta.json").read_text())
            log(f"{label}: cached (from run {meta.get('run_id')})")
            return hit, True, {k: v for k, v in meta.items() if k != "run_id"} | {"from_run": meta.get("run_id")}
        log(f"{label}: running")
        t = time.perf_counter()
        with self.build(stage, key, replace=force) as tmp:
            metrics = build(tmp) or {}
            meta = {**metrics, "seconds": round(time.perf_counter() - t, 3), "run_id": run_id}
            (tmp / "meta.json").write_text(json.dumps(meta, default=str))
        log(f"{label}: done in {meta['seconds']:.1f}s")
        return self.root / stage / key, False, {k: v for k, v in meta.items() if k != "run_id"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
