"""Fleet units that need no sshd: inventory/devices.yaml, retry policy, batches, quoting, host keys."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeq.errors import ConfigError, ExitCode
from edgeq.fleet import load_inventory
from edgeq.fleet.fanout import parse_batches, plan_batches
from edgeq.fleet.transport.base import BoardError
from edgeq.fleet.transport.hostkeys import HostKey, fingerprint, host_entry, known_keys, record_host_key
from edgeq.fleet.transport.retry import RetryPolicy
from edgeq.fleet.transport.shelltext import quote_argv
from edgeq.testing.common import REPO
from edgeq.testing.fleet import run_cli, run_json

# --------------------------------------------------------------------------- retry policy (fake clock)


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


class Flaky(Exception):
    pass


def _failing(n: int, exc=Flaky, result="done"):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= n:
            raise exc("boom")
        return result

    return fn, calls


def test_retry_backoff_then_success():
    c = FakeClock()
    fn, calls = _failing(3)
    seen = []
    out = RetryPolicy(attempts=5, base_delay=0.5, factor=2, max_delay=1.5).call(
        fn, retryable=lambda e: isinstance(e, Flaky), sleep=c.sleep, clock=c.clock, on_retry=lambda a, w, e: seen.append((a, w))
    )
    assert out == "done" and len(calls) == 4
    assert c.sleeps == [0.5, 1.0, 1.5]  # doubled, capped at max_delay
    assert seen == [(1, 0.5), (2, 1.0), (3, 1.5)]


def test_retry_gives_up_after_attempts_with_the_last_error():
    c = FakeClock()
    fn, calls = _failing(10)
    with pytest.raises(Flaky):
        RetryPolicy(attempts=3, base_delay=1).call(fn, retryable=lambda e: True, sleep=c.sleep, clock=c.clock)
    assert len(calls) == 3 and c.sleeps == [1, 2]


def test_retry_never_retries_non_retryable():
    c = FakeClock()
    fn, calls = _failing(1, exc=PermissionError)
    with pytest.raises(PermissionError):
        RetryPolicy(attempts=5).call(fn, retryable=lambda e: isinstance(e, Flaky), sleep=c.sleep, clock=c.clock)
    assert len(calls) == 1 and c.sleeps == []


def test_retry_respects_deadline():
    c = FakeClock()
    fn, calls = _failing(10)

    def slow():
        c.now += 2.0  # each attempt takes 2 s
        return fn()

    with pytest.raises(Flaky):
        RetryPolicy(attempts=10, base_delay=1, factor=2, deadline=8).call(
            slow, retryable=lambda e: True, sleep=c.sleep, clock=c.clock
        )
    # t=2 fail, wait 1 -> t=5 fail, wait 2 -> t=9 fail; waiting 4 more would pass the 8 s deadline
    assert c.sleeps == [1, 2] and len(calls) == 3


def test_retry_delays_sequence():
    assert list(RetryPolicy(attempts=1).delays()) == []
    assert list(RetryPolicy(attempts=4, base_delay=0.25, factor=3, max_delay=10).delays()) == [0.25, 0.75, 2.25]


def test_ssh_connect_retries_refused_with_backoff_but_not_auth(tmp_path):
    """The real SSH transport against a closed port: retried with backoff (fake sleep), then named."""
    from edgeq.fleet.transport.ssh import SSHTransport

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        dev = tmp_path / "d.yaml"
        item = f"{{name: pi, host: 127.0.0.1, port: {port}, retries: 4, retry_delay: 0.5, known_hosts: {tmp_path}/kh}}"
        dev.write_text(f"devices:\n  - {item}\n")
        d = load_inventory(dev).get("pi")
        c = FakeClock()
        with pytest.raises(BoardError) as ei:
            SSHTransport(d, sleep=c.sleep).connect()
    assert ei.value.kind == "refused" and ei.value.unreachable
    assert ei.value.message.startswith("pi: connection refused by 127.0.0.1:")
    # full jitter (issue 11 item 13): each wait is uniform in [0, 0.5 * 2^k]
    assert len(c.sleeps) == 3 and all(0 <= w <= cap for w, cap in zip(c.sleeps, [0.5, 1.0, 2.0], strict=True))

    d2 = d.model_copy(update={"key_file": str(tmp_path / "missing_key")})
    c2 = FakeClock()
    with pytest.raises(BoardError) as ei:
        SSHTransport(d2, sleep=c2.sleep).connect()
    assert ei.value.kind == "auth" and "missing_key" in ei.value.message and c2.sleeps == []


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize(
    "n,spec,want",
    [
        (10, "1,25%,100%", [[0], [1, 2], [3, 4, 5, 6, 7, 8, 9]]),
        (10, "1", [[0], list(range(1, 10))]),  # the rest always follows
        (4, None, [[0, 1, 2, 3]]),
        (1, "1,25%,100%", [[0]]),
        (3, "50%,50%,2,100%", [[0, 1], [2]]),
        (5, [2, "60%"], [[0, 1], [2], [3, 4]]),
        (0, "1", []),
    ],
)
def test_plan_batches(n, spec, want):
    assert [list(r) for r in plan_batches(n, spec)] == want


@pytest.mark.parametrize("bad", ["0", "abc", "-1", "0%", "101%", "1,,2"])
def test_parse_batches_rejects(bad):
    with pytest.raises(ConfigError, match="--batch"):
        parse_batches(bad)


# --------------------------------------------------------------------------- quoting and fingerprints


@pytest.mark.parametrize("arg", ["plain", "a b", "$(touch /tmp/x)", "`id`", "it's", 'q"uote', "a;b|c&d>e<f", "", "~/edgeq", "*"])
def test_quote_argv_round_trips_through_a_shell_parser(arg):
    argv = ["/usr/bin/python3", "agent.pyz", "status", "--workdir", arg]
    assert shlex.split(quote_argv(argv)) == argv


# Written by OpenSSH 9.2p1 (`ssh-keygen -t ed25519`, `ssh-keygen -lf`, `ssh-keygen -H`): the unit tier reads what
# the real tool wrote without running it; tests/func/test_openssh_formats.py checks against a live ssh-keygen.
ED25519_B64 = "AAAAC3NzaC1lZDI1NTE5AAAAIMHwZVDUQHIHGegcC+5oDKbhPqrOdQaD3odBJSYkRrpi"
ED25519_FP = "SHA256:mPBS1+m7vTPJZggM1O0Jbw0SCoUZO73mQbO1d7NmgOA"
HASHED_KNOWN_HOSTS = (  # `[127.0.0.1]:2200` and `other.host`, hashed
    f"|1|s2dCxjr4kaWsrCYXvnqZ+FQebZM=|GUYsui9J3vDe/43jFebXifL0yvQ= ssh-ed25519 {ED25519_B64}\n"
    f"|1|mfTFEd4qzrscrCDC3otH42YvokM=|QQXDWuI7DPD8VwP0hEk2+EdLLkA= ssh-ed25519 {ED25519_B64}\n"
)


def test_fingerprint_matches_ssh_keygen():
    import base64

    assert fingerprint(base64.b64decode(ED25519_B64)) == ED25519_FP
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", fingerprint(b"x"))


def test_known_hosts_record_replace_and_hashed_lookup(tmp_path):
    assert host_entry("pi", 22) == "pi" and host_entry("10.0.0.2", 2222) == "[10.0.0.2]:2222"
    kh = tmp_path / "sub" / "known_hosts"
    k1 = HostKey("pi", "[10.0.0.2]:2222", "ssh-ed25519", "AAAAone", "SHA256:one")
    k2 = HostKey("pi", "[10.0.0.2]:2222", "ssh-ed25519", "AAAAtwo", "SHA256:two")
    assert record_host_key(kh, k1) == "added"
    assert kh.read_text() == "[10.0.0.2]:2222 ssh-ed25519 AAAAone\n" and (kh.stat().st_mode & 0o777) == 0o600
    assert record_host_key(kh, k1) == "unchanged"
    with pytest.raises(BoardError) as ei:
        record_host_key(kh, k2)
    assert ei.value.kind == "host_key_changed" and "--replace" in ei.value.hint
    assert record_host_key(kh, k2, replace=True) == "replaced"
    assert known_keys(kh, "[10.0.0.2]:2222") == [("ssh-ed25519", "AAAAtwo")]

    # entries hashed by `ssh-keygen -H` are recognised too
    hashed = tmp_path / "kh2"
    hashed.write_text(HASHED_KNOWN_HOSTS)
    assert known_keys(hashed, "[127.0.0.1]:2200") == [("ssh-ed25519", ED25519_B64)]
    assert known_keys(hashed, "other.host") == [("ssh-ed25519", ED25519_B64)]
    assert known_keys(hashed, "[127.0.0.1]:2201") == [] and known_keys(hashed, "127.0.0.1") == []


# --------------------------------------------------------------------------- devices.yaml


def _yaml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "devices.yaml"
    p.write_text(text)
    return p


def test_defaults_merge_env_and_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEQ_PI_HOST", "10.1.2.3")
    p = _yaml(
        tmp_path,
        """\
