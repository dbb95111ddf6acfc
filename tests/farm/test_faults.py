"""Fault injection with real processes: sshd killed mid-upload and mid-benchmark, a full tmpfs work dir,
a slow and lossy link in a network namespace, the agent killed mid-run, a stale lock left by a dead process.

Every test checks the same promises: a clear error naming the board, the other boards finish, nothing
half-written becomes active, the previously deployed model still loads (checked with the board's own agent
and a real TFLite interpreter), and the results of the boards that succeeded are kept. Each prints a
`FAULT ...` line with the two numbers the issue asks for (both must be 0).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from edgeq import fleet
from edgeq.errors import ExitCode
from edgeq.testing import faultkit as fk
from edgeq.testing.fleet import board_entry, by_device, run_json, write_devices


@pytest.fixture(scope="module", name="big_models")
def big_models_fixture(tmp_path_factory) -> dict[str, Path]:
    """Loadable models large enough that an upload takes a while: 'big' (~16 MB) and 'medium' (~1 MB)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    d = tmp_path_factory.mktemp("bigmodels")
    out = {}
    for name, (n_in, n_hidden) in {"big": (1024, 4096), "medium": (256, 1024)}.items():
        tf.keras.utils.set_random_seed(7)
        inp = tf.keras.Input((n_in,))
        x = tf.keras.layers.Dense(n_hidden)(inp)
        model = tf.keras.Model(inp, tf.keras.layers.Dense(3)(x))
        out[name] = d / f"{name}.tflite"
        out[name].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return out


def _deploy_ok(dev: Path, art: Path, targets: list[str], name: str = "m") -> dict:
    doc = fleet.deploy(fleet.load_inventory(dev), targets, art, name=name).to_json()
    assert doc["ok"], doc
    return doc


def _farm3(farm, tmp_path, *names, **over) -> Path:
    return write_devices(tmp_path, *(board_entry(farm, b, tmp_path, n, **over) for b, n in zip(farm.boards, names, strict=False)))


def _w(tmp_path: Path, name: str) -> Path:
    return tmp_path / "boards" / name


# --------------------------------------------------------------------------- sshd killed mid-upload


def test_sshd_killed_during_upload(farm, tmp_path, tflite_models, big_models):
    """Proves: when a board's whole sshd (listener and the session doing SFTP) dies while a 16 MB artifact is
    being written, deploy names that board (connection_dropped), the two other boards install the new model,
    the victim's `current` still points at the old model, which loads and benches with its own agent, and no
    half-written file sits next to it; after sshd comes back the same deploy succeeds."""
    victim = farm.boards[0]
    dev = _farm3(farm, tmp_path, "v", "ok1", "ok2")
    old = _deploy_ok(dev, tflite_models["dense_a"], ["all"])["sha256"]
    killed: list[int] = []

    def progress(ev):  # runs in the victim's worker thread, inside paramiko's SFTP write loop
        if ev["event"] == "upload" and ev["device"] == "v" and ev["bytes"] >= ev["total"] // 4 and not killed:
            killed.append(fk.kill_sshd(victim))

    try:
        doc = fleet.deploy(fleet.load_inventory(dev), ["all"], big_models["big"], name="m", progress=progress).to_json()
        assert killed and killed[0] >= 2, "the listener and the SFTP session were killed"
        recs = by_device(doc)
        v = recs["v"]
        assert v["status"] == "failed" and v["kind"] == "connection_dropped", v
        assert v["error"].startswith("v: ") and "dropped" in v["error"] and v["current"] == old
        new = doc["sha256"]
        assert [recs[n]["status"] for n in ("ok1", "ok2")] == ["changed", "changed"]

        states = {n: fk.board_state(_w(tmp_path, n), "m") for n in ("v", "ok1", "ok2")}
        assert states["v"].current == old and states["v"].active_ok and not states["v"].junk, states["v"]
        for n in ("ok1", "ok2"):
            assert states[n].current == new and states[n].previous == old and states[n].active_ok
        half = sum(fk.half_written_or_unloadable(s) for s in states.values())
        lost = sum(1 for n in ("ok1", "ok2") if states[n].current != new)
        fk.report("sshd killed during upload", half, lost)
        assert half == 0 and lost == 0
    finally:
        fk.restart_sshd(victim)
    # the .part the dead session left in W/tmp is never trusted: the retry uploads afresh and installs
    doc = fleet.deploy(fleet.load_inventory(dev), ["v"], big_models["big"], name="m").to_json()
    assert doc["ok"] and by_device(doc)["v"]["action"] == "uploaded and installed"
    assert fk.board_state(_w(tmp_path, "v"), "m").current == doc["sha256"]


