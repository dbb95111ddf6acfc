"""Security of the fleet path against real OpenSSH servers (tests/sshfarm.py): a man in the middle with another
host key, names and paths full of shell metacharacters, `..` paths handed to the board's agent, and secrets
(key passphrases, private keys) kept out of every output and file edgeq writes.

The bandit rules (`ruff check --select S edgeq`) run in tests/run-all.sh before the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from edgeq import fleet
from edgeq.errors import ExitCode
from edgeq.testing import faultkit as fk
from edgeq.testing import sshfarm
from edgeq.testing.common import NASTY
from edgeq.testing.fleet import board_entry, by_device, run_cli, run_json, write_devices

# --------------------------------------------------------------------------- man in the middle


def _impostor(farm: sshfarm.SSHFarm, root: Path) -> tuple[subprocess.Popen, int, Path]:
    """Another sshd with its own host key that WOULD accept the fleet's user key: a convincing MITM."""
    root.mkdir(parents=True)
    hk = root / "host_key"
    sshfarm.keygen(hk, comment="impostor")
    port = sshfarm.free_port()
    cfg = root / "sshd_config"
    cfg.write_text("\n".join([
        "ListenAddress 127.0.0.1", f"HostKey {hk}", f"AuthorizedKeysFile {farm.root / 'keys' / 'authorized_keys'}",
        f"PidFile {root / 'sshd.pid'}", "StrictModes no", "UsePAM no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE", "",
    ]))  # fmt: skip
    log = root / "sshd.log"
    with open(log, "ab") as f:
        proc = subprocess.Popen([sshfarm.SSHD, "-D", "-e", "-f", str(cfg), "-p", str(port)], stdout=f, stderr=subprocess.STDOUT)  # noqa: S603
    fk.wait_banner("127.0.0.1", port)
    return proc, port, log


def test_changed_host_key_mitm_gets_no_credentials_and_nothing_uploaded(farm, tmp_path, tflite_models):
    """Proves: when another server answers at a board's address with a different host key, deploy refuses it
    before authenticating (the impostor, which would accept our key, logs a connection but no public-key
    attempt), uploads nothing, names the board, says how to re-trust it (`edgeq devices trust NAME --replace`),
    and the other board deploys."""
    real = farm.boards[0]
    proc, port, log = _impostor(farm, tmp_path / "impostor")
    try:
        kh = tmp_path / "kh"
        kt, b64 = real.host_pub.split()[:2]
        kh.write_text(f"[127.0.0.1]:{port} {kt} {b64}\n" + Path(str(farm.known_hosts)).read_text())  # trusted: the real board
        dev = write_devices(
            tmp_path,
            board_entry(farm, real, tmp_path, "pi", port=port, known_hosts=str(kh)),
            board_entry(farm, farm.boards[1], tmp_path, "ok", known_hosts=str(kh)),
        )
        code, doc, err = run_json("deploy", tflite_models["dense_a"], "-t", "all", "--devices", dev)
        assert code == ExitCode.FLEET
        r = by_device(doc)
        assert r["ok"]["status"] == "changed"
        pi = r["pi"]
        assert pi["kind"] == "host_key_changed" and pi["error"].startswith("pi: ") and "CHANGED" in pi["error"], pi
        assert "man-in-the-middle" in pi["error"] and "edgeq devices trust pi --replace" in pi["hint"]
        assert sshfarm.fingerprint_of(Path(str(real.host_key) + ".pub")) in pi["error"]  # what was expected
        assert pi["bytes_uploaded"] == 0 and not (tmp_path / "boards" / "pi").exists()
        code, out, err = run_cli("devices", "check", "pi", "--devices", dev)
        assert code == ExitCode.FLEET and "edgeq devices trust pi --replace" in err and "Traceback" not in err
    finally:
        proc.terminate()
        proc.wait(5)
    text = log.read_text(errors="replace")
    assert "Connection from 127.0.0.1" in text, text  # the client did reach the impostor...
    assert "publickey" not in text and "Accepted" not in text, text  # ...and offered it no key


