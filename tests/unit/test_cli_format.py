"""The CLI's one formatting rule set and its tables: pure functions, no terminal."""

from __future__ import annotations

import io
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeq.cli import format as fmt
from edgeq.cli import output


@pytest.mark.parametrize(
    ("values", "unit"),
    [([0.0027, 0.003], "µs"), ([24.0, 0.5, 30.0], "ms"), ([1500.0], "s"), ([], "ms"), ([None, 2.0], "ms")],
)
def test_latency_unit_follows_the_median(values, unit):
    assert fmt.latency_unit(values) == unit


def test_latency_cells_are_in_the_tables_unit():
    assert fmt.latency(0.002675, "µs") == "2.67"
    assert fmt.latency(24.25, "ms") == "24.25"
    assert fmt.latency(1234.5, "ms") == "1,234.5"
    assert fmt.latency(None, "ms") == ""


def test_sizes_percentages_and_points():
    assert fmt.size(512) == "512 B"
    assert fmt.size(2_000_000) == "2.0 MB"
    assert fmt.size(None) == ""
    assert fmt.mib(64 * 2**20) == "64.0"
    assert fmt.pct(0.98333) == "98.33%"
    assert fmt.pts(-0.0009) == "-0.09 pts"


@given(st.floats(min_value=0, max_value=1e7, allow_nan=False))
def test_latency_never_raises_and_is_numeric(ms):
    unit = fmt.latency_unit([ms])
    cell = fmt.latency(ms, unit)
    float(cell.replace(",", ""))


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cf", "Zl", "Zp", "Zs", "Mn", "Me")), min_size=1, max_size=30))
def test_foreign_text_in_a_table_is_never_markup(text):
    """A board's `[/etc/...]` or a YAML name like `[bold]` is printed as is, never parsed (it crashed devices check)."""
    buf = io.StringIO()
    old = sys.stdout
    sys.stdout = buf
    try:
        output.reset()
        output.table(f"t {text}", ["c", text], [[text, "x"]])
    finally:
        sys.stdout = old
        output.reset()
    assert text in buf.getvalue()
