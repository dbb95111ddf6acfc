"""benchmark.numeric_check: after benchmarking, each variant's numeric check on each board (edgeq numerics).

Golden rows (the first `numeric_rows` test rows, preprocessed like training) are written beside the run's
artifacts, then each variant runs them with every intermediate tensor kept on each board and on this host;
the first op over the tolerance names the layer where a board's numbers leave the host's. A board that
drifts, or cannot run the check, is a fleet failure of the run (exit 8).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeq import fleet, paths
from edgeq.config import BenchmarkStageSpec
from edgeq.errors import EdgeqError
from edgeq.records.numeric import NumericCheck
from edgeq.records.run import VariantResult

GOLDEN_FILE = "golden-inputs.npy"


def _golden(x_test: np.ndarray, rows: int, run_dir: Path) -> Path:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(fleet.golden_rows(x_test, rows), dtype=np.float32), allow_pickle=False)
    out = run_dir / GOLDEN_FILE
    paths.atomic_write_bytes(out, buf.getvalue())
    return out


def describe(c: NumericCheck) -> str:
    """One line: "matches", the first diverging op, or why the check could not run."""
    f = c.first_divergent
    if c.ok:
        return f"matches ({c.ops_compared} ops)"
    if c.kind is not None or f is None:
        return f"check failed: {c.error}"
    err = "shape/dtype mismatch" if f.error is None else f"{f.error:.3g} {'steps' if f.unit == 'lsb' else 'relative'}"
    return f"diverges at op #{f.op_index} {f.op} ({f.name or 'tensor ' + str(f.tensor)}): {err}"


def numeric_stage(
    b: BenchmarkStageSpec,
    targets: list[str],
    inv,
    variants: dict[str, VariantResult],
    keys: list[str],
    x_test: np.ndarray,
    run_dir: Path,
    log: Callable[[str], None],
) -> tuple[Path, tuple[NumericCheck, ...], list[str]]:
    """(golden inputs file, one check per variant x board, failure messages)."""
    golden = _golden(x_test, b.numeric_rows, run_dir)
    out: list[NumericCheck] = []
    failures: list[str] = []
    for key in keys:
        art = Path(variants[key].artifact)
        log(f"numeric check {key}: {b.numeric_rows} golden rows on {', '.join(targets)}")
        try:
            res = fleet.numeric_check(
                inv,
                targets,
                art,
                golden,
                name=art.stem,
                variant=key,
                tolerance_lsb=b.numeric_tolerance_lsb,
                tolerance_rel=b.numeric_tolerance_rel,
                parallel=b.parallel,
            )
        except EdgeqError as e:  # the host cannot trace the model: every board's check is unknown
            failures.append(f"numeric check {key}: {e.message}")
            continue
        for c in res.checks:
            out.append(c)
            log(f"  {c.device}: {key} {describe(c)}")
            if not c.ok:
                failures.append(f"numeric check {key} on {c.device}: {describe(c)}")
    return golden, tuple(out), failures