# --------------------------------------------------------------------------- names and paths


@pytest.mark.parametrize("raw", NASTY)
def test_model_names_with_metacharacters_are_refused_before_upload(farm, tmp_path, tflite_models, raw, canary):
    """Proves: `deploy --name` / `rollback --name` with metacharacters or `..` are refused (exit 3) and nothing
    reaches the board (its work dir is never created)."""
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "w"))
    bad = raw.format(c=canary)
    code, doc, _ = run_json("deploy", tflite_models["dense_a"], "-t", "w", "--name", bad, "--devices", dev)
    assert code == ExitCode.CONFIG and "--name" in (doc["hint"] or "") + doc["message"], doc
    code, doc, _ = run_json("rollback", "-t", "w", "--name", bad, "--devices", dev)
    assert code == ExitCode.CONFIG, doc
    assert not (tmp_path / "boards" / "w").exists()


def test_artifact_path_with_metacharacters_never_reaches_a_shell(farm, tmp_path, tflite_models, canary):
    """Proves: an artifact whose local path is full of metacharacters deploys with --name (the remote file is a
    random temp name, then <sha256>.tflite) and without --name is refused, since its stem is not a valid name."""
    c = canary.name  # a path component cannot hold "/": a relative canary lands in a shell's cwd (checked too)
    d = tmp_path / f"dir $(touch {c}) `touch {c}`"
    d.mkdir()
    art = d / f"m'; touch {c}; echo \".tflite"
    shutil.copy(tflite_models["dense_a"], art)
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "w"))
    code, doc, _ = run_json("deploy", art, "-t", "w", "--devices", dev)
    assert code == ExitCode.CONFIG and "--name" in doc["hint"]
    code, doc, err = run_json("deploy", art, "-t", "w", "--name", "safe", "--devices", dev)
    assert code == 0, (doc, err)
    assert fk.board_state(tmp_path / "boards" / "w", "safe").active_ok


def test_agent_keeps_blob_paths_inside_the_work_dir(farm, tmp_path, tflite_models):
    """Proves, through a real sshd and the shipped agent: an install whose --blob climbs out with `..`, or goes
    through a symlink in W/tmp to a file outside, or whose --name is a path, is refused; the outside files are
    neither moved nor deleted and `current` stays what it was."""
    from edgeq.fleet.board import Board, build_agent
    from edgeq.fleet.transport.factory import open_transport

    dev = write_devices(tmp_path, board_entry(farm, farm.boards[1], tmp_path, "c"))
    w = tmp_path / "boards" / "c"
    good = fleet.deploy(fleet.load_inventory(dev), ["c"], tflite_models["dense_a"], name="m").sha256
    other = tflite_models["dense_b"]
    sha = fk.sha256_of(other)
    climb = tmp_path / "boards" / "outside.part"  # W/tmp/../../outside.part
    shutil.copy(other, climb)
    linked = tmp_path / "linked.part"
    shutil.copy(other, linked)
    (w / "tmp" / "evil.part").symlink_to(linked)
    d = fleet.load_inventory(dev).get("c")
    t = open_transport(d)
    try:
        b = Board(d, t, build_agent())
        b.ensure_agent()
        attempts = [
            (["--name", "m", "--blob", f"{w}/tmp/../../outside.part", "--sha256", sha], "usage"),
            (["--name", "m", "--blob", f"{w}/tmp/evil.part", "--sha256", sha], "usage"),
            (["--name", "m", "--blob", str(linked), "--sha256", sha], "usage"),
            (["--name", "../../escape", "--blob", f"{w}/tmp/evil.part", "--sha256", sha], "invalid_name"),
            (["--name", "..", "--blob", f"{w}/tmp/evil.part", "--sha256", sha], "invalid_name"),
        ]
        for args, kind in attempts:
            with pytest.raises(fleet.BoardError) as ei:
                b.call("install", *args)
            assert ei.value.kind == kind and ei.value.message.startswith("c: "), (args, ei.value.message)
        for args in (["--name", "../m"], ["--name", "m/../../x"]):
            with pytest.raises(fleet.BoardError) as ei:
                b.call("status", *args)
            assert ei.value.kind == "invalid_name"
    finally:
        t.close()
    assert climb.read_bytes() == linked.read_bytes() == other.read_bytes()  # untouched
    assert fk.board_state(w, "m").current == good
    assert not list(tmp_path.rglob("escape*"))


