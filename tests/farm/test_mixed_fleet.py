"""The whole fleet flow on a mixed fleet: two x86 sshd boards and the emulated Raspberry Pi.

Devices (one devices.yaml, all over real SSH):
    x1, x2       x86_64 OpenSSH servers on loopback (tests/sshfarm.py), ai-edge-litert
    rpi          the aarch64 board (tests/farm), /opt/rpi-env: tflite-runtime 2.14.0 + numpy 1.26
    rpi-litert   the same board and sshd, /opt/litert-env (ai-edge-litert), its own work dir

Everything goes through the real CLI in a subprocess: devices check, a pipeline run with deploy +
benchmark + on-board accuracy check, deploy, bench, rollback. The int8 variant uses per_channel:
false because tflite-runtime 2.14's arm64 kernels crash on TF 2.21's per-channel int8
FULLY_CONNECTED; the last tests prove a per-channel model that crashes it is refused by that board
alone, with a message naming it, while the previous model stays current and still runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeq.testing import sshfarm
from edgeq.testing.common import TINY, Result

X86 = ("x1", "x2")
ARM = ("rpi", "rpi-litert")
ALL = (*X86, *ARM)


@pytest.fixture(scope="module")
def x86farm(tmp_path_factory):
    f = sshfarm.SSHFarm.start(tmp_path_factory.mktemp("mixed-farm"), n=2)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def fleet(x86farm, aarch64_board, tmp_path_factory) -> dict:
    """devices.yaml for the four devices, the edgeq home and a CLI runner sharing it."""
    root = tmp_path_factory.mktemp("mixed")
    known = root / "known_hosts"  # one file trusting all three sshd host keys: RejectPolicy for everyone
    known.write_text(x86farm.known_hosts.read_text() + aarch64_board.host_key_line + "\n")
    b = aarch64_board
    entries = [
        x86farm.device_yaml(
            board, name, known_hosts=str(known), workdir=str(root / "boards" / name), tags=["fleet", "x86"], retries=3
        )
        for board, name in zip(x86farm.boards, X86, strict=False)
    ]
    for name, runtime in zip(ARM, ("tflite-runtime", "litert"), strict=False):
        entries.append(
            "  - "
            + json.dumps(
                {
                    "name": name,
                    "host": b.host,
                    "port": b.port,
                    "user": b.user,
                    "key_file": str(b.key_file),
                    "known_hosts": str(known),
                    "python": b.pythons[runtime],
                    "workdir": f"/root/mixed-{runtime}",
                    "tags": ["fleet", "arm"],
                    "model": "emulated Raspberry Pi (qemu-aarch64)",
                    # emulated: python + numpy + a runtime start in seconds, a loaded 2-core CI host is slower still
                    "connect_timeout": 60,
                    "command_timeout": 600,
                    "retries": 3,
                    "retry_delay": 0.5,
                }
            )
            + "\n"
        )
    devices = root / "devices.yaml"
    devices.write_text("devices:\n" + "".join(entries))
    home = root / "home"

    def cli(*args, timeout: float = 1200) -> Result:
        env = {**os.environ, "EDGEQ_HOME": str(home)}
        env.pop("EDGEQ_DEVICES", None)
        env.pop("EDGEQ_HISTORY_DB", None)
        p = subprocess.run(
            [sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True, cwd=root, timeout=timeout, env=env
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return {"devices": devices, "home": home, "root": root, "cli": cli, "board": b}


def _json(r: Result) -> dict:
    try:
        return r.json()
    except ValueError:
        raise AssertionError(f"not one JSON document on stdout (exit {r.code}):\n{r.stdout}\n{r.stderr}") from None


def _by_device(doc: dict) -> dict[str, dict]:
    return {r["device"]: r for r in doc["devices"]}


def _status(fleet: dict, device: str, name: str) -> dict:
    """What the agent on a board says about a model, through edgeq's own SSH transport."""
    from edgeq import fleet as fl
    from edgeq.fleet.board import Board, build_agent
    from edgeq.fleet.transport.factory import open_transport

    d = fl.load_inventory(fleet["devices"]).get(device)
    t = open_transport(d)
    try:
        b = Board(d, t, build_agent(fleet["root"] / "agent"))
        b.ensure_agent()
        return b.call("status", "--name", name).to_json()
    finally:
        t.close()


