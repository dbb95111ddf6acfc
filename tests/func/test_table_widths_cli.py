"""The real CLI at COLUMNS=80, 100 and 120: every table fits, no number, unit or run id is split across
lines, what gave way is named under the table, and --wide shows every column (the --json documents do not
change: test_results_compat, test_inspect).

Data: the golden history plus two runs of a long-named pipeline on long-named boards with six-digit latencies,
a devices.yaml of long names and addresses, a real int8 .tflite, and the local board."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from rich.cells import cell_len

from edgeq.results import load_manifest, record_run
from edgeq.testing.promfarm import synthetic_manifest

DATA = Path(__file__).resolve().parents[1] / "data"
WIDTHS = (80, 100, 120)
RUN_A, RUN_B = "20260301T023000Z-5f3a9c", "20260302T023000Z-a07be1"
BOARDS = ("raspberrypi-5-bench-lab-07", "coral-dev-board-mini")
MUST_STAY_WHOLE = re.compile(r"[-+]?\d[\d,.]*(e[-+]?\d+)?%?|\d{8}T\d{6}Z-\w+|ms|µs|MiB|MB|kB|GB|pts|\[[-\d,]+\]")
NOT_SHOWN = re.compile(r"not shown at (\d+) columns: (.*?) \(--wide shows them\)")


def _tables(text: str) -> list[tuple[list[str], list[list[str]], list[str], str]]:
    """Each table drawn: (headers, rows of cells, its lines, the note under it). Wide output only for cells."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("┏"):
            i += 1
            continue
        start = i
        while not lines[i].startswith("└"):
            i += 1
        body = lines[start : i + 1]
        note = []
        i += 1
        while i < len(lines) and lines[i][:1] not in "┏" and not lines[i + 1 if i + 1 < len(lines) else i].startswith("┏"):
            note.append(lines[i].strip())
            i += 1
        head = [c.strip() for c in body[1].strip("┃").split("┃")]
        rows = [[c.strip() for c in x.strip("│").split("│")] for x in body if x.startswith("│")]
        out.append((head, rows, body, " ".join(note)))
    return out


def _check(edgeq, args: list, home_env: dict | None = None) -> None:
    env = dict(home_env or {})
    wide = edgeq(*args, "--wide", env={**env, "COLUMNS": "80"})
    assert wide.code in (0, 8), wide.stderr
    full = _tables(wide.stdout)
    assert full, wide.stdout
    for width in WIDTHS:
        r = edgeq(*args, env={**env, "COLUMNS": str(width)})
        assert r.code == wide.code, r.stderr
        assert all(cell_len(x.rstrip()) <= width for x in r.stdout.splitlines()), f"wider than {width}:\n{r.stdout}"
        drawn = _tables(r.stdout)
        assert len(drawn) == len(full)
        for (head, rows, _, _), (_, _, lines, note) in zip(full, drawn, strict=True):
            m = NOT_SHOWN.search(note)
            hidden = set(m.group(2).split(", ")) if m else set()
            if m:
                assert m.group(1) == str(width)
            assert hidden < set(head), (hidden, head)  # only named columns give way, never all of them
            for row in rows:
                for name, cell in zip(head, row, strict=True):
                    if name in hidden:
                        continue
                    for tok in (w.strip(",;()") for w in cell.split()):
                        if MUST_STAY_WHOLE.fullmatch(tok):
                            assert any(tok in x for x in lines), f"{tok!r} ({name}) split at {width}:\n{r.stdout}"


@pytest.fixture(scope="module")
def history_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("hist") / "history.db"
    shutil.copyfile(DATA / "history-main.db", db)
    slow = {(BOARDS[0], "int8"): 0.3625512, (BOARDS[0], "fp32"): 0.5510027}
    for run_id, day, scale in ((RUN_A, "01", 1.0), (RUN_B, "02", 1.4)):
        m = synthetic_manifest(
            run_id,
            pipeline="fashion-mnist-mobilenetv2",
            started=f"2026-03-{day}T02:30:00+00:00",
            devices=BOARDS,
            variants=("fp32", "int8", "dynamic"),
            threads=(1, 4),
            p50_s={k: v * scale for k, v in slow.items()},
            n=40,
            seed=int(day),
        )
        record_run(load_manifest(m), db)
    return db


def test_history_and_compare(edgeq, history_db):
    _check(edgeq, ["history", "--db", history_db, "--limit", "50"])
    _check(edgeq, ["compare", RUN_A, RUN_B, "--db", history_db])
    _check(edgeq, ["compare", "--pipeline", "synth", "--db", history_db])


def test_devices_list_and_check(edgeq, tmp_path):
    devices = tmp_path / "devices.yaml"
    devices.write_text(
        "devices:\n"
        + "".join(
            f"  - name: {name}\n    host: 10.20.30.{100 + i}\n    user: pi\n    tags: [lab-2, aarch64, {name[:6]}]\n"
            f"    workdir: /home/pi/edgeq-bench-workdir\n    python: /home/pi/edgeq/venv/bin/python3\n"
            f"    model: Raspberry Pi 5 Model B Rev 1.0 with 8 GB of memory\n"
            for i, name in enumerate(BOARDS)
        )
    )
    _check(edgeq, ["devices", "list", "--devices", devices])
    _check(edgeq, ["devices", "check"])  # the local board, for real


def test_inspect(edgeq, tmp_path):
    import numpy as np

    from edgeq.stages.quiet import import_tensorflow

    tf = import_tensorflow()
    m = tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1), batch_size=1, name="fashion_mnist_image_input"),
            tf.keras.layers.Conv2D(8, 3, activation="relu", name="mobilenet_like_block_1_depthwise_conv"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10, activation="softmax", name="classifier_dense_softmax_output"),
        ]
    )
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.random((1, 28, 28, 1), dtype=np.float32)] for _ in range(8))
    model = tmp_path / "fashion-mnist-cnn-int8.tflite"
    model.write_bytes(conv.convert())
    _check(edgeq, ["inspect", model, "--channels"])