def test_power_command_and_login_fields_are_not_shell_strings(farm, tmp_path, tflite_models, canary):
    """Proves: a power probe command is an argv list run without a shell (`;`, `$(...)` and backquotes in an
    argument stay literal: the bench still runs and the probe reports a parse error), and a user or host
    field holding an injection fails as a login or DNS error naming the board."""
    arg = f"1.5; touch {canary} $(touch {canary}) `touch {canary}`"
    dev = write_devices(
        tmp_path,
        board_entry(farm, farm.boards[2], tmp_path, "pw", power={"probe": "command", "command": ["/bin/echo", arg], "idle_s": 0}),
        board_entry(farm, farm.boards[2], tmp_path, "usr", user=f"root;touch {canary}", retries=1),
        board_entry(farm, farm.boards[2], tmp_path, "hst", host=f"127.0.0.1;touch {canary}", retries=1),
    )
    code, doc, err = run_json(
        "bench", tflite_models["dense_a"], "-t", "all", "--runs", "3", "--min-seconds", "0", "--devices", dev
    )
    r = by_device(doc)
    pw = r["pw"]["results"][0]
    assert pw["ok"] and pw["count"] >= 3, r["pw"]
    assert pw["power"] and pw["power"].get("error") and pw["power"].get("mean_w") is None, pw["power"]
    assert r["usr"]["kind"] == "auth" and r["usr"]["error"].startswith("usr: "), r["usr"]
    assert r["hst"]["kind"] in ("dns", "unreachable") and r["hst"]["error"].startswith("hst: "), r["hst"]


# --------------------------------------------------------------------------- secrets


def _secret_scan(texts: list[str], roots: list[Path], secrets: list[str]) -> list[str]:
    hits = [f"output #{i}: {s!r}" for i, t in enumerate(texts) for s in secrets if s in t]
    for root in roots:
        for p in root.rglob("*") if root.exists() else []:
            if p.is_file() and not p.is_symlink():
                data = p.read_bytes()
                hits += [f"{p}: {s!r}" for s in secrets if s.encode() in data]
    return hits


def _debug_run(*args) -> list[str]:
    """`edgeq --debug ...` in its own process: with --debug an error escapes as a traceback, so not in-process."""
    p = subprocess.run([sys.executable, "-m", "edgeq", "--debug", *map(str, args)], capture_output=True, text=True,  # noqa: S603
                       timeout=300, cwd=fk.REPO)  # fmt: skip
    return [p.stdout, p.stderr]


