"""A board whose login shell prints on stdout before every command (a banner echoed from ~/.bashrc).

Real sshd, real bash reading the board's ~/.bashrc, the stock external sftp-server run through that shell:
the banner lands in front of the SFTP protocol exactly as on such an image (paramiko: "Garbage packet
received"). edgeq falls back to exec-channel transfers and reads the agent's JSON after the noise.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from edgeq.fleet.transport.sshexec import marker_value
from edgeq.testing import Missing, sshfarm
from edgeq.testing.common import TINY
from edgeq.testing.fleet import board_entry, by_device, run_json, write_devices

BANNER = "Welcome to Raspberry Pi OS (edgeq farm) -- have a lot of fun"


@pytest.fixture(scope="module")
def chatty_farm(tmp_path_factory):
    try:
        f = sshfarm.SSHFarm.start(tmp_path_factory.mktemp("chatty"), n=1)
    except Missing as e:
        pytest.fail(str(e), pytrace=False)
    try:
        f.add_board("chatty", login_banner=BANNER)
        yield f
    finally:
        f.stop()


def _devices(farm, tmp_path):
    quiet, chatty = farm.boards
    return write_devices(tmp_path, board_entry(farm, quiet, tmp_path), board_entry(farm, chatty, tmp_path))


def test_the_farm_board_really_is_chatty(chatty_farm):
    """The premise: every command's stdout starts with the banner, and SFTP through that shell is broken."""
    import paramiko

    b = chatty_farm.boards[1]
    c = paramiko.SSHClient()
    c.load_host_keys(str(chatty_farm.known_hosts))
    c.connect("127.0.0.1", b.port, key_filename=str(chatty_farm.user_key), allow_agent=False, look_for_keys=False)
    try:
        _, out, _ = c.exec_command("echo hi")
        assert out.read().decode().splitlines() == [BANNER, "hi"]
        with pytest.raises(paramiko.SFTPError, match="Garbage packet"):
            c.open_sftp()
    finally:
        c.close()


def test_check_deploy_bench_on_a_chatty_board(chatty_farm, tmp_path, tflite_models):
    dev = _devices(chatty_farm, tmp_path)
    code, doc, err = run_json("devices", "check", "all", "--devices", dev)
    assert code == 0, (doc, err)
    recs = by_device(doc)
    assert recs["chatty"]["healthy"] and recs["b1"]["healthy"]
    note = recs["chatty"]["warnings"][0]
    assert BANNER[:40] in note and "~/.bashrc" in note, note
    assert "warnings" not in recs["b1"]  # a quiet board's document is as before

    art = tflite_models["dense_a"]
    code, doc, err = run_json("deploy", art, "-t", "all", "--devices", dev)
    assert code == 0, (doc, err)
    rec = by_device(doc)["chatty"]
    assert rec["status"] == "changed" and rec["current"] == doc["sha256"]
    w = tmp_path / "boards" / "chatty"
    blob = w / "models" / "dense_a" / f"{doc['sha256']}.tflite"
    assert blob.read_bytes() == art.read_bytes()  # whole, byte for byte, through `cat` on an exec channel
    assert not list((w / "tmp").glob("*")), "no temp file left behind"

    code, doc, err = run_json("bench", art, "-t", "all", "--runs", "20", "--min-seconds", "0", "--devices", dev)
    assert code == 0, (doc, err)
    res = by_device(doc)["chatty"]["results"][0]
    assert res["ok"] and res["count"] >= 20 and res["latency_ms"]["p50"] > 0

    # a rerun of deploy changes nothing (status read through the noise)
    code, doc, _ = run_json("deploy", art, "-t", "chatty", "--devices", dev)
    assert code == 0 and by_device(doc)["chatty"]["action"] == "unchanged"


