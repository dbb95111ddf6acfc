"""OpenSSH client config -> DeviceSpec: aliases, devices.yaml precedence, ProxyJump hops, refused directives."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeq.errors import ConfigError
from edgeq.fleet.inventory.devices import load_inventory
from edgeq.fleet.transport import sshconfig

CONFIG = """\
# lab
Host bastion bastion.lab
    HostName 192.0.2.1
    Port 2222
    User jumper
    IdentityFile ~/.ssh/id_jump

Host inner
    HostName 10.9.0.1
    ProxyJump bastion

Host pi-*
    User pi
    ProxyJump bastion
    ConnectTimeout 7

Host pi-01
    HostName 10.0.0.11
    Port 2200

Host deep
    ProxyJump inner

Host *
    IdentityFile {key}
"""


def _setup(tmp_path: Path, devices: str, config: str = CONFIG) -> Path:
    key = tmp_path / "id_fleet"
    key.write_text("not read by these tests\n")
    (tmp_path / "ssh_config").write_text(config.format(key=key))
    p = tmp_path / "devices.yaml"
    p.write_text("defaults: {ssh_config: ssh_config}\ndevices:\n" + devices)
    return p


def _one(tmp_path: Path, devices: str, config: str = CONFIG):
    return load_inventory(_setup(tmp_path, devices, config)).devices[0]


def test_alias_resolves_hostname_port_user_key_timeout_and_jump(tmp_path):
    d = _one(tmp_path, "  - {name: a, host: pi-01}\n")
    assert (d.host, d.alias, d.port, d.user, d.connect_timeout) == ("10.0.0.11", "pi-01", 2200, "pi", 7.0)
    assert d.key_file == str(tmp_path / "id_fleet")  # Host * applies (first IdentityFile that exists)
    (hop,) = d.jump
    assert (hop.name, hop.host, hop.port, hop.user) == ("bastion", "192.0.2.1", 2222, "jumper")
    assert hop.key_file == str(tmp_path / "id_fleet")  # ~/.ssh/id_jump does not exist; Host * names the fleet key
    assert hop.label == "bastion (192.0.2.1:2222)" and d.route == "via bastion"
    assert d.ssh_config == str(tmp_path / "ssh_config")
    assert d.agent_fallback and hop.agent  # as ssh: an IdentityFile from the config adds to the agent's keys


def test_identity_files_missing_skipped_and_identities_only(tmp_path):
    d = _one(tmp_path, "  - {name: a, host: b}\n", config="Host b\n  IdentityFile ~/nonexistent_key_4f1\n")
    assert d.key_file is None and not d.agent_fallback  # a missing IdentityFile is skipped, as ssh does
    d = _one(tmp_path, "  - {name: a, host: b}\n", config="Host b\n  IdentitiesOnly yes\nHost *\n  IdentityFile {key}\n")
    assert d.key_file == str(tmp_path / "id_fleet") and not d.agent_fallback


def test_devices_yaml_values_win(tmp_path):
    d = _one(tmp_path, "  - {name: a, host: pi-01, port: 22, user: root, connect_timeout: 3, key_file: k, proxy_jump: none}\n")
    assert (d.host, d.port, d.user, d.connect_timeout, d.key_file, d.jump) == (
        "10.0.0.11",
        22,
        "root",
        3.0,
        str(tmp_path / "k"),
        (),
    )


def test_devices_yaml_key_file_is_the_only_key(tmp_path):
    assert not _one(tmp_path, "  - {name: a, host: pi-01, key_file: k}\n").agent_fallback


def test_defaults_count_as_devices_yaml_values(tmp_path):
    p = _setup(tmp_path, "  - {name: a, host: pi-01}\n")
    p.write_text(p.read_text().replace("{ssh_config: ssh_config}", "{ssh_config: ssh_config, user: admin}"))
    assert load_inventory(p).devices[0].user == "admin"


def test_multi_hop_explicit_and_via_alias_chain(tmp_path):
    inv = load_inventory(
        _setup(
            tmp_path,
            "  - {name: a, host: 10.1.1.1, proxy_jump: 'ops@bastion:2022,[fe80::1]:23, ssh://u@h3'}\n  - {name: b, host: deep}\n",
        )
    )
    a, b = inv.devices
    assert [(h.user, h.host, h.port) for h in a.jump] == [
        ("ops", "192.0.2.1", 2022),
        (getpass.getuser(), "fe80::1", 23),
        ("u", "h3", 22),
    ]
    assert a.route == "via bastion, fe80::1, h3"
    # deep -> ProxyJump inner, whose own ProxyJump is bastion: bastion first, as OpenSSH does
    assert [h.name for h in b.jump] == ["bastion", "inner"] and b.jump[1].host == "10.9.0.1"


def test_unmatched_host_and_disabled_config(tmp_path):
    d = _one(tmp_path, "  - {name: a, host: 10.7.7.7, user: x}\n")
    assert (d.host, d.alias, d.port, d.jump) == ("10.7.7.7", None, 22, ())
    d = _one(tmp_path, "  - {name: a, host: pi-01, ssh_config: none}\n")
    assert (d.host, d.jump, d.ssh_config) == ("pi-01", (), False)
    d = _one(tmp_path, "  - {name: a, host: pi-01, ssh_config: false}\n")
    assert d.host == "pi-01"


def test_default_is_home_ssh_config_if_present(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "devices.yaml").write_text("devices:\n  - {name: a, host: box}\n")
    assert load_inventory(tmp_path / "devices.yaml").devices[0].jump == ()
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host box\n  HostName 10.2.2.2\n  ProxyJump j@gw\n")
    d = load_inventory(tmp_path / "devices.yaml").devices[0]
    assert d.host == "10.2.2.2" and [(h.user, h.host) for h in d.jump] == [("j", "gw")]


def test_include_is_expanded(tmp_path):
    (tmp_path / "extra").write_text("Host box\n  HostName 10.3.3.3\n")
    d = _one(tmp_path, "  - {name: a, host: box}\n", config=f"Include {tmp_path}/extra\n")
    assert d.host == "10.3.3.3"


@pytest.mark.parametrize(
    ("config", "host", "want"),
    [
        ("Host bad\n  ProxyCommand nc %h %p\n", "bad", ["ssh_config:2:", "ProxyCommand", "Host bad", "devices[0] (a)"]),
        ('\n\nMatch exec "true"\n  User x\n', "any", ["ssh_config:3:", "Match exec"]),
        ("Host b\n  ProxyJump not a hop\n", "b", ["ProxyJump hop", "[user@]host[:port]"]),
        ("Host b\n  Port http\n", "b", ["ssh_config:2:", "port 'http'"]),
        ("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n", "a", ["loop"]),
    ],
)
def test_bad_directives_are_config_errors_with_a_location(tmp_path, config, host, want):
    with pytest.raises(ConfigError) as e:
        _one(tmp_path, f"  - {{name: a, host: {host}}}\n", config=config)
    text = f"{e.value.message} {e.value.hint}"
    assert all(w in text for w in want), text
    assert "devices.yaml:" in e.value.message


def test_proxycommand_none_is_fine_and_missing_file_is_named(tmp_path):
    assert _one(tmp_path, "  - {name: a, host: b}\n", config="Host b\n  ProxyCommand none\n").jump == ()
    p = tmp_path / "devices.yaml"
    p.write_text("devices:\n  - {name: a, host: b, ssh_config: nowhere/config}\n")
    with pytest.raises(ConfigError, match="nowhere/config does not exist"):
        load_inventory(p)


def test_jump_and_alias_are_not_devices_yaml_keys(tmp_path):
    with pytest.raises(ConfigError, match="not a devices.yaml key"):
        _one(tmp_path, "  - {name: a, host: b, alias: c}\n")


def test_parse_jump():
    assert sshconfig.parse_jump("none") == []
    assert sshconfig.parse_jump("a, u@b:2 ,[::1]:3") == [(None, "a", None), ("u", "b", 2), (None, "::1", 3)]
    with pytest.raises(ConfigError):
        sshconfig.parse_jump("a:99999")


def test_host_patterns():
    assert sshconfig.host_matches(["pi-*", "!pi-9"], "pi-1") and not sshconfig.host_matches(["pi-*", "!pi-9"], "pi-9")


def test_devices_list_without_a_config_file_imports_no_paramiko(tmp_path):
    """A config file in effect needs paramiko's parser; without one, `devices list` stays light."""
    p = tmp_path / "devices.yaml"
    p.write_text("devices:\n  - {name: pi, host: 10.0.0.9, proxy_jump: 'u@gw'}\n")
    code = (
        "import sys\nfrom edgeq.fleet.inventory.devices import load_inventory\n"
        f"d = load_inventory({str(p)!r}).devices[0]\nprint(d.route, 'paramiko' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)})  # noqa: S603
    assert out.stdout.strip() == "via gw False", out.stderr