def test_passphrase_and_key_never_in_outputs_logs_or_files(farm, tmp_path, tflite_models, monkeypatch):
    """Proves: with a passphrase-protected key whose passphrase comes from ${EDGEQ_*}, neither the passphrase,
    nor a wrong one, nor the private key's bytes appear in stdout/stderr (tables, --json, --debug) of list, check,
    deploy, bench and rollback, in any file under the edgeq home or the board's work dir; a devices.yaml that
    substitutes the passphrase where a variable NAME belongs is refused without echoing the value."""
    secret = farm.enc_passphrase
    wrong = "wrong-" + uuid.uuid4().hex
    key_body = "".join(Path(str(farm.enc_key)).read_text().splitlines()[1:-1])
    secrets = [secret, wrong, key_body[20:80], "PRIVATE KEY"]
    enc = dict(key_file=str(farm.enc_key), key_passphrase_env="EDGEQ_TEST_KEY_PASS")
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[1], tmp_path, "enc", **enc), local=True)
    monkeypatch.setenv("EDGEQ_TEST_KEY_PASS", secret)
    outs: list[str] = []
    runs = [
        ("devices", "list"),
        ("devices", "check"),
        ("deploy", tflite_models["dense_a"], "-t", "all", "--name", "m"),
        ("deploy", tflite_models["dense_b"], "-t", "all", "--name", "m"),
        ("rollback", "-t", "all", "--name", "m", "--undo-rollback"),  # run twice below: the second undoes the first
        ("bench", tflite_models["dense_a"], "-t", "all", "--runs", "3", "--min-seconds", "0"),
    ]
    for args in runs:
        for extra in ((), ("--json",)):
            code, out, err = run_cli(*args, "--devices", dev, *extra)
            assert code == 0, (args, out, err)
            outs += [out, err]
    outs += _debug_run("devices", "check", "--devices", dev)

    monkeypatch.setenv("EDGEQ_TEST_KEY_PASS", wrong)  # a wrong passphrase: an auth error, still no echo
    for extra in ((), ("--json",)):
        code, out, err = run_cli("deploy", tflite_models["dense_a"], "-t", "enc", "--devices", dev, *extra)
        assert code == ExitCode.FLEET and "enc: cannot use key file" in err and "EDGEQ_TEST_KEY_PASS" in err, err
        outs += [out, err]
    outs += _debug_run("devices", "check", "enc", "--devices", dev)
    assert "EDGEQ_TEST_KEY_PASS" in outs[-1] and "Traceback" in outs[-1]  # --debug shows the traceback, not the value

    misuse = tmp_path / "misuse.yaml"  # the value substituted where the variable's NAME belongs
    misuse.write_text("devices:\n  - {name: x, host: h, key_passphrase_env: '${EDGEQ_TEST_KEY_PASS}'}\n")
    code, out, err = run_cli("devices", "list", "--devices", misuse, "--json")
    assert code == ExitCode.CONFIG and "${EDGEQ_TEST_KEY_PASS}" in out, out
    outs += [out, err]

    roots = [Path(os.environ["EDGEQ_HOME"]), tmp_path / "boards"]
    assert _secret_scan(outs, roots, secrets) == []
    assert any("EDGEQ_TEST_KEY_PASS" in o for o in outs)  # the variable's name is config and may be shown


@pytest.mark.slow
def test_pipeline_run_with_encrypted_key_keeps_secrets_out_of_logs_manifest_and_history(
    farm, tmp_path, tflite_models, edgeq, write_pipeline, home
):
    """Proves: a whole `edgeq run` that deploys and benchmarks over SSH with a passphrase-protected key leaves
    the passphrase and key out of its log (stderr), its --json, the run folder (manifest, raw samples) and the
    SQLite history."""
    secret = farm.enc_passphrase
    dev = write_devices(
        tmp_path,
        board_entry(farm, farm.boards[0], tmp_path, "enc", key_file=str(farm.enc_key), key_passphrase_env="EDGEQ_TEST_KEY_PASS"),
    )
    pipe = write_pipeline({
        "devices": str(dev), "deploy": {"targets": ["enc"], "variants": ["int8"]},
        "benchmark": {"variants": ["int8"], "runs": 5, "warmup": 1, "min_seconds": 0, "threads": [1]},
    })  # fmt: skip
    db = tmp_path / "history.db"
    outs = []
    for extra in ((), ("--json",)):
        r = edgeq("run", pipe, *extra, env={"EDGEQ_TEST_KEY_PASS": secret, "EDGEQ_HISTORY_DB": str(db)})
        assert r.code == 0, r.stderr[-2000:]
        outs += [r.stdout, r.stderr]
    key_body = "".join(Path(str(farm.enc_key)).read_text().splitlines()[1:-1])
    assert db.is_file() and (home / "runs").is_dir()
    assert _secret_scan(outs, [home, tmp_path / "boards", db.parent], [secret, key_body[20:80], "PRIVATE KEY"]) == []
