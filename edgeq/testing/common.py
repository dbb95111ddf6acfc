"""What the CLI tests share: the repo root, a finished `edgeq` run, the tiny pipeline, the clean-error check."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


TINY = {
    "name": "tiny",
    "seed": 1,
    "data": {"source": "sklearn-digits", "max_train": 400, "max_test": 150},
    "model": {"builtin": "mlp", "hidden": [32]},
    "train": {"epochs": 8, "batch_size": 32, "learning_rate": 0.005},
    "quantize": {"variants": [{"type": "fp32"}, {"type": "int8", "calibration_samples": 50}]},
}


def assert_clean_error(r: Result, code: int, *needles: str) -> None:
    assert r.code == code, (r.code, r.stdout, r.stderr)  # noqa: S101 - a test helper
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr  # noqa: S101
    for n in needles:
        assert n in r.stderr, (n, r.stderr)  # noqa: S101


def history_counts(db) -> dict:
    """Rows per table of a results history (SQLite), to compare before and after a write."""
    c = sqlite3.connect(str(db))
    try:
        return {
            t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed table names
            for t in ("runs", "validations", "benchmarks", "benchmark_samples", "stages")
        }
    finally:
        c.close()


# Names with shell metacharacters, quotes, a newline, `..`: none may ever reach a shell or leave a work dir.
# "{c}" is replaced with the `canary` fixture's path (a file an injected command would create).
NASTY = [
    "a b",
    "a;touch {c}",
    "$(touch {c})",
    "`touch {c}`",
    "it's",
    'q"uote',
    "a\nb",
    "..",
    "../x",
    "a/../../b",
    "-rf",
    "a|b&c>d<e",
    "~root",
    "*",
]