@pytest.mark.slow
def test_pipeline_run_deploys_and_benchmarks_on_a_chatty_board(chatty_farm, tmp_path):
    dev = _devices(chatty_farm, tmp_path)
    doc = json.loads(json.dumps(TINY))
    doc.update(name="chatty", devices=str(dev), deploy={"targets": ["chatty"]})
    doc["quantize"] = {"variants": [{"type": "int8", "calibration_samples": 50, "per_channel": False}]}
    doc["benchmark"] = {"runs": 10, "warmup": 1, "min_seconds": 0.05, "threads": [1], "input_samples": 8}
    pipe = tmp_path / "chatty.yaml"
    pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "EDGEQ_HOME": str(tmp_path / "h")}
    p = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "edgeq", "run", str(pipe), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=900,
    )
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    m = json.loads(p.stdout)
    rows = [b for b in m["benchmarks"] if b["device"] == "chatty"]
    assert rows and all(b["ok"] for b in rows), rows


def test_unreadable_result_after_noise_names_the_login_shell(chatty_farm, tmp_path, tflite_models):
    """Where no fallback exists (the shell also prints a brace line after every command, so the result
    cannot be told from the noise), the error names the login shell and the text it prints."""
    board = chatty_farm.add_board("chatty2", login_banner=BANNER)
    rc = board.root / ".bashrc"
    rc.write_text(rc.read_text() + "trap " + shlex.quote("echo '{fortune: unreadable}'") + " EXIT\n")
    dev = write_devices(tmp_path, board_entry(chatty_farm, board, tmp_path))
    code, doc, err = run_json("deploy", tflite_models["dense_a"], "-t", "all", "--devices", dev)
    rec = by_device(doc)["chatty2"]
    assert code != 0 and rec["status"] == "failed", rec
    assert rec["kind"] == "login_shell_noise" and BANNER[:30] in rec["error"] and "~/.bashrc" in rec["hint"], rec


def test_marker_found_after_noise():
    assert marker_value("Welcome\nEDGEQ-FILE-OP 123\n") == "123"
    assert marker_value("fortune EDGEQ-FILE-OP /home/pi\n") == "/home/pi"
    assert marker_value("Welcome\n") is None


def test_full_disk_on_a_chatty_board_over_exec_transfer(chatty_farm, tmp_path, tflite_models):
    """The exec-channel upload on a full disk: the board's `cat` fails with ENOSPC; the error names the disk,
    the temp file is gone, and the model deployed before stays current."""
    import shutil
    import subprocess

    import tensorflow as tf

    from edgeq import fleet

    tf.keras.utils.set_random_seed(7)
    inp = tf.keras.Input((256,))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(3)(tf.keras.layers.Dense(1024)(inp)))
    medium = tmp_path / "medium.tflite"  # ~1 MB
    medium.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)], capture_output=True, text=True)  # noqa: S603,S607
    assert r.returncode == 0, f"cannot mount a tmpfs at {mnt} (tests run as root): {r.stderr}"
    try:
        dev = write_devices(tmp_path, board_entry(chatty_farm, chatty_farm.boards[1], tmp_path, workdir=str(mnt)))
        code, doc, err = run_json("deploy", tflite_models["dense_a"], "-t", "chatty", "--name", "m", "--devices", dev)
        assert code == 0, (doc, err)
        old = doc["sha256"]
        filled = []

        def progress(ev):  # the free-space check has passed; now a log file eats the disk, leaving ~200 KiB
            if ev["event"] == "upload" and ev["bytes"] == 0 and not filled:
                free = shutil.disk_usage(mnt).free
                (mnt / "filler.bin").write_bytes(b"\0" * max(0, free - 200 * 1024))
                filled.append(free)

        doc = fleet.deploy(fleet.load_inventory(dev), ["chatty"], medium, name="m", progress=progress).to_json()
        assert filled
        rec = by_device(doc)["chatty"]
        assert rec["status"] == "failed" and rec["kind"] == "disk_full" and "No space left" in rec["error"], rec
        assert rec["current"] == old and not list(mnt.rglob("*.part")), rec
        assert (mnt / "models" / "m" / "current").exists()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)  # noqa: S603,S607