# --------------------------------------------------------------------------- sshd killed mid-benchmark (pipeline)


def _watch_and_kill(match: callable, kill: callable, timeout: float = 120.0, delay: float = 0.3) -> list:
    """A thread that waits for a process (match() -> pids), waits `delay`, then calls kill(pids)."""
    fired: list = []

    def loop():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not fired:
            pids = match()
            if pids:
                time.sleep(delay)
                fired.append((pids, kill(pids)))
                return
            time.sleep(0.02)

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    return [th, fired]


@pytest.mark.slow
def test_sshd_killed_during_pipeline_benchmark(farm, tmp_path, edgeq, write_pipeline, home):
    """Proves: in `edgeq run` (train -> quantize -> validate -> deploy -> benchmark on 3 sshd boards), killing a
    board's sshd while its agent is benchmarking fails that board's benchmarks with errors naming it (exit 8),
    while every benchmark of the two other boards is stored in the SQLite history with its raw samples; the
    victim's active models are whole and still load and bench with its agent."""
    victim = farm.boards[1]
    dev = _farm3(farm, tmp_path, "p1", "pv", "p3", lock_timeout=120)
    pipe = write_pipeline({
        "devices": str(dev),
        "deploy": {"targets": ["farm"]},
        "benchmark": {"runs": 20, "warmup": 2, "min_seconds": 1.5, "threads": [1], "inputs": "random"},
    })  # fmt: skip
    vw = _w(tmp_path, "pv")
    th, fired = _watch_and_kill(lambda: fk.find_agent_pids("bench", vw), lambda pids: fk.kill_sshd(victim))
    db = tmp_path / "history.db"
    try:
        r = edgeq("run", pipe, "--json", env={"EDGEQ_HISTORY_DB": str(db)}, timeout=900)
        th.join(5)
        assert fired, "the victim's benchmark never started"
    finally:
        fk.restart_sshd(victim)
    assert r.code == ExitCode.FLEET, (r.code, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "pv" in r.stderr
    doc = json.loads(r.stdout)
    run_id = doc["result"]["run_id"] if "result" in doc else doc["run_id"]
    variants = ["fp32", "int8"]

    from edgeq.results import open_for_reading, query

    with open_for_reading(db) as h:
        rows = query.benchmarks(h, run_id, samples=True)
    good = [b for b in rows if b.device in ("p1", "p3") and b.ok]
    bad = [b for b in rows if b.device == "pv"]
    expected = {(d, v) for d in ("p1", "p3") for v in variants}
    assert {(b.device, b.variant) for b in good} == expected
    assert all(b.count >= 20 and len(b.samples_s) > 0 for b in good)
    assert bad and not any(b.ok for b in bad) and all(b.error and b.error.startswith("pv: ") for b in bad), bad

    half = 0
    for d in ("p1", "pv", "p3"):
        for mdir in sorted((_w(tmp_path, d) / "models").iterdir()):
            st = fk.board_state(_w(tmp_path, d), mdir.name)
            assert st.current and st.active_ok, (d, mdir.name, st)
            half += fk.half_written_or_unloadable(st)
    lost = len(expected) - len({(b.device, b.variant) for b in good})
    fk.report("sshd killed during a pipeline benchmark", half, lost)
    assert half == 0 and lost == 0


def test_sshd_killed_during_bench_then_orphaned_agent_releases_the_lock(farm, tmp_path, tflite_models):
    """Proves: `edgeq bench --json` with one board's sshd killed mid-measurement names that board, returns the
    other boards' results; the victim's agent, orphaned by its dead session, keeps W/lock only until it ends,
    and the next bench on the restarted board gets the lock and measures."""
    victim = farm.boards[2]
    dev = _farm3(farm, tmp_path, "k1", "k2", "kv")
    vw = _w(tmp_path, "kv")
    _deploy_ok(dev, tflite_models["dense_a"], ["all"], name="dense_a")
    th, fired = _watch_and_kill(lambda: fk.find_agent_pids("bench", vw), lambda pids: fk.kill_sshd(victim))
    try:
        code, doc, err = run_json(
            "bench", tflite_models["dense_a"], "-t", "all", "--runs", "10", "--min-seconds", "2", "--devices", dev
        )
        th.join(5)
        assert fired
        orphans = fired[0][0]
    finally:
        fk.restart_sshd(victim)
    assert code == ExitCode.FLEET and "kv" in err
    recs = by_device(doc)
    assert recs["kv"]["status"] == "failed" and recs["kv"]["kind"] == "connection_dropped", recs["kv"]
    for n in ("k1", "k2"):
        assert recs[n]["status"] == "ok" and recs[n]["results"][0]["ok"] and recs[n]["results"][0]["count"] >= 10
    fk.wait_gone(orphans, 60)  # its stdout is gone; it finishes (or dies on the broken pipe) and the kernel drops the flock
    code, doc, _ = run_json("bench", tflite_models["dense_a"], "-t", "kv", "--runs", "5", "--min-seconds", "0", "--devices", dev)
    assert code == 0 and by_device(doc)["kv"]["results"][0]["ok"], doc
    st = fk.board_state(vw, "dense_a")
    half = fk.half_written_or_unloadable(st)
    lost = sum(1 for n in ("k1", "k2") if not recs[n]["results"][0]["ok"])
    fk.report("sshd killed during a benchmark", half, lost)
    assert half == 0 and lost == 0


# --------------------------------------------------------------------------- full disk


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True, text=True
    )  # noqa: S603,S607
    if r.returncode != 0:
        pytest.fail(f"cannot mount a {size} tmpfs at {path} (tests run as root): {r.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)  # noqa: S603,S607


def _fill(path: Path, leave: int = 0) -> int:
    """Write a filler file until only `leave` bytes are free (0: until ENOSPC). Returns bytes written."""
    import shutil

    n = 0
    with open(path / "filler.bin", "wb", buffering=0) as f:  # unbuffered: ENOSPC surfaces in write, not close
        while True:
            free = shutil.disk_usage(path).free
            chunk = min(64 << 10, free - leave) if leave else 4096
            if chunk <= 0:
                break
            try:
                f.write(b"\0" * chunk)
                f.flush()
            except OSError:
                break
            n += chunk
    return n


def test_tiny_full_tmpfs_workdir(farm, tmp_path, tflite_models):
    """Proves: a board whose work dir is a 64 KiB tmpfs that is already full fails with an error naming it and
    pointing at disk space, the two other boards deploy, and nothing is left on the tiny board: no active model,
    no .part upload."""
    mnt = tmp_path / "tiny"
    _mount_tmpfs(mnt, "64k")
    try:
        _fill(mnt)
        dev = write_devices(
            tmp_path,
            board_entry(farm, farm.boards[0], tmp_path, "tiny", workdir=str(mnt)),
            board_entry(farm, farm.boards[1], tmp_path, "t2"),
            board_entry(farm, farm.boards[2], tmp_path, "t3"),
        )
        code, doc, err = run_json("deploy", tflite_models["dense_a"], "-t", "all", "--name", "m", "--devices", dev)
        assert code == ExitCode.FLEET and "tiny" in err
        recs = by_device(doc)
        t = recs["tiny"]
        assert t["status"] == "failed" and t["error"].startswith("tiny: "), t
        assert "disk" in (t["error"] + " " + (t["hint"] or "")).lower(), t
        assert recs["t2"]["status"] == recs["t3"]["status"] == "changed"
        assert not list(mnt.rglob("*.part")) and not (mnt / "models" / "m" / "current").exists()
        states = [fk.board_state(_w(tmp_path, n), "m") for n in ("t2", "t3")]
        assert all(s.current == doc["sha256"] and s.active_ok for s in states)
        lost = sum(1 for s in states if s.current != doc["sha256"])
        fk.report("tiny full tmpfs work dir", 0, lost)
        assert lost == 0
    finally:
        _umount(mnt)


def test_disk_fills_up_during_upload(farm, tmp_path, tflite_models, big_models):
    """Proves: when the board's disk fills up after the free-space check but while the model is being written
    (another process takes the space), the upload fails with an error naming the board and its disk, the .part
    is removed, the previously deployed model stays current and still loads; the other board deploys."""
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "8m")
    try:
        dev = write_devices(
            tmp_path,
            board_entry(farm, farm.boards[0], tmp_path, "small", workdir=str(mnt)),
            board_entry(farm, farm.boards[1], tmp_path, "roomy"),
        )
        old = _deploy_ok(dev, tflite_models["dense_a"], ["all"])["sha256"]
        filled = []

        def progress(ev):  # the free-space check has passed; now a log file eats the disk
            if ev["event"] == "upload" and ev["device"] == "small" and ev["bytes"] == 0 and not filled:
                filled.append(_fill(mnt, leave=200 << 10))

        doc = fleet.deploy(fleet.load_inventory(dev), ["all"], big_models["medium"], name="m", progress=progress).to_json()
        assert filled
        recs = by_device(doc)
        s = recs["small"]
        assert s["status"] == "failed" and s["error"].startswith("small: ") and s["current"] == old, s
        assert "disk" in (s["error"] + " " + (s["hint"] or "")).lower(), s
        assert recs["roomy"]["status"] == "changed"
        (mnt / "filler.bin").unlink()
        st = fk.board_state(mnt, "m")
        assert st.current == old and st.active_ok and not st.parts and not st.junk, st
        roomy = fk.board_state(_w(tmp_path, "roomy"), "m")
        assert roomy.current == doc["sha256"] and roomy.active_ok
        half = fk.half_written_or_unloadable(st) + fk.half_written_or_unloadable(roomy)
        lost = int(roomy.current != doc["sha256"])
        fk.report("disk full during upload", half, lost)
        assert half == 0 and lost == 0
    finally:
        _umount(mnt)


