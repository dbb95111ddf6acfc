"""`@revoked` and `@cert-authority` lines in the fleet known_hosts, against real sshd boards.

OpenSSH writes them (ssh-keygen, a lab's configuration management); paramiko cannot parse them and used to
abort every connection with InvalidHostKey. edgeq honours `@revoked` (a revoked key is refused for the hosts
its pattern covers, even where a plain line also lists it) and refuses `@cert-authority` clearly (edgeq does
not verify host certificates) only for the hosts it covers and that have no plain key recorded.
"""

from __future__ import annotations

from pathlib import Path

from edgeq.errors import ExitCode
from edgeq.testing import sshfarm
from edgeq.testing.fleet import board_entry, by_device, run_cli, run_json, write_devices


def _key(board: sshfarm.FarmBoard) -> str:
    return " ".join(board.host_pub.split()[:2])


def _devices(farm, tmp_path: Path, kh: Path) -> Path:
    return write_devices(
        tmp_path,
        board_entry(farm, farm.boards[0], tmp_path, "pi", known_hosts=str(kh)),
        board_entry(farm, farm.boards[1], tmp_path, "ok", known_hosts=str(kh)),
    )


def test_revoked_key_refuses_that_board_only(farm, tmp_path):
    """Proves: a board whose key is @revoked is refused before login (also when a plain line still trusts that
    key), the message names the file:line and says what to do; the other board connects; `devices trust`
    refuses to record a revoked key."""
    pi, ok = farm.boards[0], farm.boards[1]
    kh = tmp_path / "kh"
    kh.write_text(
        f"# fleet\n{pi.known_hosts_line}\n{ok.known_hosts_line}\n@revoked * {_key(pi)}\n"  # still listed: revoked wins
    )
    dev = _devices(farm, tmp_path, kh)
    code, doc, err = run_json("devices", "check", "--devices", dev)
    assert code == ExitCode.FLEET, (doc, err)
    r = by_device(doc)
    assert r["ok"]["healthy"], r["ok"]
    assert r["pi"]["kind"] == "host_key_revoked", r["pi"]
    assert f"{kh}:4" in r["pi"]["error"] and "@revoked" in r["pi"]["error"], r["pi"]
    assert sshfarm.fingerprint_of(Path(str(pi.host_key) + ".pub")) in r["pi"]["error"]
    assert "console" in r["pi"]["hint"] and "devices trust pi --replace" in r["pi"]["hint"], r["pi"]

    kh.write_text(f"{ok.known_hosts_line}\n@revoked [127.0.0.1]:{pi.port} {_key(pi)}\n")  # only the marker
    code, doc, _ = run_json("devices", "check", "--devices", dev)
    r = by_device(doc)
    assert r["ok"]["healthy"] and r["pi"]["kind"] == "host_key_revoked", r
    before = kh.read_text()
    code, doc, err = run_json("devices", "trust", "pi", "--yes", "--devices", dev)
    assert code == ExitCode.FLEET and "@revoked" in doc["message"] and "new host keys" in doc["hint"], (doc, err)
    assert kh.read_text() == before  # nothing recorded


def test_cert_authority_line_is_refused_clearly_and_spares_other_boards(farm, tmp_path):
    """Proves: a @cert-authority line does not break boards it does not cover nor boards with a plain key;
    a board that only it covers is refused with a message saying edgeq checks no host certificates and
    naming `edgeq devices trust`, which then records the board's own key."""
    pi, ok = farm.boards[0], farm.boards[1]
    ca = tmp_path / "ca"
    sshfarm.keygen(ca, comment="lab-ca")
    ca_key = " ".join((tmp_path / "ca.pub").read_text().split()[:2])
    kh = tmp_path / "kh"
    kh.write_text(f"@cert-authority [127.0.0.1]:{pi.port},*.lab {ca_key}\n{ok.known_hosts_line}\n")
    dev = _devices(farm, tmp_path, kh)
    code, doc, err = run_json("devices", "check", "--devices", dev)
    r = by_device(doc)
    assert r["ok"]["healthy"], r["ok"]
    assert r["pi"]["kind"] == "host_key_unknown" and "@cert-authority" in r["pi"]["error"], r["pi"]
    assert f"{kh}:1" in r["pi"]["error"] and "certificate" in r["pi"]["error"], r["pi"]
    assert "edgeq devices trust pi" in r["pi"]["hint"], r["pi"]

    code, doc, err = run_json("devices", "trust", "pi", "--yes", "--devices", dev)
    assert code == 0 and doc["result"] == "added", (doc, err)
    assert kh.read_text().startswith("@cert-authority")  # the CA line is kept
    code, doc, err = run_json("devices", "check", "--devices", dev)
    assert code == 0, (doc, err)


def test_broken_marker_lines_do_not_abort_plain_output(farm, tmp_path):
    """A marker line paramiko could never parse (no key at all) is skipped, as OpenSSH skips it."""
    ok = farm.boards[1]
    kh = tmp_path / "kh"
    kh.write_text(f"@revoked\n@cert-authority *\n{ok.known_hosts_line}\n")
    dev = write_devices(tmp_path, board_entry(farm, ok, tmp_path, "ok", known_hosts=str(kh)))
    code, out, err = run_cli("devices", "check", "--devices", dev)
    assert code == 0, (out, err)


def test_revoked_jump_host_key_refuses_before_the_board(farm, tmp_path):
    """A jump host whose key is @revoked is refused, named as the jump host, and nothing reaches the board."""
    pi, hop = farm.boards[0], farm.boards[1]
    kh = tmp_path / "kh"
    kh.write_text(f"{pi.known_hosts_line}\n{hop.known_hosts_line}\n@revoked [127.0.0.1]:* {_key(hop)}\n")
    jump = f"{sshfarm._user()}@127.0.0.1:{hop.port}"
    dev = write_devices(tmp_path, board_entry(farm, pi, tmp_path, "pi", known_hosts=str(kh), proxy_jump=jump))
    code, doc, err = run_json("devices", "check", "--devices", dev)
    r = by_device(doc)["pi"]
    assert code == ExitCode.FLEET and r["kind"] == "host_key_revoked", (r, err)
    assert r["error"].startswith("pi: via jump host 127.0.0.1:") and f"{kh}:3" in r["error"], r
    assert "jump host on its console" in r["hint"] and not (tmp_path / "boards" / "pi").exists(), r

    kh.write_text(f"{pi.known_hosts_line}\n{hop.known_hosts_line}\n")  # the same route, nothing revoked: it works
    code, doc, err = run_json("devices", "check", "--devices", dev)
    assert code == 0, (doc, err)