# --------------------------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_devices_check_mixed_fleet(fleet):
    r = fleet["cli"]("devices", "check", "fleet", "--devices", fleet["devices"], "--json")
    assert r.code == 0, (r.stdout, r.stderr)
    recs = _by_device(_json(r))
    assert set(recs) == set(ALL)
    for name, rec in recs.items():
        assert rec["reachable"] and rec["healthy"], rec
        assert rec["arch"] == ("aarch64" if name in ARM else "x86_64"), rec
    assert (recs["rpi"]["runtime"], recs["rpi"]["runtime_version"]) == ("tflite-runtime", "2.14.0")
    assert recs["rpi"]["numpy"].startswith("1.") and recs["rpi"]["python"].startswith("3.11")
    assert recs["rpi-litert"]["runtime"] == "ai-edge-litert"
    assert {recs[n]["runtime"] for n in X86} == {"ai-edge-litert"}


@pytest.fixture(scope="module")
def pipeline_run(fleet) -> dict:
    """`edgeq run` with deploy + benchmark + accuracy check on all four devices (sklearn digits, tiny MLP)."""
    doc = json.loads(json.dumps(TINY))
    doc["name"] = "mixed"
    doc["quantize"] = {"variants": [{"type": "fp32"}, {"type": "int8", "calibration_samples": 50, "per_channel": False}]}
    doc["devices"] = str(fleet["devices"])
    doc["deploy"] = {"targets": ["fleet"]}
    doc["benchmark"] = {"runs": 20, "warmup": 2, "min_seconds": 0.05, "threads": [1], "input_samples": 16, "accuracy_check": True}
    pipe = fleet["root"] / "mixed.yaml"
    pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = fleet["cli"]("run", pipe, "--json")
    assert r.code == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return _json(r)


@pytest.mark.slow
def test_pipeline_run_deploys_and_benchmarks_on_every_board(pipeline_run):
    m = pipeline_run
    assert m["status"] == "ok", m.get("status")
    for key in ("fp32", "int8"):
        dep = _by_device(m["stages"]["deploy"]["results"][key])
        assert set(dep) == set(ALL)
        assert all(d["status"] in ("ok", "changed") for d in dep.values()), dep
    rows = {(b["device"], b["variant"]): b for b in m["benchmarks"]}
    assert set(rows) == {(d, v) for d in ALL for v in ("fp32", "int8")}
    for (dev, _v), b in rows.items():
        assert b["ok"] and b["count"] >= 20, b
        assert 0 < b["latency_ms"]["p50"] <= b["latency_ms"]["p99"]
        assert b["board"]["arch"] == ("aarch64" if dev in ARM else "x86_64")
    rpi = rows[("rpi", "int8")]
    assert (rpi["runtime"]["name"], rpi["runtime"]["version"]) == ("tflite-runtime", "2.14.0")
    assert rpi["board"]["hostname"] == "raspberrypi" and rpi["board"]["numpy"].startswith("1.")
    assert rows[("rpi-litert", "int8")]["runtime"]["name"] == "ai-edge-litert"


@pytest.mark.slow
def test_on_board_accuracy_equals_validate_accuracy(pipeline_run):
    """Every board ran the whole test split; int8 integer kernels give the same argmax everywhere."""
    acc = {(a["device"], a["variant"]): a for a in pipeline_run["stages"]["benchmark_accuracy"]}
    assert set(acc) == {(d, v) for d in ALL for v in ("fp32", "int8")}
    validate_int8 = pipeline_run["variants"]["int8"]["accuracy"]
    assert validate_int8 > 0.5  # a model that learned something, so equality is not trivially 0 == 0
    for dev in ALL:
        a = acc[(dev, "int8")]
        assert a["ok"], a
        assert a["board_accuracy"] == a["validate_accuracy"] == validate_int8, a  # exact: same inputs, same model
        f = acc[(dev, "fp32")]
        assert f["ok"] and abs(f["board_accuracy"] - f["validate_accuracy"]) <= 1 / 150, f  # float: one sample at most


