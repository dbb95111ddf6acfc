"""edgeq.cli.output.clean: terminal control characters in foreign text are shown, never sent."""

from __future__ import annotations

from edgeq.cli.output import clean


def test_controls_are_escaped_and_text_is_kept():
    assert clean("a\x1b[2Jb\x07\x9b\x7f\r\x00") == "a\\x1b[2Jb\\x07\\x9b\\x7f\\x0d\\x00"
    assert clean("tab\tand\nnewline stay") == "tab\tand\nnewline stay"
    assert clean("plain · ünïcode ✓ 中文 \u00a0nbsp") == "plain · ünïcode ✓ 中文 \u00a0nbsp"


def test_every_c0_c1_control_but_newline_and_tab():
    controls = [c for c in map(chr, range(0xA0)) if clean(c) != c]
    assert controls == [chr(i) for i in (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))]
