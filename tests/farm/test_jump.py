"""Boards behind a jump host (ProxyJump from an OpenSSH client config), against real sshds.

The boards listen on the loopback of a network namespace; the test reaches only the jump host, over a
veth pair (edgeq.testing.jumpfarm). Every hop's host key is checked against the fleet known_hosts.
"""

from __future__ import annotations

import getpass
import json
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edgeq import fleet
from edgeq.errors import ExitCode
from edgeq.fleet.transport.trust import trust
from edgeq.testing import faultkit, sshfarm
from edgeq.testing.fleet import by_device, run_cli, run_json
from edgeq.testing.jumpfarm import JumpNet
from tests.farm.test_trust_pty import _read_until


@pytest.fixture(scope="module")
def net(farm, tmp_path_factory):
    why = faultkit.netns_available()
    if why:
        pytest.fail(f"a network namespace cannot be built here: {why}", pytrace=False)
    n = JumpNet.start(farm, tmp_path_factory.mktemp("jumpnet"), boards=2)
    try:
        yield n
    finally:
        n.stop()


def _ssh_config(net: JumpNet, farm: sshfarm.SSHFarm, path: Path) -> Path:
    j, j2, b1, b2 = (net.sshds[k] for k in ("jump", "jump2", "nb1", "nb2"))
    path.write_text(
        f"""# an ~/.ssh/config as a lab would write it
Host bastion
    HostName {j.addr}
    Port {j.port}

Host jump2
    HostName 127.0.0.1
    Port {j2.port}
    ProxyJump bastion

Host board1
    HostName 127.0.0.1
    Port {b1.port}
    ProxyJump bastion
    ConnectTimeout 6

Host board2
    HostName 127.0.0.1
    Port {b2.port}
    ProxyJump jump2

Host *
    User {getpass.getuser()}
    IdentityFile {farm.user_key}
"""
    )
    return path


def _devices(tmp_path: Path, net: JumpNet, farm: sshfarm.SSHFarm, kh: Path) -> Path:
    cfg = _ssh_config(net, farm, tmp_path / "ssh_config")
    entries = [
        {"name": name, "host": alias, "workdir": str(tmp_path / "boards" / name), "tags": ["jumped"]}
        for name, alias in (("jb1", "board1"), ("jb2", "board2"))
    ]
    defaults = {"ssh_config": str(cfg), "known_hosts": str(kh), "python": sys.executable, "retries": 1}
    text = "defaults: " + json.dumps(defaults) + "\ndevices:\n" + "".join(f"  - {json.dumps(e)}\n" for e in entries)
    p = tmp_path / "devices.yaml"
    p.write_text(text)
    return p


def _accepted(log: Path) -> int:
    return log.read_text(errors="replace").count("Accepted publickey")


def test_boards_are_not_reachable_directly(net):
    for name in ("nb1", "nb2", "jump2"):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", net.sshds[name].port), timeout=2).close()


def test_alias_resolution_from_ssh_config(farm, net, tmp_path):
    dev = _devices(tmp_path, net, farm, tmp_path / "kh")
    inv = fleet.load_inventory(dev)
    b1, b2 = inv.get("jb1"), inv.get("jb2")
    assert (b1.alias, b1.host, b1.port, b1.user, b1.key_file) == (
        "board1",
        "127.0.0.1",
        net.sshds["nb1"].port,
        getpass.getuser(),
        str(farm.user_key),
    )
    assert b1.connect_timeout == 6.0 and b2.connect_timeout == 10.0
    assert [(h.name, h.host, h.port) for h in b1.jump] == [("bastion", net.sshds["jump"].addr, 2222)]
    assert [h.name for h in b2.jump] == ["bastion", "jump2"] and b2.route == "via bastion, jump2"
    code, out, _ = run_cli("devices", "list", "--devices", dev)
    assert code == 0 and "via bastion" in out
    code, doc, _ = run_json("devices", "list", "--devices", dev)
    assert doc["devices"][0]["jump"][0]["name"] == "bastion" and doc["devices"][0]["alias"] == "board1"
    assert doc["devices"][1]["route"] == "via bastion, jump2"