# --------------------------------------------------------------------------- slow and lossy link


@pytest.fixture(name="netboard")
def netboard_fixture(farm, tmp_path):
    why = fk.netns_available()
    if why:
        pytest.fail(f"a network namespace board cannot be built here: {why}")
    b = fk.NetnsBoard.start(farm, tmp_path / "netboard", rate="4mbit", loss_pct=5)
    try:
        yield b
    finally:
        b.stop()


def _netboard_entry(farm, nb: fk.NetnsBoard, tmp_path: Path, **over) -> str:
    kh = tmp_path / "kh_net"
    kh.write_text(Path(str(farm.known_hosts)).read_text() + nb.known_hosts_line + "\n")
    return farm.device_yaml(
        farm.boards[0], "slow", host=nb.addr, port=nb.port, workdir=str(nb.workdir), known_hosts=str(kh), **over
    )


@pytest.mark.slow
def test_slow_lossy_link_then_dead_link(farm, tmp_path, tflite_models, big_models, netboard):
    """Proves, over a real link (veth into a network namespace, 4 Mbit/s both ways via tbf, 5% of packets dropped
    both ways via nftables; netem is not built into this kernel): deploy and bench of a 1 MB model still complete
    on the slow board, just slower; when the link then dies during a benchmark (100% loss), that board fails with
    a command timeout naming it while the loopback boards return their results; once the link is back the board's
    model is intact, loads, and benches again over SSH."""
    kh = tmp_path / "kh_net"
    dev = write_devices(
        tmp_path,
        _netboard_entry(farm, netboard, tmp_path, command_timeout=8, connect_timeout=15, lock_timeout=120),
        board_entry(farm, farm.boards[1], tmp_path, "fast1", known_hosts=str(kh)),
        board_entry(farm, farm.boards[2], tmp_path, "fast2", known_hosts=str(kh)),
    )
    inv = fleet.load_inventory(dev)
    doc = fleet.deploy(inv, ["all"], big_models["medium"], name="m").to_json()
    assert doc["ok"], doc
    recs = by_device(doc)
    size_mb = big_models["medium"].stat().st_size / 1e6
    # 4 Mbit/s is 0.5 MB/s: the shaped board needs seconds where loopback needs milliseconds
    assert recs["slow"]["seconds"] > size_mb / 0.5 * 0.8 > recs["fast1"]["seconds"], (recs["slow"]["seconds"], size_mb)
    print(
        f"LINK deploy of {size_mb:.2f} MB + agent: shaped board {recs['slow']['seconds']:.2f}s, "
        f"loopback board {recs['fast1']['seconds']:.2f}s"
    )
    good = fleet.bench(inv, ["all"], big_models["medium"], name="m", runs=5, min_seconds=0, sessions=1).to_json()
    assert good["ok"], good

    th, fired = _watch_and_kill(
        lambda: fk.find_agent_pids("bench", netboard.workdir), lambda pids: netboard.set_loss(100), delay=0.2
    )
    t0 = time.monotonic()
    doc = fleet.bench(inv, ["all"], big_models["medium"], name="m", runs=10, min_seconds=3, sessions=1).to_json()
    th.join(5)
    assert fired
    recs = by_device(doc)
    s = recs["slow"]
    assert s["status"] == "failed" and s["kind"] in ("command_timeout", "connection_dropped"), s
    assert s["error"].startswith("slow: ") and time.monotonic() - t0 < 60
    for n in ("fast1", "fast2"):
        assert recs[n]["status"] == "ok" and recs[n]["results"][0]["ok"] and recs[n]["results"][0]["count"] >= 10

    netboard.set_loss(0)
    st = fk.board_state(netboard.workdir, "m")
    assert st.current == doc["sha256"] and st.active_ok and not st.junk, st
    again = fleet.bench(inv, ["slow"], big_models["medium"], name="m", runs=5, min_seconds=0, sessions=1).to_json()
    assert again["ok"] and again["devices"][0]["deploy"] == "unchanged", again
    half = fk.half_written_or_unloadable(st)
    lost = sum(1 for n in ("fast1", "fast2") if not recs[n]["results"][0]["ok"])
    fk.report("slow/lossy link, then dead link during a benchmark", half, lost)
    assert half == 0 and lost == 0


