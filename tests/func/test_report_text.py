"""`edgeq report` with board text that matplotlib would read as math text: `$x^2$`, an unbalanced `$`, `\\$`."""

from __future__ import annotations

from edgeq.results import load_manifest, record_run
from edgeq.testing.promfarm import synthetic_manifest

# balanced, broken ($^$, $5_$: matplotlib raises on them), unbalanced, escaped
BOARD_TEXT = {"pi5": "Pi $x^2$ rev 1.0 ($^$)", "pi4": "cost $5_$ a $ unbalanced \\$ board $"}


def _manifest(i: int) -> dict:
    m = synthetic_manifest(
        f"2026010{i + 1}T023000Z-00000{i}", started=f"2026-01-0{i + 1}T02:30:00+00:00", seed=i, n=200, variants=("fp32", "int8")
    )
    for b in m["benchmarks"]:
        b["board"]["board_model"] = BOARD_TEXT[b["device"]]
        b["board"]["cpu_model"] = "$\\notacommand$"
    return m


def test_report_renders_dollar_signs_as_text(tmp_path, edgeq):
    db = tmp_path / "h.db"
    for i in range(3):
        record_run(load_manifest(_manifest(i)), db)
    out = tmp_path / "r.html"
    r = edgeq("report", "latest", "-o", out, "--db", db, "--json")
    assert r.code == 0, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    html = out.read_text()
    assert html.count("data:image/png;base64,") == 3
    assert BOARD_TEXT["pi5"] in html and BOARD_TEXT["pi4"] in html  # the tables keep the text as is


def test_matplotlib_labels_show_the_dollars_literally():
    """What matplotlib draws for an escaped label is the original text, not math."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from edgeq.report.plots import _t

    fig = Figure()
    ax = fig.subplots()
    for raw in (*BOARD_TEXT.values(), "$\\notacommand$", "a $ b", "c \\$ d $", "$$", "\\", "plain"):
        t = ax.set_title(_t(raw))
        fig.savefig(io.BytesIO(), format="png")  # raises on bad math text
        assert t._preprocess_math(t.get_text()) == (raw, False), raw