@pytest.mark.slow
def test_history_stores_arch_and_runtime_per_board(pipeline_run, fleet):
    from edgeq.results.db import default_db_path
    from edgeq.results.query import load, open_for_reading, resolve

    with open_for_reading(default_db_path(fleet["home"])) as h:
        run = load(h, resolve(h, pipeline_run["run_id"]), samples=True)
    assert run.status == "ok"
    rows = {(b.device, b.variant): b for b in run.benchmarks}
    assert set(rows) == {(d, v) for d in ALL for v in ("fp32", "int8")}
    for (dev, _v), b in rows.items():
        assert b.ok and b.arch == ("aarch64" if dev in ARM else "x86_64"), b
        assert len(b.samples_s) >= 20
    assert (rows[("rpi", "int8")].runtime_name, rows[("rpi", "int8")].runtime_version) == ("tflite-runtime", "2.14.0")
    assert rows[("rpi", "int8")].hostname == "raspberrypi"
    assert rows[("rpi-litert", "int8")].runtime_name == "ai-edge-litert"
    assert {rows[(d, "int8")].runtime_name for d in X86} == {"ai-edge-litert"}
    # the manifest on disk says the same
    manifest = json.loads((fleet["home"] / "runs" / pipeline_run["run_id"] / "manifest.json").read_text())
    assert {b["device"]: b["board"]["arch"] for b in manifest["benchmarks"]}["rpi"] == "aarch64"


@pytest.fixture(scope="module")
def artifacts(pipeline_run) -> dict[str, Path]:
    return {k: Path(v["artifact"]) for k, v in pipeline_run["variants"].items()}


@pytest.mark.slow
def test_deploy_bench_rollback_through_the_cli(fleet, artifacts):
    cli, dev = fleet["cli"], fleet["devices"]
    r = cli("deploy", artifacts["int8"], "--name", "clf", "-t", "fleet", "--devices", dev, "--json")
    assert r.code == 0, (r.stdout, r.stderr)
    first = _json(r)
    assert first["counts"]["changed"] == 4
    r = cli("deploy", artifacts["fp32"], "--name", "clf", "-t", "fleet", "--devices", dev, "--json")
    assert r.code == 0, (r.stdout, r.stderr)
    second = _json(r)
    assert all(d["previous"] == first["sha256"] and d["current"] == second["sha256"] for d in second["devices"])

    r = cli("rollback", "--name", "clf", "-t", "fleet", "--devices", dev, "--json")
    assert r.code == 0, (r.stdout, r.stderr)
    for d in _json(r)["devices"]:
        assert d["status"] == "changed" and d["current"] == first["sha256"] and d["previous"] == second["sha256"], d
    assert _status(fleet, "rpi", "clf")["current"] == first["sha256"]

    r = cli(
        "bench",
        artifacts["int8"],
        "--name",
        "clf",
        "-t",
        "fleet",
        "--runs",
        "20",
        "--warmup",
        "2",
        "--min-seconds",
        "0.05",
        "--devices",
        dev,
        "--json",
    )
    assert r.code == 0, (r.stdout, r.stderr)
    recs = _by_device(_json(r))
    for name, rec in recs.items():
        assert rec["status"] == "ok" and rec["deploy"] == "unchanged", rec  # the rollback left int8 current
        (res,) = rec["results"]
        assert res["ok"] and res["count"] >= 20
        assert res["raw"]["board"]["arch"] == ("aarch64" if name in ARM else "x86_64")
    assert recs["rpi"]["results"][0]["runtime"] == {"name": "tflite-runtime", "version": "2.14.0"}
    # the human table shows the board's runtime too
    r = cli("devices", "check", "rpi", "--devices", dev)
    assert r.code == 0 and "tflite-runtime 2.14.0" in r.stdout and "aarch64" in r.stdout, r.stdout


@pytest.fixture(scope="module")
def crashing_model(fleet) -> Path:
    """Input(8)->Dense(3), full-integer int8 with TF 2.21's default per-channel weights.

    tflite-runtime 2.14 on arm64 loads and allocates it, then segfaults in invoke() (a per-channel
    FULLY_CONNECTED with few output channels; the 10-class MLPs above run fine per-channel too).
    """
    from edgeq.config import VariantSpec
    from edgeq.stages.quantize import convert
    from edgeq.stages.quiet import import_tensorflow

    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(7)
    model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(3)])
    calib = np.random.default_rng(7).normal(size=(64, 8)).astype(np.float32)
    blob = convert(model, VariantSpec(type="int8", calibration_samples=64), calib)  # edgeq's own int8 path
    path = fleet["root"] / "dense3_per_channel.tflite"
    path.write_bytes(blob)
    return path


