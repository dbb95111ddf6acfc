"""The HTML report: one self-contained file, opened in a real headless Chromium and checked to render plots."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import pytest

from edgeq.results import load_manifest, record_run
from edgeq.testing.common import assert_clean_error
from edgeq.testing.promfarm import synthetic_manifest


@pytest.fixture
def db(tmp_path):
    db = tmp_path / "h.db"
    for i in range(6):
        slow = 1.0 + 0.05 * i
        record_run(
            load_manifest(
                synthetic_manifest(
                    f"2026010{i + 1}T023000Z-00000{i}",
                    started=f"2026-01-0{i + 1}T02:30:00+00:00",
                    seed=i,
                    n=3000,
                    variants=("fp32", "int8", "dynamic"),
                    p50_s={("pi5", "int8"): 0.5e-3 * slow, ("pi4", "int8"): 1e-3 * slow},
                    accuracy={"int8": 0.945 - 0.002 * i},
                )
            ),
            db,
        )
    return db


def test_report_is_one_self_contained_file(db, tmp_path, edgeq):
    out = tmp_path / "r.html"
    r = edgeq("report", "latest", "-o", out, "--last", "5", "--db", db, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["path"] == str(out) and doc["run_id"] == "20260106T023000Z-000005" and doc["trend_runs"] == 5
    html = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched from anywhere
    assert "http://" not in html and "https://" not in html
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(imgs) == 3  # accuracy vs size, latency distribution, trend
    for b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Compared with the previous run 20260105T023000Z-000004" in html
    for needle in ("pi5", "pi4", "Raspberry Pi 5", "dynamic", "tensorflow 2.21.0"):
        assert needle in html
    # default output name in the working directory; unknown run is a store error
    r = edgeq("report", "20260101T023000Z-000000", "--db", db, cwd=tmp_path)
    assert r.code == 0 and (tmp_path / "edgeq-report-20260101T023000Z-000000.html").exists()
    r = edgeq("report", "nope", "--db", db)
    assert_clean_error(r, 10, "unknown run 'nope'")


def test_report_without_benchmarks_or_samples(tmp_path, edgeq):
    db = tmp_path / "h.db"
    m = synthetic_manifest("r1", devices=())
    m["benchmarks"] = []
    record_run(load_manifest(m), db)
    r = edgeq("report", "r1", "-o", tmp_path / "r.html", "--db", db)
    assert r.code == 0, r.stderr
    assert "On-device benchmark" not in (tmp_path / "r.html").read_text()


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("needs the Debian package chromium (tests/run-all.sh installs it)", pytrace=False)
    return exe


def test_report_renders_in_headless_chromium(db, tmp_path, edgeq):
    from PIL import Image

    out = tmp_path / "report.html"
    assert edgeq("report", "latest", "-o", out, "--db", db).code == 0
    shot = tmp_path / "shot.png"
    p = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            out.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2000)
    colors = img.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 500, "the page looks blank"  # plots and tables, not an empty page
    # the plots are drawn: many non-white pixels, and some of matplotlib's default blue and orange
    pixels = list(img.getdata()) if not hasattr(img, "get_flattened_data") else list(img.get_flattened_data())
    non_white = sum(1 for px in pixels if px != (255, 255, 255))
    assert non_white > 0.05 * len(pixels)
    assert any(abs(r - 0x1F) < 30 and abs(g - 0x77) < 30 and abs(b - 0xB4) < 30 for r, g, b in pixels)
    assert any(abs(r - 0xFF) < 30 and abs(g - 0x7F) < 30 and abs(b - 0x0E) < 40 for r, g, b in pixels)
    # the headline is on screen near the top: its green "ship" box (#dafbe1) within the first 400 px
    top = img.crop((0, 0, 1200, 400))
    top_px = list(top.getdata()) if not hasattr(top, "get_flattened_data") else list(top.get_flattened_data())
    assert sum(1 for px in top_px if px == (0xDA, 0xFB, 0xE1)) > 20_000, "no headline box at the top of the page"
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-component-update",
         f"--user-data-dir={tmp_path / 'chromium2'}", "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    head = re.search(r"<section id=\"headline\" class=\"ship\"><p class=\"answer\">(.*?)</p>", dom)
    assert head and head.group(1) == "Ship int8 on pi4, pi5", dom[:3000]
    assert "0.27x the fp32 size" in dom or "x the fp32 size" in dom


def test_report_per_op_charts_render_in_headless_chromium(tmp_path, edgeq):
    """Per-op profiles of the run: the 'where the time goes' and the int8-vs-fp32 charts are drawn (their bar
    colours on screen), the page names the int8 layer that loses most and says how ops were paired."""
    from PIL import Image

    from edgeq.results.opstore import record_profiles
    from edgeq.testing.opsprofiles import fp32_rows, int8_rows, profile

    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1", devices=("pi5",))), db)
    record_profiles("r1", [profile("fp32", fp32_rows()), profile("int8", int8_rows())], db)
    out = tmp_path / "report.html"
    assert edgeq("report", "r1", "-o", out, "--db", db).code == 0
    html = out.read_text()
    # only the per-op section, so that its charts are on the screenshot
    body = html[html.index("<h2 id='ops'>") : html.index("<p class='meta'>written by edgeq")]
    page = tmp_path / "ops.html"
    page.write_text(html[: html.index("<body>") + 6] + body + "</body></html>")
    shot = tmp_path / "ops.png"
    common = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-component-update"]
    p = subprocess.run(
        [_chromium(), *common, f"--user-data-dir={tmp_path / 'c1'}", f"--screenshot={shot}", "--window-size=1200,1800",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
    colors = {c for _, c in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20) or ()}
    assert (0x4C, 0x78, 0xA8) in colors, "no op bars drawn"  # the per-op bars (and fp32 in the pair chart)
    assert (0xE4, 0x57, 0x56) in colors, "no int8 bars drawn"  # the int8 bars of the side-by-side chart
    dom = subprocess.run(
        [_chromium(), *common, f"--user-data-dir={tmp_path / 'c2'}", "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "Where the time goes (per-op profiles)" in text and "int8 vs fp32 on pi5 (1 thr), op by op" in text
    assert "1 by exact model op, 3 by node order (op type alignment), 1 on one side only" in text
    first = re.search(
        r"<tbody><tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>", dom[dom.index("op by op") :]
    )
    assert first and first.group(1).startswith("s0/1 Convolution") and first.group(4) == "4.17", first