def test_unreachable_through_dead_link_is_named_quickly(farm, tmp_path, tflite_models, netboard):
    """Proves: a board behind a link that drops every packet is reported unreachable (timeout) by name within its
    connect timeout and retries, and does not hold up the other board."""
    netboard.set_loss(100)
    kh = tmp_path / "kh_net"
    dev = write_devices(
        tmp_path,
        _netboard_entry(farm, netboard, tmp_path, connect_timeout=1, retries=2, retry_delay=0.1),
        board_entry(farm, farm.boards[1], tmp_path, "fast", known_hosts=str(kh)),
    )
    t0 = time.monotonic()
    code, doc, err = run_json("deploy", tflite_models["dense_a"], "-t", "all", "--devices", dev)
    assert time.monotonic() - t0 < 20
    recs = by_device(doc)
    assert code == ExitCode.FLEET and "slow" in err
    assert recs["slow"]["status"] == "unreachable" and recs["slow"]["kind"] == "timeout", recs["slow"]
    assert recs["fast"]["status"] == "changed"


# --------------------------------------------------------------------------- agent killed


def kill(pids: list[int]) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:  # it finished first: the race the test is about
            pass


def test_agent_killed_mid_bench_other_boards_finish_lock_released(farm, tmp_path, tflite_models):
    """Proves: SIGKILL of one board's agent in the middle of its timed runs fails only that board (agent_killed,
    named), the other boards' results are in --json, the kernel released the dead agent's W/lock (a bench with
    lock_timeout 0 gets it at once) and the active model still loads and benches."""
    dev = _farm3(farm, tmp_path, "a1", "av", "a3", lock_timeout=0)
    vw = _w(tmp_path, "av")
    _deploy_ok(dev, tflite_models["dense_b"], ["all"], name="dense_b")

    def measuring():  # the agent holds W/lock: it is past start-up and inside the measurement
        pids = fk.find_agent_pids("bench", vw)
        try:
            holder = json.loads((vw / "lock").read_text() or "{}").get("pid")
        except (OSError, ValueError):
            return []
        return [holder] if holder in pids else []

    th, fired = _watch_and_kill(measuring, kill, delay=0.3)
    code, doc, err = run_json(
        "bench", tflite_models["dense_b"], "-t", "all", "--runs", "10", "--min-seconds", "2", "--sessions", "1", "--devices", dev
    )  # one session: a later session would take the lock and overwrite the dead agent's holder record
    th.join(5)
    assert fired and code == ExitCode.FLEET and "av" in err
    recs = by_device(doc)
    assert recs["av"]["kind"] == "agent_killed" and recs["av"]["error"].startswith("av: "), recs["av"]
    for n in ("a1", "a3"):
        assert recs[n]["status"] == "ok" and recs[n]["results"][0]["count"] >= 10
    lock = json.loads((vw / "lock").read_text() or "{}")
    assert lock.get("pid") in fired[0][0]  # the dead agent's holder record is still in the file...
    code, doc, _ = run_json("bench", tflite_models["dense_b"], "-t", "av", "--runs", "3", "--min-seconds", "0", "--devices", dev)
    assert code == 0, doc  # ...but flock died with it: lock_timeout 0 is enough
    st = fk.board_state(vw, "dense_b")
    half = fk.half_written_or_unloadable(st)
    lost = sum(1 for n in ("a1", "a3") if not recs[n]["results"][0]["ok"])
    fk.report("agent killed mid-benchmark", half, lost)
    assert half == 0 and lost == 0


