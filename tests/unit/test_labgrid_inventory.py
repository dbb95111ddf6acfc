"""devices.yaml `labgrid:`: validation, and how a place's endpoint meets the devices.yaml settings.

Pure logic (no coordinator): the reserving itself is proven against a real one in tests/farm/test_labgrid.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeq.errors import ConfigError
from edgeq.fleet.inventory.devices import load_inventory
from edgeq.fleet.inventory.labgrid import Place, device_for


def _inv(tmp_path: Path, text: str):
    p = tmp_path / "devices.yaml"
    p.write_text(text)
    return load_inventory(p)


LAB = """\
labgrid: {coordinator: "127.0.0.1:20408", place_tags: {board: pi5}, priority: 5, reserve_timeout: 30}
defaults: {python: /usr/bin/python3, known_hosts: kh, tags: [lab]}
devices:
  - {name: pi5-01, threads: 4}
  - {name: any-pi5, place_tags: {board: pi5}, workdir: /srv/edgeq, tags: [pi5]}
"""


def test_labgrid_section_needs_no_devices_and_lists_none_before_the_lease(tmp_path):
    inv = _inv(tmp_path, 'labgrid: {coordinator: "lab:20408"}\n')
    assert inv.devices == () and inv.labgrid is not None
    assert inv.labgrid.places == 1 and inv.labgrid.reserve_timeout == 600 and inv.labgrid.filter_text == "(any place)"


def test_place_takes_its_named_entry_then_a_tag_entry_then_defaults(tmp_path):
    inv = _inv(tmp_path, LAB)
    named = device_for(inv, Place("pi5-01", {"board": "pi5"}, "10.0.0.5", 2222, "pi"))
    assert (named.host, named.port, named.user, named.threads, named.python) == ("10.0.0.5", 2222, "pi", 4, "/usr/bin/python3")
    assert named.workdir == "~/edgeq" and named.tags == ["lab", "labgrid"]
    assert named.known_hosts == str(tmp_path / "kh")  # relative to devices.yaml, as for listed devices
    tagged = device_for(inv, Place("pi5-07", {"board": "pi5", "rack": "2"}, "10.0.0.7", 22, "pi"))
    assert (tagged.workdir, tagged.threads, tagged.tags) == ("/srv/edgeq", 1, ["lab", "pi5", "labgrid"])
    other = device_for(inv, Place("coral-1", {"board": "coral"}, "10.0.0.9", 22, "mendel"))
    assert (other.workdir, other.user, other.tags) == ("~/edgeq", "mendel", ["lab", "labgrid"])


@pytest.mark.parametrize(
    "entry, key",
    [("{name: a, host: 10.0.0.1}", "host"), ("{name: a, port: 2222}", "port"), ("{name: a, user: pi}", "user")],
)
def test_endpoint_keys_are_refused_in_labgrid_mode(tmp_path, entry, key):
    with pytest.raises(ConfigError) as e:
        _inv(tmp_path, f'labgrid: {{coordinator: "lab"}}\ndevices:\n  - {entry}\n')
    assert f"devices[0].{key}: not used with labgrid" in e.value.message and ":3:" in e.value.message


@pytest.mark.parametrize(
    "text",
    [
        'labgrid: {coordinator: "lab", place_tags: {Board: x}}\n',
        'labgrid: {coordinator: "lab", place_tags: {b2: "a b"}}\n',
        'labgrid: {coordinator: "lab", places: 0}\n',
        'labgrid: {coordinator: "lab;rm -rf /"}\n',
        "labgrid: {}\n",
    ],
)
def test_bad_labgrid_settings_are_config_errors(tmp_path, text):
    with pytest.raises(ConfigError) as e:
        _inv(tmp_path, text)
    assert "labgrid" in e.value.message


def test_plain_devices_yaml_is_untouched_by_the_lease(tmp_path):
    """open_inventory is the one way in: a devices.yaml that lists hosts comes out as it is, no coordinator asked."""
    from edgeq.fleet import open_inventory

    inv = _inv(tmp_path, "devices:\n  - {name: b, host: 10.0.0.1}\n")
    with open_inventory(inv, lambda m: pytest.fail(m)) as got:
        assert got is inv
    with open_inventory(tmp_path / "devices.yaml") as got:
        assert got.names == ["b"] and got.labgrid is None
