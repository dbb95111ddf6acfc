"""The board agent, run the way boards run it: `python edgeq-agent-<sha>.pyz ...` with a real TFLite runtime."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgeq.agent import build_zipapp, parse_agent_output
from edgeq.testing.common import REPO
from edgeq.testing.faultkit import hold_lock

AGENT_DIR = REPO / "edgeq" / "agent"


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny real models: fp32 and full-int8 (int8 input/output) of Input(8) -> Dense(4) -> Dense(3, softmax)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    d = tmp_path_factory.mktemp("models")
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [tf.keras.Input((8,)), tf.keras.layers.Dense(4, activation="relu"), tf.keras.layers.Dense(3, activation="softmax")]
    )
    rng = np.random.default_rng(1)
    calib = rng.random((64, 8), dtype=np.float32)

    fp32 = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    int8 = conv.convert()

    paths = {"fp32": d / "fp32.tflite", "int8": d / "int8.tflite", "junk": d / "junk.tflite"}
    paths["fp32"].write_bytes(fp32)
    paths["int8"].write_bytes(int8)
    paths["junk"].write_bytes(b"TFL3 this is not a flatbuffer " * 20)
    x = rng.random((40, 8), dtype=np.float32)
    np.save(d / "x.npy", x)
    return {
        **paths,
        "x": d / "x.npy",
        "x_array": x,
        "keras_pred": model.predict(x, verbose=0).argmax(axis=1).tolist(),
    }


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    return build_zipapp(tmp_path_factory.mktemp("agent"))


@pytest.fixture
def workdir(tmp_path):
    return tmp_path / "w"


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_agent(pyz, *args, python=None, env=None, timeout=60, prelude=None):
    """Run the zipapp; returns (doc, returncode). Asserts the stdout contract: one JSON line, nothing else."""
    argv = [python or sys.executable]
    if prelude:
        argv += ["-c", prelude + "\nimport runpy, sys\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')"]
    argv += [str(pyz), *[str(a) for a in args]]
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    full_env.update(env or {})
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=str(REPO))
    assert proc.stdout.count("\n") == 1 and proc.stdout.endswith("\n"), (proc.stdout[:500], proc.stderr[-2000:])
    doc = parse_agent_output(proc.stdout, proc.stderr, proc.returncode)
    assert doc["ok"] == (proc.returncode == 0), (doc, proc.stderr[-2000:])
    return doc, proc.returncode


def upload(workdir: Path, src: Path, name="up.part") -> Path:
    """What the orchestrator does before install: copy the file into W/tmp/*.part."""
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    dest = workdir / "tmp" / name
    shutil.copyfile(src, dest)
    return dest


def install(pyz, workdir, name, src, *extra):
    part = upload(workdir, src)
    return run_agent(pyz, "install", "--workdir", workdir, "--name", name, "--blob", part, "--sha256", sha(src), *extra)


def pointers(workdir, name):
    d = workdir / "models" / name
    read = lambda p: p.read_text().strip() if p.exists() else None  # noqa: E731
    return read(d / "current"), read(d / "previous")


FAST = ("--runs", "10", "--warmup", "2", "--min-seconds", "0.1")


# ------------------------------------------------------------------------------------------------ facts


def test_facts_reports_board_and_runtime(pyz, workdir):
    doc, rc = run_agent(pyz, "facts", "--workdir", workdir)
    assert rc == 0 and doc["command"] == "facts"
    board = doc["board"]
    assert board["runtime"]["name"] == "ai-edge-litert" and board["runtime"]["version"]
    assert board["numpy"] == np.__version__
    assert board["arch"] and board["cores"] >= 1 and board["python"].startswith("3.")
    assert board["free_bytes"] > 0 and workdir.is_dir()
    for key in ("cpu_model", "kernel", "os", "hostname", "temp_c", "cpu_freq_khz", "throttled"):
        assert key in board


def test_facts_without_runtime_fails_with_install_hint(pyz, workdir):
    block = "import sys\nfor m in ('ai_edge_litert', 'tflite_runtime', 'tensorflow'): sys.modules[m] = None"
    doc, rc = run_agent(pyz, "facts", "--workdir", workdir, prelude=block)
    assert rc == 3 and doc["kind"] == "no_runtime"
    assert "ai-edge-litert" in doc["error"] and "tflite-runtime" in doc["error"]
    assert set(doc["tried"]) == {"ai-edge-litert", "tflite-runtime", "tensorflow"}


def test_fake_vcgencmd_gives_throttling_and_pmic_power(pyz, workdir, models, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "vcgencmd"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = get_throttled ]; then echo throttled=0x50005; exit 0; fi\n'
        'if [ "$1" = measure_temp ]; then echo "temp=85.2\'C"; exit 0; fi\n'
        'if [ "$1" = pmic_read_adc ]; then cat <<EOF\n'
        "     3V7_WL_SW_A current(0)=0.10000000A\n"
        "   VDD_CORE_A current(7)=2.00000000A\n"
        "   VDD_CORE_V volt(15)=0.80000000V\n"
        "   3V7_WL_SW_V volt(8)=3.70000000V\n"
        "   EXT5V_V volt(24)=5.10000000V\n"
        "EOF\nexit 0; fi\nexit 1\n"
    )
    script.chmod(0o755)
    env = {"PATH": str(bindir) + os.pathsep + os.environ["PATH"]}
    doc, _ = run_agent(pyz, "facts", "--workdir", workdir, env=env)
    assert doc["board"]["throttled"] == {"raw": "0x50005", "flags": 0x50005}
    power = json.dumps({"probe": "rpi5-pmic", "interval_s": 0.05, "idle_s": 0.1})
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], *FAST, "--power", power, env=env)
    assert rc == 0, doc
    assert doc["power"]["mean_w"] == pytest.approx(2.0 * 0.8 + 0.1 * 3.7)  # EXT5V has no current: skipped
    assert doc["power"]["idle_w"] == pytest.approx(doc["power"]["mean_w"])
    # board state: vcgencmd is read before and after the window (throttled now: bits 0 and 2; 85.2 C is hot)
    state = doc["state"]
    assert state["before"]["throttled"] == {"raw": "0x50005", "flags": 0x50005} and state["after"]["vc_temp_c"] == 85.2
    assert {"throttled", "hot"} <= set(state["flags"])


# ------------------------------------------------------------------------------------------------ model store


def test_install_activates_then_keeps_previous(pyz, workdir, models):
    h32, h8 = sha(models["fp32"]), sha(models["int8"])
    doc, rc = install(pyz, workdir, "digits", models["fp32"])
    assert rc == 0 and doc["changed"] is True and doc["current"] == h32 and doc["previous"] is None
    assert doc["load_seconds"] > 0 and doc["runtime"]["name"] == "ai-edge-litert"
    assert not (workdir / "tmp" / "up.part").exists()
    assert (workdir / "models" / "digits" / (h32 + ".tflite")).read_bytes() == models["fp32"].read_bytes()

    blob = workdir / "models" / "digits" / (h32 + ".tflite")
    doc, rc = run_agent(pyz, "install", "--workdir", workdir, "--name", "digits", "--blob", blob, "--sha256", h32)
    assert rc == 0 and doc["changed"] is False and doc["current"] == h32

    doc, rc = install(pyz, workdir, "digits", models["int8"], "--threads", "2")
    assert rc == 0 and doc["changed"] is True and (doc["current"], doc["previous"]) == (h8, h32)
    assert pointers(workdir, "digits") == (h8, h32)

    doc, rc = run_agent(pyz, "status", "--workdir", workdir, "--name", "digits", "--sha256", h32)
    assert (doc["current"], doc["previous"], doc["have"]) == (h8, h32, True)
    assert doc["blobs"] == sorted([h8, h32]) and doc["free_bytes"] > 0
    doc, _ = run_agent(pyz, "status", "--workdir", workdir, "--name", "digits", "--sha256", "0" * 64)
    assert doc["have"] is False

    # a third version prunes the oldest blob: only current and previous are kept
    third = workdir.parent / "third.tflite"
    third.write_bytes(models["fp32"].read_bytes() + b"\0")  # trailing bytes: still a loadable flatbuffer
    doc, rc = install(pyz, workdir, "digits", third)
    assert rc == 0 and doc["previous"] == h8 and doc["pruned"] == [h32]


def test_status_runs_without_numpy(pyz, workdir, models):
    # every deploy starts with `status`; importing numpy there was half its CPU time (bench/fleet_bench.py fan-out)
    h32 = sha(models["fp32"])
    install(pyz, workdir, "m", models["fp32"])
    # an `import numpy` anywhere in the process (even one caught as ImportError) crashes the agent
    no_numpy = textwrap.dedent("""
        import sys
        class NoNumpy:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "numpy":
                    raise SystemExit("numpy imported")
        sys.meta_path.insert(0, NoNumpy())
    """)
    doc, rc = run_agent(pyz, "status", "--workdir", workdir, "--name", "m", "--sha256", h32, prelude=no_numpy)
    assert rc == 0 and (doc["current"], doc["have"]) == (h32, True)


def test_install_sha_mismatch_deletes_part_and_keeps_current(pyz, workdir, models):
    install(pyz, workdir, "m", models["fp32"])
    before = pointers(workdir, "m")
    part = upload(workdir, models["int8"])
    doc, rc = run_agent(pyz, "install", "--workdir", workdir, "--name", "m", "--blob", part, "--sha256", sha(models["fp32"]))
    assert rc == 5 and doc["kind"] == "sha_mismatch" and doc["actual"] == sha(models["int8"])
    assert not part.exists() and pointers(workdir, "m") == before


def test_install_unloadable_model_is_refused(pyz, workdir, models):
    install(pyz, workdir, "m", models["fp32"])
    install(pyz, workdir, "m", models["int8"])
    before = pointers(workdir, "m")
    doc, rc = install(pyz, workdir, "m", models["junk"])
    assert rc == 4 and doc["kind"] == "unloadable"
    assert doc["runtime"]["name"] == "ai-edge-litert" and "op" in doc and "op_version" in doc
    assert not (workdir / "tmp" / "up.part").exists()
    assert pointers(workdir, "m") == before
    assert not (workdir / "models" / "m" / (sha(models["junk"]) + ".tflite")).exists()


def test_install_os_error_cleans_up(pyz, workdir, models):
    (workdir / "models").mkdir(parents=True)
    (workdir / "models" / "m").write_text("a file where the model dir should be")
    doc, rc = install(pyz, workdir, "m", models["fp32"])
    assert rc == 7 and doc["kind"] == "os_error" and doc["errno"]
    assert list((workdir / "tmp").iterdir()) == []


def test_install_refuses_blob_outside_workdir(pyz, workdir, models):
    doc, rc = run_agent(
        pyz, "install", "--workdir", workdir, "--name", "m", "--blob", models["fp32"], "--sha256", sha(models["fp32"])
    )
    assert rc == 2 and doc["kind"] == "usage" and models["fp32"].exists()


def test_rollback_swaps_current_and_previous(pyz, workdir, models):
    h32, h8 = sha(models["fp32"]), sha(models["int8"])
    install(pyz, workdir, "m", models["fp32"])
    doc, rc = run_agent(pyz, "rollback", "--workdir", workdir, "--name", "m")
    assert rc == 9 and doc["kind"] == "no_previous"
    install(pyz, workdir, "m", models["int8"])
    doc, rc = run_agent(pyz, "rollback", "--workdir", workdir, "--name", "m")
    assert rc == 0 and (doc["current"], doc["previous"]) == (h32, h8)
    assert pointers(workdir, "m") == (h32, h8)


@pytest.mark.parametrize("bad", ["../x", "a b", "", "-x", ".hidden", "a/b", "x" * 65, "a\nb"])
def test_invalid_names_are_refused(pyz, workdir, bad):
    doc, rc = run_agent(pyz, "status", "--workdir", workdir, "--name=" + bad)  # "=": argparse would read "-x" as an option
    assert rc == 2 and doc["kind"] == "invalid_name"
    assert not (workdir / "x").exists() and not (workdir.parent / "x").exists()


# ------------------------------------------------------------------------------------------------ bench


def test_bench_reports_latency_memory_and_environment(pyz, workdir, models):
    install(pyz, workdir, "m", models["fp32"])
    doc, rc = run_agent(
        pyz, "bench", "--workdir", workdir, "--name", "m", "--runs", "20", "--warmup", "3", "--min-seconds", "0.3"
    )
    assert rc == 0, doc
    lat = doc["latency_s"]
    stride = doc["samples_stride"]
    assert lat["count"] >= 20 and len(doc["samples_s"]) == -(-lat["count"] // stride) <= 20000
    assert doc["timed_seconds"] >= 0.3
    if stride == 1:  # the raw list is complete: the statistics are reproducible from it
        assert sum(doc["samples_s"]) == pytest.approx(doc["timed_seconds"], rel=1e-3)
        assert lat["p50"] == pytest.approx(float(np.percentile(doc["samples_s"], 50)), rel=1e-3)
    else:  # thinned in time order: still representative
        assert lat["p50"] == pytest.approx(float(np.percentile(doc["samples_s"], 50)), rel=0.2)
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert doc["init_seconds"] > 0 and doc["first_invoke_seconds"] > 0 and doc["warmup_runs"] == 3
    mem = doc["memory"]
    assert mem["vmhwm_after_runs_bytes"] >= mem["vmhwm_after_init_bytes"] >= mem["vmhwm_before_init_bytes"] > 0
    model = doc["model"]
    assert model["sha256"] == sha(models["fp32"]) and model["size_bytes"] == models["fp32"].stat().st_size
    assert model["inputs"][0]["dtype"] == "float32" and model["inputs"][0]["shape"] == [1, 8]
    assert model["outputs"][0]["shape"] == [1, 3]
    assert doc["threads"] == 1 and doc["delegate"]["used"] == "xnnpack" and doc["power"] is None
    assert doc["board"]["runtime"] == doc["runtime"] and "temp_c" in doc["board_after"]


def test_bench_int8_quantizes_float_inputs_and_delegate_none(pyz, workdir, models):
    doc, rc = run_agent(
        pyz, "bench", "--workdir", workdir, "--model", models["int8"], *FAST, "--inputs", models["x"], "--delegate", "none"
    )
    assert rc == 0, doc
    assert doc["inputs_source"].startswith("npy:") and doc["model"]["inputs"][0]["dtype"] == "int8"
    assert doc["model"]["inputs"][0]["quantization"]["scale"] > 0
    assert doc["delegate"] == {"requested": "none", "used": "none", "note": doc["delegate"]["note"]}


@pytest.mark.slow
def test_tensorflow_fallback_runtime(pyz, workdir, models):
    """Boards with only TensorFlow: the same agent through tf.lite (slowest test here: TF's import)."""
    env = {"EDGEQ_AGENT_RUNTIME": "tensorflow"}
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], *FAST, "--delegate", "none", env=env)
    assert rc == 0, doc
    assert doc["runtime"]["name"] == "tensorflow" and doc["runtime"]["version"] and doc["delegate"]["used"] == "none"


def test_bench_edgetpu_without_library_is_delegate_missing(pyz, workdir, models):
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], *FAST, "--delegate", "edgetpu")
    assert rc == 8 and doc["kind"] == "delegate_missing" and "libedgetpu1-std" in doc["error"]


def test_bench_bad_arguments_are_usage_errors(pyz, workdir, models):
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], "--runs", "0")
    assert rc == 2 and doc["kind"] == "usage"
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], "--power", '{"probe": "nope"}')
    assert rc == 2 and doc["kind"] == "usage"
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--name", "missing")
    assert rc == 9 and doc["kind"] == "not_found"


class SysfsWriter(threading.Thread):
    """Plays a hwmon file: writes value(t) every 5 ms, atomically like sysfs reads look."""

    def __init__(self, path: Path, value):
        super().__init__(daemon=True)
        self.path, self.value, self.stop = path, value, threading.Event()
        self.t0 = time.monotonic()
        self.write()

    def write(self):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(int(self.value(time.monotonic() - self.t0))) + "\n")
        os.replace(tmp, self.path)

    def run(self):
        while not self.stop.wait(0.005):
            self.write()


@pytest.mark.parametrize(
    "filename, value, watts",
    [("power1_input", lambda t: 2_500_000, 2.5), ("energy1_input", lambda t: 10**9 + 2_000_000 * t, 2.0)],
    ids=["power-uW", "energy-uJ"],
)
def test_bench_power_hwmon(pyz, workdir, models, tmp_path, filename, value, watts):
    path = tmp_path / filename
    writer = SysfsWriter(path, value)
    writer.start()
    try:
        power = json.dumps({"probe": "hwmon", "path": str(path), "interval_s": 0.05, "idle_s": 0.2})
        doc, rc = run_agent(
            pyz,
            "bench",
            "--workdir",
            workdir,
            "--model",
            models["fp32"],
            "--runs",
            "10",
            "--min-seconds",
            "0.4",
            "--power",
            power,
        )
    finally:
        writer.stop.set()
        writer.join()
    assert rc == 0, doc
    p = doc["power"]
    assert "error" not in p, p
    # an energy counter written by a thread on a shared 2-core machine jitters: ΔE/Δt per 50 ms is approximate
    assert p["mean_w"] == pytest.approx(watts, rel=0.3) and p["idle_w"] == pytest.approx(watts, rel=0.4)
    assert p["samples"] >= 3 and len(p["samples_w"]) == p["samples"]
    assert p["joules_per_inference"] == pytest.approx(p["mean_w"] * doc["latency_s"]["mean"])


def test_bench_power_command_and_probe_errors(pyz, workdir, models, tmp_path):
    power = json.dumps(
        {"probe": "command", "command": [sys.executable, "-c", "print('3.25')"], "interval_s": 0.05, "idle_s": 0.1}
    )
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], *FAST, "--power", power)
    assert rc == 0 and doc["power"]["mean_w"] == 3.25 and doc["power"]["idle_w"] == 3.25

    power = json.dumps({"probe": "hwmon", "path": str(tmp_path / "nope" / "power1_input"), "idle_s": 0})
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], *FAST, "--power", power)
    assert rc == 0 and "cannot read" in doc["power"]["error"] and doc["latency_s"]["count"] >= 10


# ------------------------------------------------------------------------------------------------ lock


# hold_lock: a live process holding W/lock exactly as an agent does (tests/faultkit.py)


def test_lock_held_by_another_process_times_out_naming_it(pyz, workdir, models):
    holder = hold_lock(workdir)
    try:
        t = time.monotonic()
        doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], *FAST, "--lock-timeout", "0.5")
        assert time.monotonic() - t >= 0.5
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert rc == 6 and doc["kind"] == "locked"
    assert doc["holder"]["pid"] == holder.pid and doc["holder"]["since"] and str(holder.pid) in doc["error"]


def test_lock_of_a_killed_process_is_no_obstacle(pyz, workdir, models):
    holder = hold_lock(workdir)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert str(holder.pid) in (workdir / "lock").read_text()  # the dead holder's note is still there
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], *FAST, "--lock-timeout", "1")
    assert rc == 0, doc


# ------------------------------------------------------------------------------------------------ predict


def test_predict_matches_keras_and_int8_reference(pyz, workdir, models):
    install(pyz, workdir, "m", models["fp32"])
    doc, rc = run_agent(pyz, "predict", "--workdir", workdir, "--name", "m", "--inputs", models["x"], "--batch", "16")
    assert rc == 0 and doc["count"] == 40 and doc["batch_used"] == 16
    assert doc["predictions"] == models["keras_pred"]

    doc, rc = run_agent(pyz, "predict", "--workdir", workdir, "--model", models["int8"], "--inputs", models["x"])
    assert rc == 0 and doc["count"] == 40
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(models["int8"]))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zp = inp["quantization"]
    expected = []
    for row in models["x_array"]:
        q = np.clip(np.round(row / scale) + zp, -128, 127).astype(np.int8)[None]
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        expected.append(int(interp.get_tensor(out["index"]).argmax()))
    agree = np.mean(np.array(expected) == np.array(doc["predictions"]))
    assert agree >= 0.95  # rounding ties may differ (half-even here, half-away in the agent)


def test_predict_rejects_wrong_shape(pyz, workdir, models, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((4, 5), dtype=np.float32))
    doc, rc = run_agent(pyz, "predict", "--workdir", workdir, "--model", models["fp32"], "--inputs", tmp_path / "bad.npy")
    assert rc == 2 and doc["kind"] == "bad_input"


# ------------------------------------------------------------------------------------------------ stop paths (issue 11)


@pytest.fixture(scope="module")
def spin_tflite(tmp_path_factory):
    """A valid model whose WHILE loop never ends on zeros."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def spin(x):
        _, y = tf.while_loop(lambda i, x: tf.reduce_sum(x) > -1.0, lambda i, x: (i + 1.0, x + 1.0), [tf.constant(0.0), x])
        return y

    p = tmp_path_factory.mktemp("spin") / "spin.tflite"
    p.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([spin.get_concrete_function()], spin).convert())
    return p


def _pyz_pids(workdir) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(a.endswith(b".pyz") for a in argv) and str(workdir).encode() in argv:
            out.append(int(p.name))
    return out


def test_load_check_that_never_returns_is_killed_and_lock_is_not_inherited(pyz, workdir, spin_tflite):
    t = time.monotonic()
    doc, rc = install(pyz, workdir, "m", spin_tflite, "--load-timeout", "2", "--lock-timeout", "0")
    assert rc == 4 and doc["kind"] == "load_timeout" and doc["load_timeout"] == 2, doc
    assert time.monotonic() - t < 30
    assert _pyz_pids(workdir) == []  # the forked check went with its process group
    assert pointers(workdir, "m") == (None, None)
    assert (workdir / "lock").read_text() == ""  # released, not left to a child


def test_agent_killed_during_load_check_leaves_no_child_holding_the_lock(pyz, workdir, spin_tflite, models):
    part = upload(workdir, spin_tflite)
    argv = [sys.executable, str(pyz), "install", "--workdir", str(workdir), "--name", "m", "--blob", str(part)]
    proc = subprocess.Popen(argv + ["--sha256", sha(spin_tflite)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_pyz_pids(workdir)) < 2 and time.monotonic() < deadline:  # the agent and its forked check
        time.sleep(0.05)
    assert len(_pyz_pids(workdir)) == 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while _pyz_pids(workdir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pyz_pids(workdir) == []
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], *FAST, "--lock-timeout", "0")
    assert rc == 0, doc


def test_deadline_stops_a_long_bench_and_frees_the_lock(pyz, workdir, models):
    t = time.monotonic()
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--model", models["fp32"], "--min-seconds", "120", "--deadline", "2")
    assert rc == 11 and doc["kind"] == "deadline" and "--deadline of 2 s" in doc["error"], doc
    assert time.monotonic() - t < 20
    assert (workdir / "lock").read_text() == ""


def test_stdin_closing_stops_a_watching_agent(pyz, workdir, models):
    argv = [sys.executable, str(pyz), "bench", "--workdir", str(workdir), "--model", str(models["fp32"])]
    proc = subprocess.Popen(
        argv + ["--min-seconds", "120", "--watch-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    time.sleep(3)
    assert proc.poll() is None
    t = time.monotonic()
    proc.stdin.close()
    proc.wait(15)
    out, err = proc.stdout.read(), proc.stderr.read()
    assert time.monotonic() - t < 10
    doc = parse_agent_output(out.decode(), err.decode(), proc.returncode)
    assert proc.returncode == 130 and doc["kind"] == "interrupted" and "host went away" in doc["error"], doc


def test_rollback_from_is_a_compare_and_swap(pyz, workdir, models):
    h32, h8 = sha(models["fp32"]), sha(models["int8"])
    install(pyz, workdir, "m", models["fp32"])
    install(pyz, workdir, "m", models["int8"])
    doc, rc = run_agent(pyz, "rollback", "--workdir", workdir, "--name", "m", "--from", h8)
    assert rc == 0 and doc["changed"] and pointers(workdir, "m") == (h32, h8)
    doc, rc = run_agent(pyz, "rollback", "--workdir", workdir, "--name", "m", "--from", h8)
    assert rc == 0 and doc["changed"] is False and pointers(workdir, "m") == (h32, h8)
    doc, rc = run_agent(pyz, "rollback", "--workdir", workdir, "--name", "m", "--from", "1" * 64)
    assert rc == 10 and doc["kind"] == "not_current" and doc["current"] == h32 and pointers(workdir, "m") == (h32, h8)


def test_a_rollback_is_not_undone_by_a_plain_rollback(pyz, workdir, models):
    """A retried plain rollback is refused (exit 10, kind rolled_back) until --undo-rollback; status says why; every
    success carries the board's clock around the work."""
    h32, h8 = sha(models["fp32"]), sha(models["int8"])
    install(pyz, workdir, "m", models["fp32"])
    install(pyz, workdir, "m", models["int8"])
    doc, rc = run_agent(pyz, "rollback", "--workdir", workdir, "--name", "m")
    assert rc == 0 and doc["changed"] and pointers(workdir, "m") == (h32, h8)
    assert doc["clock"]["start"] <= doc["clock"]["end"] and abs(doc["clock"]["end"] - time.time()) < 60
    doc, rc = run_agent(pyz, "status", "--workdir", workdir, "--name", "m")
    assert doc["rolled_back"]["restored"] == h32 and doc["rolled_back"]["replaced"] == h8
    doc, rc = run_agent(pyz, "rollback", "--workdir", workdir, "--name", "m")
    assert rc == 10 and doc["kind"] == "rolled_back" and doc["rolled_back_from"] == h8, doc
    assert "would undo that rollback" in doc["error"] and pointers(workdir, "m") == (h32, h8)
    doc, rc = run_agent(pyz, "rollback", "--workdir", workdir, "--name", "m", "--undo-rollback")
    assert rc == 0 and doc["changed"] and pointers(workdir, "m") == (h8, h32)
    install(pyz, workdir, "m", models["fp32"])  # a deploy: the next plain rollback is an ordinary one
    doc, rc = run_agent(pyz, "status", "--workdir", workdir, "--name", "m")
    assert doc["rolled_back"] is None and not (workdir / "models" / "m" / "rollback.json").exists()
    doc, rc = run_agent(pyz, "rollback", "--workdir", workdir, "--name", "m")
    assert rc == 0 and pointers(workdir, "m") == (h8, h32)


def test_bench_and_predict_pinned_to_sha256(pyz, workdir, models):
    install(pyz, workdir, "m", models["fp32"])
    h32 = sha(models["fp32"])
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--name", "m", *FAST, "--sha256", h32)
    assert rc == 0 and doc["model"]["sha256"] == h32
    (workdir / "models" / "m" / f"{h32}.tflite").write_bytes(models["int8"].read_bytes())
    doc, rc = run_agent(pyz, "bench", "--workdir", workdir, "--name", "m", *FAST, "--sha256", h32)
    assert rc == 5 and doc["kind"] == "sha_mismatch" and doc["actual"] == sha(models["int8"]), doc
    doc, rc = run_agent(pyz, "predict", "--workdir", workdir, "--name", "m", "--inputs", models["x"], "--sha256", h32)
    assert rc == 5 and doc["kind"] == "sha_mismatch", doc
