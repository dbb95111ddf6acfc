"""An OpenSSH client config can run code: `Match exec` (paramiko runs it through invoke during a lookup) and
ProxyCommand. edgeq refuses both, judged on paramiko's own tokens (shlex: quotes, `!`, `=`), so no spelling
runs its command on `edgeq devices list` or `devices check`; a real sshd board shows the clean config stays
usable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeq.errors import ExitCode
from edgeq.testing.fleet import board_entry, run_cli, write_devices

# each line below is planted in a config edgeq reads; {cmd} creates the canary file
EXEC_SPELLINGS = {
    "plain": 'Match exec "{cmd}"',
    "quoted_keyword": 'Match "exec" "{cmd}"',
    "split_quotes": "Match ex'ec' \"{cmd}\"",
    "negated_quoted": 'Match !"exec" "{cmd}"',
    "negated": 'Match !exec "{cmd}"',
    "upper_case": 'Match EXEC "{cmd}"',
    "equals": 'Match="exec" "{cmd}"',
    "after_host": 'Match host "*" exec "{cmd}"',
    "after_all_host": 'Match originalhost * "ex"ec "{cmd}"',
}
PROXY_SPELLINGS = {
    "host_block": "Host *\n  ProxyCommand {cmd}",
    "equals_quoted": 'Host *\n  proxycommand="{cmd}"',
    "match_host": "Match host *\n  PROXYCOMMAND {cmd}",
}


def _plant(tmp_path: Path, farm, text: str) -> tuple[Path, Path]:
    """devices.yaml (one real board) whose ssh_config holds `text`; returns (devices.yaml, canary path)."""
    canary = tmp_path / "canary"
    cmd = f"touch {canary}"
    cfg = tmp_path / "ssh_config"
    cfg.write_text("# lab\nHost unrelated\n  User nobody\n\n" + text.format(cmd=cmd) + "\n  User x\n")
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "pi", ssh_config=str(cfg)))
    return dev, canary


@pytest.mark.parametrize("spelling", sorted(EXEC_SPELLINGS))
def test_match_exec_never_runs_in_any_spelling(farm, tmp_path, spelling):
    """Proves: a `Match exec` line, however paramiko's shlex tokenizer would read it, is refused at load with
    its file:line and what to do, and its command never runs (`devices list`, `devices check`)."""
    dev, canary = _plant(tmp_path, farm, EXEC_SPELLINGS[spelling])
    for cmd in (("devices", "list"), ("devices", "check")):
        code, out, err = run_cli(*cmd, "--devices", dev)
        assert not canary.exists(), f"{spelling}: `edgeq {' '.join(cmd)}` ran the Match exec command"
        assert code == ExitCode.CONFIG, (spelling, code, out, err)
        assert f"{tmp_path / 'ssh_config'}:5" in err and "Match exec" in err, err
        assert "ssh_config: none" in err and "Traceback" not in err, err


def test_match_exec_in_an_included_file_is_refused(farm, tmp_path):
    inc = tmp_path / "conf.d" / "lab"
    inc.parent.mkdir()
    canary = tmp_path / "canary"
    inc.write_text(f"Host *\n  User x\nMatch \"exec\" 'touch {canary}'\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Include {inc.parent}/*\n")
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "pi", ssh_config=str(cfg)))
    code, _, err = run_cli("devices", "list", "--devices", dev)
    assert code == ExitCode.CONFIG and f"{inc}:3" in err and not canary.exists(), err


@pytest.mark.parametrize("spelling", sorted(PROXY_SPELLINGS))
def test_proxycommand_never_runs(farm, tmp_path, spelling):
    dev, canary = _plant(tmp_path, farm, PROXY_SPELLINGS[spelling])
    for cmd in (("devices", "list"), ("devices", "check")):
        code, out, err = run_cli(*cmd, "--devices", dev)
        assert not canary.exists(), f"{spelling}: `edgeq {' '.join(cmd)}` ran the ProxyCommand"
        assert code == ExitCode.CONFIG and "ProxyCommand" in err and "ProxyJump" in err, (code, out, err)
        assert f"{tmp_path / 'ssh_config'}:6" in err, err


def test_a_clean_config_with_match_host_still_connects(farm, tmp_path):
    """The refusal is about exec only: Match host/originalhost/user blocks keep working against a real board."""
    b = farm.boards[0]
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f'Match originalhost "pi-alias" host pi-alias\n  HostName 127.0.0.1\n  Port {b.port}\n')
    dev = write_devices(tmp_path, board_entry(farm, b, tmp_path, "pi", host="pi-alias", port=None, ssh_config=str(cfg)))
    code, out, err = run_cli("devices", "check", "--devices", dev)
    assert code == ExitCode.OK, (out, err)


def test_the_lookup_guard_refuses_exec_even_past_the_load_check(tmp_path):
    """The second lock: paramiko's own parse of a `Match "exec"` line, looked up through edgeq's guarded class
    (as if the load-time check had been skipped), refuses before paramiko evaluates the criterion."""
    from edgeq.errors import ConfigError
    from edgeq.fleet.transport import sshconfig

    canary = tmp_path / "canary"
    cfg = sshconfig._guarded_config_class().from_text(f"Match host * !\"exec\" 'touch {canary}'\n  User x\n")
    with pytest.raises(ConfigError, match="Match exec"):
        cfg.lookup("board")
    assert not canary.exists()
