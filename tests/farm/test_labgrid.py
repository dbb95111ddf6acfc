"""Shared fleets through labgrid: a real coordinator and exporter on loopback export the farm's sshd boards
as places (NetworkService); real `edgeq bench` processes queue for them. No part of labgrid is mocked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeq.testing import Missing
from edgeq.testing.labfarm import LabFarm

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


@pytest.fixture(scope="module")
def lab(farm, tmp_path_factory):
    try:
        lab = LabFarm.start(tmp_path_factory.mktemp("lab"), farm.boards[:1], {farm.boards[0].name: {"pool": "solo"}})
    except Missing as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield lab
    finally:
        lab.stop()


def _devices(farm, lab, tmp_path: Path, reserve_timeout: float) -> Path:
    b = farm.boards[0]
    defaults = {
        "key_file": str(farm.user_key),
        "known_hosts": str(farm.known_hosts),
        "python": sys.executable,
        "connect_timeout": 5,
        "lock_timeout": 30,
    }
    doc = {
        "labgrid": {"coordinator": lab.address, "place_tags": {"pool": "solo"}, "reserve_timeout": reserve_timeout},
        "defaults": defaults,
        "devices": [{"name": b.name, "workdir": str(b.workdir), "tags": ["farm"]}],
    }
    p = tmp_path / "devices.yaml"
    p.write_text(json.dumps(doc))
    return p


def _bench(model: Path, dev: Path, seconds: float) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edgeq", "bench", str(model), "-t", "all", "--runs", "5", "--min-seconds", str(seconds)]
    return subprocess.Popen([*cmd, "--devices", str(dev)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _wait_line(proc: subprocess.Popen, needle: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"no {needle!r} in {''.join(lines)}")


def _holder(lab: LabFarm, place: str) -> str:
    out = lab.client("-p", place, "show").stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("acquired:")), "")


def test_two_benches_are_serialized_by_the_coordinator(farm, lab, tmp_path, tflite_models):
    dev = _devices(farm, lab, tmp_path, reserve_timeout=90)
    first = _bench(tflite_models["dense_a"], dev, 4)
    _wait_line(first, "labgrid: acquired")
    t_first_acq = time.monotonic()
    second = _bench(tflite_models["dense_a"], dev, 0)
    out2, err2 = second.communicate(timeout=120)
    out1, err1 = first.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    # the second waited, told who held the place (the first edgeq, by pid), then ran after the first released
    assert "acquired by " in err2 and f".edgeq-{first.pid}" in err2, err2
    assert "labgrid: acquired" in err2 and "labgrid: released" in err2
    assert time.monotonic() - t_first_acq >= 4
    assert err2.index("waiting for a place") < err2.index("labgrid: acquired")
    assert _holder(lab, farm.boards[0].name) in ("", "None")


def test_a_killed_edgeq_place_is_released_for_the_next(farm, lab, tmp_path, tflite_models):
    dev = _devices(farm, lab, tmp_path, reserve_timeout=30)
    victim = _bench(tflite_models["dense_a"], dev, 20)
    _wait_line(victim, "labgrid: acquired")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    assert f".edgeq-{victim.pid}" in _holder(lab, farm.boards[0].name)  # nobody released it
    t0 = time.monotonic()
    nxt = _bench(tflite_models["dense_a"], dev, 0)
    _, err = nxt.communicate(timeout=90)
    assert nxt.returncode == 0, err
    assert "no longer running: releasing it" in err, err
    assert time.monotonic() - t0 < 60


def test_a_place_that_never_frees_times_out_naming_the_holder(farm, lab, tmp_path, tflite_models):
    place = farm.boards[0].name
    lab.client("-p", place, "acquire")  # a person at the lab holds the board (labgrid-client, no edgeq)
    try:
        holder = _holder(lab, place)
        assert holder and "edgeq" not in holder
        dev = _devices(farm, lab, tmp_path, reserve_timeout=2)
        t0 = time.monotonic()
        proc = _bench(tflite_models["dense_a"], dev, 0)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 8, err
        assert time.monotonic() - t0 < 30
        assert f"acquired by {holder}" in err and "reserve_timeout" in err, err
        assert "release --kick" in err
        # its queued reservation was cancelled on the way out: nothing of it is left on the coordinator
        assert ".edgeq-" not in lab.client("reservations").stdout
    finally:
        lab.client("-p", place, "release")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_release_the_place(farm, lab, tmp_path, tflite_models, sig, code):
    dev = _devices(farm, lab, tmp_path, reserve_timeout=30)
    proc = _bench(tflite_models["dense_a"], dev, 30)
    _wait_line(proc, "labgrid: acquired")
    assert f".edgeq-{proc.pid}" in _holder(lab, farm.boards[0].name)
    time.sleep(1.0)  # into the benchmark itself
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "labgrid: released" in err, err
    assert _holder(lab, farm.boards[0].name) in ("", "None")
    assert ".edgeq-" not in lab.client("reservations").stdout
    assert time.monotonic() - t0 < 30


def test_sigterm_while_waiting_cancels_the_queued_reservation(farm, lab, tmp_path, tflite_models):
    place = farm.boards[0].name
    lab.client("-p", place, "acquire")
    try:
        dev = _devices(farm, lab, tmp_path, reserve_timeout=60)
        proc = _bench(tflite_models["dense_a"], dev, 0)
        _wait_line(proc, "waiting for a place")
        assert ".edgeq-" in lab.client("reservations").stdout  # queued behind the person holding it
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err
        assert ".edgeq-" not in lab.client("reservations").stdout
    finally:
        lab.client("-p", place, "release")


def test_pipeline_run_deploys_and_benchmarks_on_a_leased_place(farm, lab, tmp_path):
    """`edgeq run`: the deploy and benchmark stages run on the place reserved for them, released after."""
    import yaml

    from edgeq.testing.common import TINY

    dev = _devices(farm, lab, tmp_path, reserve_timeout=30)
    doc = json.loads(json.dumps(TINY))
    doc["quantize"] = {"variants": [{"type": "int8", "calibration_samples": 50}]}
    doc["devices"] = str(dev)
    doc["deploy"] = {"targets": ["farm"]}
    doc["benchmark"] = {"runs": 5, "warmup": 1, "min_seconds": 0, "threads": [1]}
    pipe = tmp_path / "p.yaml"
    pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**ENV, "EDGEQ_HOME": str(tmp_path / "home")}
    r = subprocess.run(
        [sys.executable, "-m", "edgeq", "run", str(pipe), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout)
    assert {b["device"] for b in m["benchmarks"]} == {farm.boards[0].name}
    assert "labgrid: acquired" in r.stderr and "labgrid: released" in r.stderr
    assert _holder(lab, farm.boards[0].name) in ("", "None")


def test_unreachable_coordinator_is_a_clean_fleet_error_and_list_names_it(tmp_path):
    from edgeq.testing.sshfarm import free_port

    dev = tmp_path / "devices.yaml"
    dev.write_text(json.dumps({"labgrid": {"coordinator": f"127.0.0.1:{free_port()}", "place_tags": {"pool": "x"}}}))
    cmd = [sys.executable, "-m", "edgeq", "devices"]
    r = subprocess.run([*cmd, "check", "--devices", str(dev)], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 8, r.stderr
    assert "cannot connect" in r.stderr and "labgrid-coordinator" in r.stderr
    assert "Traceback" not in r.stderr and "ERROR:root" not in r.stderr, r.stderr
    r = subprocess.run([*cmd, "list", "--devices", str(dev)], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 0 and "labgrid places matching pool=x" in r.stdout, r.stdout


def test_several_places_per_run_and_a_partial_wait_releases_them_all(farm, tmp_path):
    """labgrid.places: 2 of a pool of 3: one run checks two leased boards and releases both; a run wanting all
    three while someone else holds one times out naming that holder, and keeps none of the two it could get."""
    boards = farm.boards[:3]
    try:
        trio = LabFarm.start(tmp_path / "lab3", boards, {b.name: {"pool": "trio"} for b in boards})
    except Missing as e:
        pytest.fail(str(e), pytrace=False)
    try:
        defaults = {"key_file": str(farm.user_key), "known_hosts": str(farm.known_hosts), "python": sys.executable}
        devs = [{"name": b.name, "workdir": str(tmp_path / "w" / b.name), "tags": ["farm"]} for b in boards]

        def devices(places: int, timeout: float) -> Path:
            lg = {"coordinator": trio.address, "place_tags": {"pool": "trio"}, "places": places, "reserve_timeout": timeout}
            p = tmp_path / f"devices-{places}.yaml"
            p.write_text(json.dumps({"labgrid": lg, "defaults": {**defaults, "connect_timeout": 5}, "devices": devs}))
            return p

        cmd = [sys.executable, "-m", "edgeq", "devices", "check", "all", "--json", "--devices"]
        r = subprocess.run([*cmd, str(devices(2, 30))], capture_output=True, text=True, env=ENV, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        got = [d["device"] for d in json.loads(r.stdout)["devices"]]
        assert (
            len(got) == 2 and set(got) <= {b.name for b in boards} and all(d["healthy"] for d in json.loads(r.stdout)["devices"])
        )
        assert "labgrid: released" in r.stderr
        assert all(_holder(trio, b.name) in ("", "None") for b in boards)

        trio.client("-p", boards[0].name, "acquire")  # someone else's board, held outside any reservation
        r = subprocess.run([*cmd, str(devices(3, 3))], capture_output=True, text=True, env=ENV, timeout=120)
        assert r.returncode == 8 and boards[0].name in r.stderr and "reserve_timeout" in r.stderr, r.stderr[-2000:]
        assert all(_holder(trio, b.name) in ("", "None") for b in boards[1:])  # nothing of ours left behind
        assert _holder(trio, boards[0].name) not in ("", "None")
    finally:
        trio.stop()


def test_a_holder_in_another_pid_namespace_is_not_kicked(farm, lab, tmp_path, tflite_models):
    """Containers: the same host name, a PID namespace of their own. A pid from there that is not running
    here says nothing: the holder is identified by boot id + PID namespace + start time, and left alone."""
    place = farm.boards[0].name
    pid = next(p for p in range(24000, 32000) if not Path(f"/proc/{p}").exists())  # free here, the holder's there
    dev = _devices(farm, lab, tmp_path, reserve_timeout=30)
    cmd = [sys.executable, "-m", "edgeq", "bench", str(tflite_models["dense_a"]), "-t", "all", "--runs", "5"]
    cmd += ["--min-seconds", "20", "--devices", str(dev)]
    # the shell is pid 1 of the new namespace; it forks edgeq as the namespace's pid `pid`
    script = f'echo {pid - 1} > /proc/sys/kernel/ns_last_pid && "$@"; exit $?'
    holder = subprocess.Popen(
        ["unshare", "--pid", "--kill-child", "--mount-proc", "sh", "-c", script, "sh", *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        _wait_line(holder, "labgrid: acquired")
        held_by = _holder(lab, place)
        assert f".edgeq-{pid}" in held_by and not Path(f"/proc/{pid}").exists(), held_by
        (tmp_path / "next").mkdir()
        t0 = time.monotonic()
        nxt = _bench(tflite_models["dense_a"], _devices(farm, lab, tmp_path / "next", reserve_timeout=5), 0)
        _, err = nxt.communicate(timeout=90)
        assert nxt.returncode == 8, err
        assert "no longer running" not in err and f"acquired by {held_by}" in err, err
        assert time.monotonic() - t0 < 60
        assert _holder(lab, place) == held_by  # the running job still holds its board
        _, err = holder.communicate(timeout=90)
        assert holder.returncode == 0, err
        assert "labgrid: released" in err, err
        assert _holder(lab, place) in ("", "None")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