def test_trust_check_deploy_bench_through_the_jump_host(farm, net, tmp_path, tflite_models):
    kh = tmp_path / "kh"
    dev = _devices(tmp_path, net, farm, kh)
    j, b1 = net.sshds["jump"], net.sshds["nb1"]

    code, doc, _ = run_json("devices", "check", "jb1", "--devices", dev)
    r = by_device(doc)["jb1"]
    assert code == ExitCode.FLEET and r["kind"] == "host_key_unknown"
    assert "via jump host bastion" in r["error"] and "edgeq devices trust jb1" in r["hint"]

    code, doc, _ = run_json("devices", "trust", "jb1", "--devices", dev)  # --json, no --yes: nothing recorded
    assert code == ExitCode.FLEET and "jump host bastion" in doc["message"] and not kh.exists()

    code, out, err = run_cli("devices", "trust", "jb1", "--devices", dev, stdin="n\n")
    assert code == ExitCode.FLEET and "jump host bastion" in err and "declined" in err and not kh.exists()

    code, out, err = run_cli("devices", "trust", "jb1", "--devices", dev, stdin="y\ny\n")
    assert code == 0, err
    assert "Trust" in err and "jump host bastion" in err  # asked about the jump host first, then the board
    assert sshfarm.fingerprint_of(Path(str(j.host_key) + ".pub")) in out
    assert sshfarm.fingerprint_of(Path(str(b1.host_key) + ".pub")) in out
    assert kh.read_text().splitlines() == [j.known_hosts_line, b1.known_hosts_line]

    code, doc, _ = run_json("devices", "trust", "jb1", "--devices", dev)  # all known: no question needed
    assert code == 0 and doc["result"] == "unchanged" and doc["jump_hosts"][0]["result"] == "unchanged"

    code, doc, _ = run_json("devices", "check", "jb1", "--devices", dev)
    assert code == 0, doc
    assert by_device(doc)["jb1"]["healthy"] and by_device(doc)["jb1"]["route"] == "via bastion"
    code, out, _ = run_cli("devices", "check", "jb1", "--devices", dev)
    assert code == 0 and "jb1 (via bastion)" in out

    art = tflite_models["dense_a"]
    code, doc, err = run_json("deploy", art, "--target", "jb1", "--devices", dev)
    assert code == 0, (doc, err)
    assert by_device(doc)["jb1"]["status"] == "changed"
    blob = tmp_path / "boards" / "jb1" / "models" / "dense_a" / f"{doc['sha256']}.tflite"
    assert blob.read_bytes() == art.read_bytes()

    code, doc, err = run_json(
        "bench", art, "-t", "jb1", "--runs", "10", "--warmup", "1", "--min-seconds", "0", "--devices", dev
    )  # fmt: skip
    assert code == 0, (doc, err)
    r = by_device(doc)["jb1"]
    assert r["status"] == "ok" and r["deploy"] == "unchanged" and r["results"][0]["count"] >= 10


def test_trust_prompts_for_the_jump_host_then_the_board_on_a_real_terminal(farm, net, tmp_path):
    kh = tmp_path / "kh"
    dev = _devices(tmp_path, net, farm, kh)
    env = {**os.environ, "EDGEQ_HOME": str(tmp_path / "home"), "PYTHONPATH": os.pathsep.join(sys.path)}
    master, slave = pty.openpty()
    p = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "edgeq", "devices", "trust", "jb1", "--devices", str(dev)],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        first = _read_until(master, b"[y/N]", 60).decode(errors="replace")
        assert "jump host bastion" in first and sshfarm.fingerprint_of(Path(str(net.sshds["jump"].host_key) + ".pub")) in first
        os.write(master, b"y\r")
        second = _read_until(master, b"[y/N]", 60).decode(errors="replace")
        assert "for jb1" in second, second
        os.write(master, b"y\r")
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    assert kh.read_text().splitlines() == [net.sshds["jump"].known_hosts_line, net.sshds["nb1"].known_hosts_line]


def test_two_hops_trusted_in_order(farm, net, tmp_path, tflite_models):
    kh = tmp_path / "kh"
    dev = _devices(tmp_path, net, farm, kh)
    d = fleet.load_inventory(dev).get("jb2")
    asked: list[str] = []

    def confirm(key, known_hosts):
        asked.append(key.jump_host or key.device)
        return True

    res = trust(d, confirm=confirm)
    assert asked == ["bastion", "jump2", "jb2"]
    assert [h.result for h in res.jump_hosts] == ["added", "added"] and res.result == "added"
    want = [net.sshds[k].known_hosts_line for k in ("jump", "jump2", "nb2")]
    assert kh.read_text().splitlines() == want

    code, doc, err = run_json("deploy", tflite_models["dense_b"], "--target", "jb2", "--devices", dev)
    assert code == 0, (doc, err)
    assert (tmp_path / "boards" / "jb2" / "models" / "dense_b" / f"{doc['sha256']}.tflite").is_file()


