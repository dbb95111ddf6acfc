"""`devices setup`'s pure parts: the runtime decision table, wheel platform tags, the devices.yaml line
edit that keeps comments, and `~`/`$HOME` in python:."""

from __future__ import annotations

import pytest
import yaml

from edgeq.errors import ConfigError
from edgeq.fleet.inventory.devices import load_inventory
from edgeq.fleet.inventory.edit import set_device_python
from edgeq.fleet.setup.plan import UnsupportedBoard, choose_runtime, coral_warning, platform_key, wheel_platforms
from edgeq.fleet.transport.remotehome import expand_home, resolve_workdir
from edgeq.records.setup import BoardProbe


def _first(py, arch, glibc):
    c = choose_runtime(py, arch, glibc)
    return c[0].runtime, c[0].requirements, [x.runtime for x in c]


@pytest.mark.parametrize(
    ("py", "arch", "glibc", "runtime", "reqs", "order"),
    [
        # Coral Dev Board (Mendel, Python 3.7) and the farm's pyenv 3.7 board
        ((3, 7), "x86_64", (2, 36), "tflite-runtime", ("tflite-runtime==2.11.0", "numpy>=1.21,<1.22"), ["tflite-runtime"]),
        ((3, 7), "aarch64", (2, 28), "tflite-runtime", ("tflite-runtime==2.11.0", "numpy>=1.21,<1.22"), ["tflite-runtime"]),
        # Raspberry Pi OS Bookworm (3.11, glibc 2.36)
        (
            (3, 11),
            "aarch64",
            (2, 36),
            "tflite-runtime",
            ("tflite-runtime==2.14.0", "numpy<2"),
            ["tflite-runtime", "ai-edge-litert"],
        ),
        # Pi OS Bullseye (3.9, glibc 2.31): 2.14's aarch64 wheels need glibc 2.34
        (
            (3, 9),
            "aarch64",
            (2, 31),
            "tflite-runtime",
            ("tflite-runtime>=2.11,<2.14", "numpy<2"),
            ["tflite-runtime", "ai-edge-litert"],
        ),
        ((3, 8), "arm64", (2, 31), "tflite-runtime", ("tflite-runtime>=2.11,<2.14", "numpy<2"), ["tflite-runtime"]),
        # Ubuntu 24.04 on a Pi (3.12) and newer: no tflite-runtime wheels at all
        ((3, 12), "aarch64", (2, 39), "ai-edge-litert", ("ai-edge-litert",), ["ai-edge-litert"]),
        ((3, 13), "x86_64", (2, 39), "ai-edge-litert", ("ai-edge-litert",), ["ai-edge-litert"]),
    ],
)
def test_runtime_decision_table(py, arch, glibc, runtime, reqs, order):
    assert _first(py, arch, glibc) == (runtime, reqs, order)


def test_too_old_python_and_unknown_arch_are_refused():
    with pytest.raises(UnsupportedBoard, match="Python 3.6 is too old"):
        choose_runtime((3, 6), "aarch64", (2, 28))
    with pytest.raises(UnsupportedBoard, match="riscv64"):
        choose_runtime((3, 11), "riscv64", (2, 36))


