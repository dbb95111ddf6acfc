"""The report headline's verdict per board: ship only where faster and within the accuracy budget."""

from __future__ import annotations

from edgeq.results import load_manifest, query, record_run
from edgeq.results.headline import headline
from edgeq.testing.promfarm import synthetic_manifest


def _run(tmp_path, **kw):
    db = tmp_path / "h.db"
    record_run(
        load_manifest(synthetic_manifest("20260101T023000Z-000001", started="2026-01-01T02:30:00+00:00", seed=1, n=300, **kw)), db
    )
    with query.open_for_reading(db) as h:
        return query.load(h, query.resolve(h, "latest", None), samples=False)


def test_slower_board_and_accuracy_over_budget_hold(tmp_path):
    h = headline(
        _run(tmp_path, variants=("fp32", "int8"), p50_s={("pi5", "int8"): 0.5e-3, ("pi4", "int8"): 5e-3}, accuracy={"int8": 0.90})
    )
    v = {b.device: b for b in h.boards}
    assert h.variant == "int8" and not v["pi4"].ship and "slower than fp32" in v["pi4"].reason
    assert not v["pi5"].ship and "over the" in v["pi5"].reason and v["pi5"].speedup > 1.5


def test_faster_within_budget_ships(tmp_path):
    run = _run(tmp_path, variants=("fp32", "int8"), p50_s={("pi5", "int8"): 0.5e-3, ("pi4", "int8"): 1e-3})
    h = headline(run)
    assert h.ship_on == ["pi4", "pi5"] and all("faster" in b.reason for b in h.boards)


def test_no_quantized_variant_no_headline(tmp_path):
    assert headline(_run(tmp_path, variants=("fp32",))) is None