def test_devices_yaml_wins_and_explicit_proxy_jump(farm, net, tmp_path):
    """An explicit devices.yaml value beats the config; proxy_jump: written out works without aliases for the board."""
    kh = tmp_path / "kh"
    kh.write_text(net.sshds["jump"].known_hosts_line + "\n" + net.sshds["nb1"].known_hosts_line + "\n")
    cfg = _ssh_config(net, farm, tmp_path / "ssh_config")
    entry = {
        "name": "direct-addr", "host": "127.0.0.1", "port": net.sshds["nb1"].port, "proxy_jump": "bastion",
        "ssh_config": str(cfg), "known_hosts": str(kh), "python": sys.executable,
        "workdir": str(tmp_path / "w"), "key_file": str(farm.user_key), "connect_timeout": 4, "retries": 1,
    }  # fmt: skip
    dev = tmp_path / "devices.yaml"
    dev.write_text("devices:\n  - " + json.dumps(entry) + "\n")
    d = fleet.load_inventory(dev).get("direct-addr")
    assert d.connect_timeout == 4 and [h.name for h in d.jump] == ["bastion"]
    code, doc, _ = run_json("devices", "check", "--devices", dev)
    assert code == 0, doc


def test_changed_jump_host_key_is_refused_before_anything_is_sent(farm, net, tmp_path, tflite_models):
    """Last in the module: it gives the jump host a new host key."""
    kh = tmp_path / "kh"
    dev = _devices(tmp_path, net, farm, kh)
    code, doc, _ = run_json("devices", "trust", "jb1", "--yes", "--devices", dev)
    assert code == 0, doc
    before_kh = kh.read_text()
    j, b1 = net.sshds["jump"], net.sshds["nb1"]
    net.new_host_key(j)
    logins = _accepted(b1.log)

    code, doc, err = run_json("deploy", tflite_models["dense_a"], "--target", "jb1", "--devices", dev)
    r = by_device(doc)["jb1"]
    assert code == ExitCode.FLEET and r["kind"] == "host_key_changed", r
    assert "via jump host bastion" in r["error"] and "CHANGED" in r["error"]
    assert "nothing was sent to jb1" in r["hint"] and f"[{j.addr}]:{j.port}" in r["hint"]
    assert not (tmp_path / "boards" / "jb1").exists()  # the board's work dir was never created
    assert _accepted(b1.log) == logins  # the board never even saw a login

    code, doc, _ = run_json("devices", "trust", "jb1", "--yes", "--replace", "--devices", dev)
    assert code == ExitCode.FLEET and "jump host bastion" in doc["message"] and "man-in-the-middle" in doc["message"]
    assert kh.read_text() == before_kh and _accepted(b1.log) == logins


def test_hop_failures_are_named(farm, net, tmp_path):
    """Each failure on the way says which jump host and what to do; none is a traceback."""
    j, b1, b2 = net.sshds["jump"], net.sshds["nb1"], net.sshds["nb2"]
    kh = tmp_path / "kh"
    kh.write_text("".join(s.known_hosts_line + "\n" for s in (j, b1, b2)))
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Host bastion\n  HostName {j.addr}\n  Port {j.port}\n"
        f"Host wrongkey\n  HostName {j.addr}\n  Port {j.port}\n  IdentityFile {farm.wrong_key}\n"
        f"Host *\n  User {getpass.getuser()}\n  IdentityFile {farm.user_key}\n"
    )
    base = {"host": "127.0.0.1", "port": b2.port, "ssh_config": str(cfg), "known_hosts": str(kh), "python": sys.executable,
            "connect_timeout": 5, "retries": 1}  # fmt: skip
    cases = {
        "closed": {"proxy_jump": f"{j.addr}:1"},  # nothing listens there
        "auth": {"proxy_jump": "wrongkey"},
        "noforward": {"proxy_jump": f"bastion,127.0.0.1:{b1.port}"},  # nb1 is a board: AllowTcpForwarding no
        "noboard": {"proxy_jump": "bastion", "port": sshfarm.free_port()},  # the jump host finds nothing there
    }
    entries = [{**base, **over, "name": name, "workdir": str(tmp_path / name)} for name, over in cases.items()]
    dev = tmp_path / "devices.yaml"
    dev.write_text("devices:\n" + "".join(f"  - {json.dumps(e)}\n" for e in entries))
    code, doc, err = run_json("devices", "check", "--devices", dev)
    assert code == ExitCode.FLEET and "Traceback" not in err
    r = by_device(doc)
    assert r["closed"]["kind"] == "refused" and f"via jump host {j.addr}:1: connection refused" in r["closed"]["error"]
    assert "jump host" in r["closed"]["hint"] and "ProxyJump" in r["closed"]["hint"]
    assert r["auth"]["kind"] == "auth" and "via jump host wrongkey" in r["auth"]["error"]
    assert "authorized_keys" in r["auth"]["hint"]
    assert f"via jump host 127.0.0.1:{b1.port}" in r["noforward"]["error"] and "AllowTcpForwarding" in r["noforward"]["hint"]
    assert "Administratively prohibited" in r["noforward"]["error"] and "ChannelException" not in r["noforward"]["error"]
    assert "via jump host bastion" in r["noboard"]["error"] and "cannot open a tunnel" in r["noboard"]["error"]
    assert all(not (tmp_path / name).exists() for name in cases)