def test_wheel_platforms_list_every_glibc_and_the_legacy_aliases():
    p = wheel_platforms("aarch64", (2, 36))
    assert p[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in p and p[-1] == "manylinux2014_aarch64"
    assert "manylinux2010_aarch64" not in p
    x = wheel_platforms("x86_64", (2, 28))
    assert x[-3:] == ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    assert wheel_platforms("aarch64", None)[0] == "manylinux_2_17_aarch64"  # unknown libc: the oldest floor
    assert platform_key("arm64", (2, 36), (3, 11)) == "manylinux_2_36_aarch64-cp311"


def test_coral_warning_names_the_missing_delegate_library():
    bare = BoardProbe(python="3.7.3", arch="aarch64", apex=True)
    assert "libedgetpu1-std" in coral_warning(bare, [], "xnnpack")
    assert coral_warning(bare.replace(edgetpu_lib="/usr/lib/aarch64-linux-gnu/libedgetpu.so.1"), [], "xnnpack") is None
    assert coral_warning(BoardProbe(python="3.11.2", arch="aarch64"), ["coral"], "xnnpack") is not None
    assert coral_warning(BoardProbe(python="3.11.2", arch="aarch64"), ["rpi"], "xnnpack") is None


BLOCK = """\
# lab fleet
defaults:
  user: pi
devices:
  - name: pi5   # the one on the bench
    host: 10.0.0.5
    python: python3  # system python
    tags: [rpi]
  - host: 10.0.0.6
    name: pi4
    tags: [rpi]

  # coral below
  - name: coral
    host: 10.0.0.7
"""


def test_line_edit_replaces_or_inserts_and_keeps_comments():
    out = set_device_python(BLOCK, "pi5", "/home/pi/edgeq/venv/bin/python")
    assert "    python: /home/pi/edgeq/venv/bin/python  # system python\n" in out
    out = set_device_python(out, "pi4", "/home/pi/edgeq/venv/bin/python")
    assert "    name: pi4\n    python: /home/pi/edgeq/venv/bin/python\n" in out
    out = set_device_python(out, "coral", "/home/mendel/edgeq/venv/bin/python")
    assert out.endswith("  - name: coral\n    python: /home/mendel/edgeq/venv/bin/python\n    host: 10.0.0.7\n")
    assert out.count("#") == BLOCK.count("#")
    doc = yaml.safe_load(out)
    assert [d.get("python") for d in doc["devices"]] == [
        "/home/pi/edgeq/venv/bin/python",
        "/home/pi/edgeq/venv/bin/python",
        "/home/mendel/edgeq/venv/bin/python",
    ]
    assert set_device_python(out, "pi5", "/home/pi/edgeq/venv/bin/python") == out  # idempotent


def test_line_edit_of_a_json_flow_item():
    text = 'devices:\n  - {"name": "b1", "host": "127.0.0.1", "python": "python3"}\n# end\n'
    out = set_device_python(text, "b1", "/w/venv/bin/python")
    assert yaml.safe_load(out)["devices"][0]["python"] == "/w/venv/bin/python" and out.endswith("# end\n")
    commented = 'devices:\n  - {"name": "pi", "port": 22}  # set up by hand\n'
    out = set_device_python(commented, "pi", "/root/w/venv/bin/python")
    assert out == 'devices:\n  - {"name": "pi", "port": 22, "python": "/root/w/venv/bin/python"}  # set up by hand\n'


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("devices:\n  - name: a\n    host: x\n  - name: a\n    host: y\n", "defined 2 times"),
        ("devices:\n  - name: b\n", "is not defined"),
        ("defaults: &d\n  user: pi\ndevices:\n  - <<: *d\n    name: a\n", "anchors"),
        ("devices:\n  - name: a\n    python: x\n    python: y\n", "python: twice"),
    ],
)
def test_line_edit_refuses_when_ambiguous(text, why):
    with pytest.raises(ConfigError, match=why):
        set_device_python(text, "a", "/v/bin/python")


def test_home_in_python_is_expanded_like_workdir(tmp_path, monkeypatch):
    assert expand_home("~/venv/bin/python", "/home/pi/") == "/home/pi/venv/bin/python"
    assert expand_home("$HOME/venv/bin/python", "/home/pi") == "/home/pi/venv/bin/python"
    assert expand_home("python3", "/home/pi") == "python3" and expand_home("$HOMEX/p", "/h") == "$HOMEX/p"
    assert resolve_workdir("edgeq", "/home/pi") == "/home/pi/edgeq"
    monkeypatch.setenv("HOME", str(tmp_path))
    f = tmp_path / "devices.yaml"
    f.write_text(
        "devices:\n"
        "  - {name: pi, host: h, python: $HOME/venv/bin/python, workdir: $HOME/w}\n"
        "  - {name: me, transport: local, python: ~/venv/bin/python}\n"
    )
    inv = load_inventory(f)
    assert inv.get("pi").python == "~/venv/bin/python" and inv.get("pi").workdir == "~/w"  # resolved on the board
    assert inv.get("me").python == f"{tmp_path}/venv/bin/python"


def test_setup_records_round_trip_and_omit_unset_keys():
    from edgeq.records.fleet import FleetCounts
    from edgeq.records.setup import SetupOutcome, SetupSummary

    rec = SetupOutcome(device="pi", status="ok", action="unchanged", error=None, runtime="tflite-runtime", wheels=("a.whl",))
    doc = rec.to_json()
    assert doc["runtime"] == "tflite-runtime" and "numpy" not in doc and "written" not in doc
    summary = SetupSummary(ok=True, counts=FleetCounts(ok=1), devices=(rec,), seconds=1.0)
    back = SetupSummary.from_json(summary.to_json())
    assert back.devices[0].to_json() == doc and back.action == "setup"
