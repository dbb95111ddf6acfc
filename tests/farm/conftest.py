"""Fixtures of the farm tier: real sshd boards, Prometheus + Pushgateway, the emulated aarch64 board.

They run as root with the packages tests/run-all.sh installs; a missing part fails the test with its
name (edgeq.testing.Missing, aarch64.FarmError), never skips silently: this is CI's only coverage of them.

aarch64_board (session scope): a running edgeq.testing.aarch64.Board, built from the cached rootfs
(built first if the recipe changed), that accepts a freshly generated ed25519 key. Besides Board's own
attributes it carries `timings` = {"ensure_rootfs_s", "built_now", "build_s" (as recorded when the
cache entry was built), "start_s"}.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from edgeq.testing import Missing, aarch64, promfarm, sshfarm


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    try:
        f = sshfarm.SSHFarm.start(tmp_path_factory.mktemp("farm"), n=3)
    except Missing as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def tflite_models(tmp_path_factory) -> dict[str, Path]:
    """Two loadable Input(8)->Dense(3) models with different weights, a truncated one (refused on the host),
    one with an op the runtime lacks (refused by the board) and a file that is not TFLite at all."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    d = tmp_path_factory.mktemp("models")
    out = {}
    for name, seed in (("dense_a", 1), ("dense_b", 2)):
        tf.keras.utils.set_random_seed(seed)
        inp = tf.keras.Input((8,))
        model = tf.keras.Model(inp, tf.keras.layers.Dense(3)(inp))
        blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        assert blob[4:8] == b"TFL3"
        (d / f"{name}.tflite").write_bytes(blob)
        out[name] = d / f"{name}.tflite"
    good = out["dense_a"].read_bytes()
    out["broken"] = d / "broken.tflite"
    out["broken"].write_bytes(good[: len(good) // 2])  # right header, cut in half: the runtime refuses it

    # a whole, valid flatbuffer the runtime cannot load (a TF op kept as an unresolved custom op): the board refuses it
    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def igamma(x):
        return tf.math.igamma(x + 1.0, x + 2.0)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([igamma.get_concrete_function()], igamma)
    conv.allow_custom_ops = True
    out["custom_op"] = d / "custom_op.tflite"
    out["custom_op"].write_bytes(conv.convert())
    out["not_tflite"] = d / "model.onnx.tflite"
    out["not_tflite"].write_bytes(b"\x08\x07\x12\x04onnx" + bytes(100))
    return out


@pytest.fixture
def pushgateway(tmp_path):
    """A fresh real Pushgateway of its own (empty), for tests that break or pause it: yields (url, process)."""
    try:
        promfarm.ensure_installed()
    except Missing as e:
        pytest.fail(str(e), pytrace=False)
    port = promfarm.free_port()
    proc = promfarm.start_pushgateway(tmp_path, port)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        promfarm.stop(proc)


@pytest.fixture(scope="session", name="promfarm")
def promfarm_fixture(tmp_path_factory):
    """A real Prometheus scraping a real Pushgateway, shared by the session."""
    farm = promfarm.PromFarm(tmp_path_factory.mktemp("promfarm"))
    try:
        farm.start()
    except Missing as e:
        farm.close()
        pytest.fail(str(e), pytrace=False)
    try:
        yield farm
    finally:
        farm.close()


@pytest.fixture(scope="session")
def aarch64_rootfs():
    """(rootfs path, seconds ensure_rootfs took, whether this session built it)."""
    t0 = time.monotonic()
    cached = (aarch64.cache_dir() / f"aarch64-{aarch64.recipe_hash()}" / "build.json").exists()
    try:
        rootfs = aarch64.ensure_rootfs()
    except aarch64.FarmError as e:
        pytest.fail(f"cannot build the emulated aarch64 board: {e}", pytrace=False)
    return rootfs, time.monotonic() - t0, not cached


@pytest.fixture(scope="session")
def aarch64_board(aarch64_rootfs, tmp_path_factory):
    rootfs, ensure_s, built_now = aarch64_rootfs
    keys = tmp_path_factory.mktemp("aarch64-keys")
    key = keys / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeq-test", "-f", str(key)], check=True, capture_output=True
    )
    try:
        board = aarch64.start_board(rootfs, authorized_pubkey=key.with_suffix(".pub"), key_file=key)
    except aarch64.FarmError as e:
        pytest.fail(f"cannot start the emulated aarch64 board: {e}", pytrace=False)
    board.timings = {
        "ensure_rootfs_s": round(ensure_s, 1),
        "built_now": built_now,
        "build_s": aarch64.build_info(rootfs)["build_seconds"],
        "start_s": round(board.start_seconds, 1),
    }
    try:
        yield board
    finally:
        board.stop()