defaults:
  user: pi
  port: 2222
  tags: [lab]
  key_file: keys/id_ed25519
devices:
  - name: pi-1
    host: ${EDGEQ_PI_HOST}
    tags: [pi5]
    threads: 4
    power: {probe: rpi5-pmic}
  - name: pi-2
    host: pi-2.lab
    port: 22
    user: admin
  - name: here
    transport: local
""",
    )
    inv = load_inventory(p)
    a, b, c = inv.devices
    assert (a.host, a.port, a.user, a.threads, a.tags) == ("10.1.2.3", 2222, "pi", 4, ["lab", "pi5"])
    assert a.key_file == str(tmp_path / "keys" / "id_ed25519")  # relative to devices.yaml
    assert a.known_hosts == str(Path(os.environ["EDGEQ_HOME"]) / "known_hosts")
    assert (a.python, a.workdir, a.delegate, a.power.probe) == ("python3", "~/edgeq", "xnnpack", "rpi5-pmic")
    assert (b.port, b.user, b.tags, b.address) == (22, "admin", ["lab"], "pi-2.lab")
    assert c.python == sys.executable and c.workdir == str(Path(os.environ["EDGEQ_HOME"]) / "boards" / "here")
    assert [d.name for d in inv.select(["lab"])] == ["pi-1", "pi-2", "here"]
    assert [d.name for d in inv.select(["here", "pi5", "pi-1"])] == ["pi-1", "here"]
    assert len(inv.select(["all"])) == 3


def test_duplicate_device_names_name_both_lines(tmp_path):
    p = _yaml(
        tmp_path,
        "devices:\n  - name: pi\n    transport: local\n  - name: other\n    transport: local\n"
        "  - name: pi\n    transport: local\n",
    )
    with pytest.raises(ConfigError) as ei:
        load_inventory(p)
    assert f"{p}:6:" in ei.value.message and f"{p}:2" in ei.value.message and "duplicate device name 'pi'" in ei.value.message


@pytest.mark.parametrize(
    "text,line,needle",
    [
        ("devices:\n  - name: pi\n    host: h\n    password: hunter2\n", 4, "devices[0].password: unknown key"),
        ("devices:\n  - name: pi\n    host: h\n    port: 70000\n", 4, "devices[0].port"),
        ("devices:\n  - name: pi\n    transport: ftp\n", 3, "devices[0].transport"),
        ("devices:\n  - name: ok\n    transport: local\n  - name: pi\n", 4, "devices[1].host: required for transport 'ssh'"),
        ("defaults:\n  delegate: gpu\ndevices:\n  - name: pi\n    host: h\n", 2, "defaults.delegate"),
        ("devices:\n  - name: 'bad name'\n    host: h\n", 2, "devices[0].name"),
        ("devices:\n  - name: pi\n    host: h\n    power: {probe: hwmon}\n", 4, "devices[0].power"),
        ("devices:\n  - name: pi\n    host: ${HOME}\n", 3, "only ${EDGEQ_*}"),
        ("devices:\n  - name: pi\n    host: h\n    key_passphrase_env: SECRET\n", 4, "key_passphrase_env"),
        ("devices: []\n", 1, "at least one device"),
        ("devices:\n  - name: pi\n   host: h\n", 3, "YAML syntax error"),
    ],
)
def test_devices_yaml_errors_have_file_and_line(tmp_path, text, line, needle):
    p = _yaml(tmp_path, text)
    code, doc, _ = run_json("devices", "list", "--devices", p)
    assert code == ExitCode.CONFIG
    assert f"{p}:{line}" in doc["message"], doc["message"]
    assert needle in doc["message"]
    assert "hunter2" not in json.dumps(doc)  # a rejected secret is not echoed back


def test_lookup_order_and_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inv = load_inventory(None)
    assert inv.source is None and inv.names == ["local"] and inv.devices[0].transport == "local"
    _yaml(tmp_path, "devices:\n  - {name: cwd, transport: local}\n")
    assert load_inventory(None).names == ["cwd"]
    env = tmp_path / "env.yaml"
    env.write_text("devices:\n  - {name: env, transport: local}\n")
    monkeypatch.setenv("EDGEQ_DEVICES", str(env))
    assert load_inventory(None).names == ["env"]
    with pytest.raises(ConfigError, match="file not found"):
        load_inventory(tmp_path / "nope.yaml")


def test_target_matching_nothing_lists_names_and_tags(tmp_path):
    p = _yaml(tmp_path, "devices:\n  - {name: a, transport: local, tags: [x86]}\n  - {name: b, transport: local}\n")
    inv = load_inventory(p)
    with pytest.raises(ConfigError) as ei:
        inv.select(["a", "pi5", "coral"])
    assert "'pi5', 'coral'" in ei.value.message and "a, b" in ei.value.hint and "x86" in ei.value.hint


def test_shipped_devices_yaml_and_its_commented_examples_are_valid(tmp_path, monkeypatch):
    inv = load_inventory(REPO / "devices.yaml")
    assert [d.name for d in inv.devices] == ["local"] and inv.devices[0].transport == "local"
    lines = (REPO / "devices.yaml").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("devices:"))
    body = [re.sub(r"^  # ?", "  ", ln) if ln.startswith("  #") else ln for ln in lines[start:]]
    monkeypatch.setenv("EDGEQ_PI5_HOST", "192.0.2.50")
    p = _yaml(tmp_path, "\n".join(lines[:start] + body) + "\n")
    names = {d.name: d for d in load_inventory(p).devices}
    assert set(names) == {"local", "pi5-01", "coral-01"}
    assert names["pi5-01"].host == "192.0.2.50" and names["coral-01"].delegate == "edgetpu"


# --------------------------------------------------------------------------- CLI: list is fast and light


def test_devices_list_imports_neither_paramiko_nor_tensorflow(tmp_path):
    p = _yaml(tmp_path, "devices:\n  - {name: pi, host: 10.0.0.9, tags: [pi5], key_passphrase_env: EDGEQ_X}\n")
    code = (
        "import sys\n"
        "from edgeq.cli import main\n"
        f"sys.argv = ['edgeq', 'devices', 'list', '--json', '--devices', {str(p)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    rc = e.code\n"
        "heavy = [m for m in ('paramiko', 'tensorflow', 'cryptography', 'ai_edge_litert') if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy) + ' RC=' + str(rc))\n"
    )
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)  # noqa: S603
    assert "HEAVY= RC=0" in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    assert doc["devices"][0]["name"] == "pi" and doc["devices"][0]["tags"] == ["pi5"]
    assert time.monotonic() - t0 < 20


def test_devices_list_table_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("devices", "list")
    assert code == 0 and "embedded default" in out and "local" in out


# --------------------------------------------------------------------------- agent results -> errors (pure)


class _NoTransport:
    def home(self):
        return "/home/pi"


def _board(tmp_path, workdir="~/edgeq"):
    from edgeq.fleet.board import AgentBundle, Board

    inv = load_inventory(_yaml(tmp_path, f"devices:\n  - {{name: pi, host: h, workdir: '{workdir}'}}\n"))
    return Board(inv.devices[0], _NoTransport(), AgentBundle(tmp_path / "edgeq-agent-0123456789ab.pyz", "0" * 64))


def test_board_resolves_home_without_a_shell(tmp_path):
    assert _board(tmp_path).workdir == "/home/pi/edgeq"
    assert _board(tmp_path, "rel/dir").workdir == "/home/pi/rel/dir"
    assert _board(tmp_path, "/srv/edgeq/").agent_path == "/srv/edgeq/agent/edgeq-agent-0123456789ab.pyz"


@pytest.mark.parametrize(
    "rc,out,err,kind,needle",
    [
        (127, "", "bash: /opt/py: No such file or directory", "no_python", "cannot run the board's python"),
        (-9, "", "", "agent_killed", "signal 9"),
        (137, "", "", "agent_killed", "signal 9"),
        (-1, "", "", "agent_killed", "without an exit status"),
        (0, "Welcome to the board!\n", "", "bad_output", "JSON"),
        (1, "", "Traceback ...", "bad_output", "Traceback"),
        (7, json.dumps({"ok": False, "kind": "os_error", "error": "No space left on device", "errno": "ENOSPC"}),
         "", "disk_full", "No space"),
        (4, json.dumps({"ok": False, "kind": "unloadable", "error": "cannot load", "op": "FULLY_CONNECTED",
                        "runtime": {"name": "tflite-runtime", "version": "2.14.0"}}),
         "", "unloadable", "op FULLY_CONNECTED, runtime tflite-runtime 2.14.0"),
        (6, '{"ok": false, "kind": "locked", "error": "held by pid 42"}', "", "locked", "held by pid 42"),
    ],
)  # fmt: skip
def test_agent_results_become_named_errors(tmp_path, rc, out, err, kind, needle):
    b = _board(tmp_path)
    with pytest.raises(BoardError) as ei:
        b.interpret("install", rc, out, err)
    assert ei.value.kind == kind and needle in ei.value.message and ei.value.message.startswith("pi: ")
    assert b.interpret("status", 0, '{"ok": true, "current": null}\n', "") == {"ok": True, "current": None}


def test_local_board_with_missing_python(tmp_path, monkeypatch):
    from edgeq import fleet

    p = _yaml(tmp_path, f"devices:\n  - {{name: lp, transport: local, python: /nonexistent/python, workdir: '{tmp_path}/lp'}}\n")
    doc = fleet.check(load_inventory(p), ["lp"]).to_json()
    assert not doc["ok"] and doc["devices"][0]["kind"] == "no_python"
