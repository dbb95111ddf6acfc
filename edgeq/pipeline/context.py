"""The run context: what every stage of one pipeline run reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeq.config import PipelineSpec
from edgeq.data import datasets as data_mod
from edgeq.pipeline.cache import StageCache


class RunContext:
    """The spec and its folder, the stage cache, the run's folder and id, library versions, --force, and the log."""

    def __init__(
        self,
        spec: PipelineSpec,
        base: Path,
        cache: StageCache,
        run_dir: Path,
        run_id: str,
        versions: dict,
        force: bool,
        log: Callable[[str], None],
    ):
        self.spec, self.base, self.cache, self.run_dir = spec, base, cache, run_dir
        self.run_id, self.versions, self.force, self.log = run_id, versions, force, log
        self.tf_versions = {k: versions[k] for k in ("tensorflow", "keras")}
        self._dataset: Any = None

    def dataset(self):
        """The dataset, loaded on first use: a run whose stages are all cached never reads it."""
        if self._dataset is None:
            self._dataset = data_mod.load(self.spec.data, self.base, self.spec.seed, self.cache.root / "images")
        return self._dataset

    def cached(self, stage: str, key: str, build: Callable[[Path], dict | None], label: str | None = None):
        """Run a cached stage: (output folder, whether the cache answered, its metrics)."""
        return self.cache.run(stage, key, build, run_id=self.run_id, force=self.force, log=self.log, label=label)