def test_agent_killed_in_one_of_three_sessions_fails_the_board_and_keeps_the_rest(farm, tmp_path, tflite_models):
    """Proves: with 3 sessions, SIGKILL of the first session's agent fails that board (agent_killed, exit 8: a
    crash is never an exit 0) while the two sessions measured after it stay in its result."""
    dev = _farm3(farm, tmp_path, "s1", "sv")
    vw = _w(tmp_path, "sv")
    _deploy_ok(dev, tflite_models["dense_b"], ["all"], name="dense_b")
    th, fired = _watch_and_kill(lambda: fk.find_agent_pids("bench", vw)[:1], kill, delay=0.3)
    code, doc, err = run_json(
        "bench",
        tflite_models["dense_b"],
        "-t",
        "all",
        "--runs",
        "30",
        "--min-seconds",
        "1.5",
        "--sessions",
        "3",
        "--devices",
        dev,
    )
    th.join(5)
    assert fired and code == ExitCode.FLEET and "sv" in err, err
    recs = by_device(doc)
    sv = recs["sv"]
    assert sv["status"] == "failed" and sv["kind"] == "agent_killed" and sv["error"].startswith("sv: "), sv
    (run,) = sv["results"]
    assert [s["session"] for s in run["sessions"]] == [2, 3] and run["count"] > 0, run
    assert recs["s1"]["status"] == "ok" and len(recs["s1"]["results"][0]["sessions"]) == 3