@pytest.mark.slow
def test_per_channel_model_refused_by_the_tflite_runtime_board_only(fleet, artifacts, crashing_model):
    """Deploy-time check = load + one invoke in a child: the crash fails that board, cleanly.

    The other three boards install it; rpi reports which board and why (exit 8, no traceback, no
    hang), keeps its previous model current, and that model still benchmarks.
    """
    cli, dev = fleet["cli"], fleet["devices"]
    r = cli("deploy", artifacts["int8"], "--name", "hz", "-t", "fleet", "--devices", dev, "--json")
    assert r.code == 0, (r.stdout, r.stderr)
    good = _json(r)["sha256"]

    r = cli("deploy", crashing_model, "--name", "hz", "-t", "fleet", "--devices", dev, "--json", timeout=900)
    assert r.code == 8, (r.code, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    doc = _json(r)
    recs = _by_device(doc)
    bad = recs["rpi"]
    assert bad["status"] == "failed" and bad["kind"] == "unloadable", bad
    assert bad["error"].startswith("rpi: ") and "tflite-runtime 2.14.0" in bad["error"] and "SIGSEGV" in bad["error"], bad
    assert "per_channel: false" in bad["hint"]
    assert bad["crash"]["name"] == "SIGSEGV" and bad["current"] == good
    assert all(recs[n]["status"] == "changed" and recs[n]["current"] == doc["sha256"] for n in (*X86, "rpi-litert"))

    st = _status(fleet, "rpi", "hz")
    assert st["current"] == good  # nothing half-installed became active
    r = cli(
        "bench",
        artifacts["int8"],
        "--name",
        "hz",
        "-t",
        "rpi",
        "--runs",
        "10",
        "--warmup",
        "1",
        "--min-seconds",
        "0",
        "--devices",
        dev,
        "--json",
    )
    assert r.code == 0, (r.stdout, r.stderr)
    assert _by_device(_json(r))["rpi"]["deploy"] == "unchanged"  # the previous model still loads and runs
    # human rendering names the board and the way out
    r = cli("deploy", crashing_model, "--name", "hz", "-t", "rpi", "--devices", dev, timeout=900)
    assert r.code == 8 and "rpi" in r.stderr and "per_channel: false" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def dynamic_model(fleet) -> Path:
    """Input(64)->Dense(32), dynamic-range (weights-only int8): FULLY_CONNECTED op version 12 in TF 2.21.

    (Below 1,024 weights the converter leaves a tensor float, so a tiny Dense would not be dynamic-range.)
    """
    from edgeq.config import VariantSpec
    from edgeq.stages.quantize import convert
    from edgeq.stages.quiet import import_tensorflow

    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.Input((64,)), tf.keras.layers.Dense(32)])
    blob = convert(model, VariantSpec(type="dynamic"), None)
    path = fleet["root"] / "dense32_dynamic.tflite"
    path.write_bytes(blob)
    return path


@pytest.mark.slow
def test_dynamic_range_model_refused_with_op_and_runtime_named(fleet, artifacts, dynamic_model):
    """TF 2.21's dynamic-range FULLY_CONNECTED (op version 12) does not load on tflite-runtime 2.14.

    `edgeq deploy` to the whole fleet: rpi refuses it at install time naming the op and its runtime,
    keeps its previous model current (and runnable); boards with ai-edge-litert install it.
    """
    cli, dev = fleet["cli"], fleet["devices"]
    r = cli("deploy", artifacts["int8"], "--name", "dyn", "-t", "fleet", "--devices", dev, "--json")
    assert r.code == 0, (r.stdout, r.stderr)
    good = _json(r)["sha256"]
    r = cli("deploy", dynamic_model, "--name", "dyn", "-t", "fleet", "--devices", dev, "--json", timeout=900)
    assert r.code == 8 and "Traceback" not in r.stderr, (r.code, r.stdout, r.stderr)
    doc = _json(r)
    recs = _by_device(doc)
    bad = recs["rpi"]
    assert bad["status"] == "failed" and bad["kind"] == "unloadable", bad
    assert "FULLY_CONNECTED" in bad["error"] and "tflite-runtime 2.14.0" in bad["error"], bad["error"]
    assert bad["current"] == good and _status(fleet, "rpi", "dyn")["current"] == good
    assert all(recs[n]["status"] == "changed" for n in (*X86, "rpi-litert")), recs
    r = cli(
        "bench",
        artifacts["int8"],
        "--name",
        "dyn",
        "-t",
        "rpi",
        "--runs",
        "5",
        "--warmup",
        "1",
        "--min-seconds",
        "0",
        "--devices",
        dev,
        "--json",
    )
    assert r.code == 0 and _by_device(_json(r))["rpi"]["deploy"] == "unchanged", (r.stdout, r.stderr)