def test_agent_killed_at_random_points_of_install(farm, tmp_path, tflite_models, big_models):
    """Proves crash consistency of install: deploying alternately two models while SIGKILLing the board's install
    agent at a random moment (startup, hashing 16 MB, load check, pointer switch) always leaves `current` at the
    old or the new version, whole and loadable, with no temp files beside it; a killed install is reported as
    agent_killed naming the board and the other board is unaffected."""
    dev = _farm3(farm, tmp_path, "iv", "i2")
    vw = _w(tmp_path, "iv")
    arts = [tflite_models["dense_a"], big_models["big"]]
    _deploy_ok(dev, arts[0], ["all"])
    inv = fleet.load_inventory(dev)
    rng = random.Random(4)
    kills = half = lost = 0
    for i in range(8):
        before = fk.board_state(vw, "m", bench=False).current
        art = arts[1] if before == fk.sha256_of(arts[0]) else arts[0]  # always a real switch

        # short delays land in start-up or hashing, long ones in the load check or the switch (or after it)
        delay = rng.uniform(0, 0.3) if i % 2 else rng.uniform(0.3, 1.5)
        th, _ = _watch_and_kill(lambda: fk.find_agent_pids("install", vw), kill, delay=delay)
        doc = fleet.deploy(inv, ["all"], art, name="m").to_json()
        th.join(5)
        recs = by_device(doc)
        v = recs["iv"]
        st = fk.board_state(vw, "m", bench=(i % 2 == 0))
        if v["status"] == "failed":
            kills += 1
            assert v["kind"] == "agent_killed" and v["error"].startswith("iv: ") and st.current == before, (v, st)
        else:
            assert v["status"] == "changed" and st.current == doc["sha256"]
        assert st.active_ok and not st.junk and not st.parts, st
        assert recs["i2"]["status"] in ("ok", "changed")  # the untouched board follows every deploy
        half += fk.half_written_or_unloadable(st)
        lost += int(fk.board_state(_w(tmp_path, "i2"), "m", bench=False).current != doc["sha256"])
    assert kills >= 1, "no kill landed before the install finished"
    fk.report(f"agent killed mid-install ({kills} of 8 kills landed, {8 - kills} installs finished first)", half, lost)
    assert half == 0 and lost == 0