@pytest.mark.slow
def test_runtime_crash_in_bench_is_a_board_failure(fleet, crashing_model):
    """A model benchmarked by path (no install check) kills the agent in invoke(): reported, not hung."""
    from edgeq import fleet as fl
    from edgeq.fleet.board import Board, build_agent
    from edgeq.fleet.transport.base import BoardError
    from edgeq.fleet.transport.factory import open_transport

    d = fl.load_inventory(fleet["devices"]).get("rpi")
    t = open_transport(d)
    try:
        b = Board(d, t, build_agent(fleet["root"] / "agent"))
        b.ensure_agent()
        remote = b.upload_tmp(crashing_model, ".tflite")
        with pytest.raises(BoardError) as ei:
            b.call("bench", "--model", remote, "--runs", "5", "--min-seconds", "0", timeout=300)
        t.remove(remote)
    finally:
        t.close()
    e = ei.value
    assert e.kind == "runtime_crash" and e.device == "rpi", (e.kind, e.message)
    assert "segmentation fault" in e.message and "invoke()" in e.message, e.message
    assert "per_channel: false" in e.hint


# ------------------------------------------------------------------ crash handling, fast (this machine only)


class _SegfaultingInterpreter:
    """Loads and allocates like a real interpreter, then dies in invoke() as tflite-runtime 2.14 does on arm64."""

    def __init__(self, model_path, num_threads=1, **kw):
        self.model_path = model_path

    def allocate_tensors(self):
        pass

    def get_input_details(self):
        return [{"index": 0, "shape": np.array([1, 8]), "dtype": np.int8}]

    def set_tensor(self, index, value):
        pass

    def invoke(self):
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)


def test_install_check_turns_a_crash_in_invoke_into_unloadable(tmp_path):
    """The forked load check survives the runtime crashing; the agent reports it and install switches nothing."""
    from edgeq.agent import boardfs
    from edgeq.agent.codes import AgentFailure
    from edgeq.agent.loadcheck import check_runs
    from edgeq.agent.runtimes.interpreter import InterpreterRuntime

    rt = InterpreterRuntime("tflite-runtime", "2.14.0", _SegfaultingInterpreter, None, None)
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0\0\0\0TFL3" + bytes(64))
    with pytest.raises(AgentFailure) as ei:
        check_runs(rt, model)
    f = ei.value
    assert f.kind == "unloadable" and f.extra["crash"]["name"] == "SIGSEGV", f.to_doc()
    assert "tflite-runtime 2.14.0" in f.message and "crashed (SIGSEGV)" in f.message

    import hashlib

    store = boardfs.Store(tmp_path / "w")
    store.ensure()
    part = store.tmp / "x.part"
    part.write_bytes(model.read_bytes())
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    with pytest.raises(AgentFailure):
        store.install("m", sha, str(part), lambda path: check_runs(rt, path))
    assert store.pointer("m", "current") is None and not part.exists()  # nothing became active, no .part left


def test_a_real_segfault_on_the_board_side_is_named_runtime_crash(tmp_path):
    """What a process with faulthandler (as the agent enables it) leaves on stderr when it segfaults."""
    from edgeq.fleet.board import AgentBundle, Board
    from edgeq.fleet.inventory.devices import load_inventory
    from edgeq.fleet.transport.base import BoardError

    code = (
        "import faulthandler, ctypes, sys\nfaulthandler.enable(file=sys.stderr)\n"
        "def invoke():\n    ctypes.string_at(0)\ninvoke()\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == -11, p
    dev = tmp_path / "devices.yaml"
    dev.write_text("devices:\n  - {name: pi, host: h, workdir: /w}\n")
    b = Board(load_inventory(dev).devices[0], object(), AgentBundle(tmp_path / "edgeq-agent-0123456789ab.pyz", "0" * 64))
    for rc in (p.returncode, 139, -1):  # local subprocess, shell-style, and paramiko without exit-status
        with pytest.raises(BoardError) as ei:
            b.interpret("bench", rc, "", p.stderr)
        e = ei.value
        assert e.kind == "runtime_crash" and e.message.startswith("pi: agent bench crashed (segmentation fault)"), e.message
        assert "in string_at()" in e.message and "per_channel: false" in e.hint  # the innermost Python frame
    with pytest.raises(BoardError) as ei:  # a plain SIGKILL (no faulthandler text) stays agent_killed
        b.interpret("bench", -9, "", "")
    assert ei.value.kind == "agent_killed"