# --------------------------------------------------------------------------- locks


def test_stale_lock_of_dead_process_and_live_holder(farm, tmp_path, tflite_models):
    """Proves: a W/lock left by a process that died holding it (its holder JSON still in the file) does not
    block a bench even with lock_timeout 0; a lock held by a live process makes that board fail with `locked`
    naming the holder's pid and the board, while the other boards measure; once the holder is gone the board
    measures again and its model was never touched."""
    dev = _farm3(farm, tmp_path, "s1", "s2", "s3", lock_timeout=0)
    _deploy_ok(dev, tflite_models["dense_a"], ["all"], name="dense_a")
    dead = fk.hold_lock(_w(tmp_path, "s1"))
    dead.kill()
    dead.wait(5)
    assert json.loads((_w(tmp_path, "s1") / "lock").read_text())["pid"] == dead.pid  # a stale record stays behind
    live = fk.hold_lock(_w(tmp_path, "s2"))
    try:
        code, doc, err = run_json(
            "bench", tflite_models["dense_a"], "-t", "all", "--runs", "5", "--min-seconds", "0", "--devices", dev
        )
    finally:
        live.kill()
        live.wait(5)
    assert code == ExitCode.FLEET and "s2" in err
    recs = by_device(doc)
    assert recs["s1"]["status"] == "ok" and recs["s3"]["status"] == "ok"
    s2 = recs["s2"]
    assert s2["kind"] == "locked" and s2["error"].startswith("s2: ") and f"pid {live.pid}" in s2["error"], s2
    assert "lock_timeout" in s2["hint"]
    code, doc, _ = run_json("bench", tflite_models["dense_a"], "-t", "s2", "--runs", "3", "--min-seconds", "0", "--devices", dev)
    assert code == 0, doc
    states = [fk.board_state(_w(tmp_path, n), "dense_a") for n in ("s1", "s2", "s3")]
    half = sum(fk.half_written_or_unloadable(s) for s in states)
    lost = sum(1 for n in ("s1", "s3") if not recs[n]["results"][0]["ok"])
    fk.report("stale lock of a dead process / lock held by a live one", half, lost)
    assert half == 0 and lost == 0
