"""Set one device's `python:` in devices.yaml by editing a line, so the user's comments and layout stay.

A YAML re-dump would drop every comment; the edit refuses whenever the file's shape makes the right
line ambiguous (the device defined twice, a flow mapping spanning lines, anchors or merge keys).
"""

from __future__ import annotations

import json
import re

from edgeq.errors import ConfigError

_ITEM = re.compile(r"^(?P<indent>\s*)-\s+(?P<rest>.*)$")
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w-]*)\s*:\s*(?P<value>.*?)\s*$")
_UNSAFE = re.compile(r"(^|\s)[&*][\w-]+|<<\s*:")


def _scalar(value: str) -> str:
    v = value.split(" #", 1)[0].strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    return v


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[\w./~$+-]+", value) and value[0] not in "~$" else json.dumps(value)


def set_device_python(text: str, device: str, python: str, where: str = "devices.yaml") -> str:
    """The file's text with `python:` of `device` set (replaced, or inserted after its name line)."""
    if _UNSAFE.search(text):
        raise ConfigError(f"{where}: uses YAML anchors or merge keys; edit python: by hand", f"python: {python}")
    lines = text.splitlines(keepends=True)
    hits = [i for i, ln in enumerate(lines) if _names(ln, device)]
    if len(hits) != 1:
        how = "is not defined" if not hits else f"is defined {len(hits)} times"
        raise ConfigError(f"{where}: device {device!r} {how} as a single `name:` line; edit python: by hand", f"python: {python}")
    i = hits[0]
    line = lines[i]
    item = _ITEM.match(line)
    body = item.group("rest") if item else line.strip()
    if body.startswith("{"):
        return _edit_flow(lines, i, python, where)
    return _edit_block(lines, i, python, where)


def _names(line: str, device: str) -> bool:
    s = line.strip()
    if s.startswith("- "):
        s = s[2:].strip()
    if s.startswith("{"):
        try:
            return json.loads(s).get("name") == device
        except ValueError:
            return bool(re.search(r"\bname['\"]?\s*:\s*['\"]?" + re.escape(device) + r"['\"]?\s*[,}]", s))
    m = _KEY.match(s)
    return bool(m and m.group("key") == "name" and _scalar(m.group("value")) == device)


def _edit_flow(lines: list[str], i: int, python: str, where: str) -> str:
    line = lines[i]
    start, end = line.index("{"), line.rindex("}") + 1
    try:
        doc = json.loads(line[start:end])
    except ValueError:
        raise ConfigError(
            f"{where}:{i + 1}: the device is a flow mapping that is not one JSON line; edit python: by hand"
        ) from None
    doc["python"] = python
    lines[i] = line[:start] + json.dumps(doc) + line[end:].rstrip("\n") + "\n"  # a trailing comment stays
    return "".join(lines)


def _key_col(line: str) -> tuple[int, str]:
    """(column of the mapping key on this line, the text from there)."""
    m = _ITEM.match(line)
    if m:
        rest = m.group("rest")
        return len(m.group("indent")) + 2 + len(rest) - len(rest.lstrip()), rest.lstrip()
    return len(line) - len(line.lstrip()), line.lstrip()


def _edit_block(lines: list[str], i: int, python: str, where: str) -> str:
    """A block mapping: this item's keys are the lines whose key column is that of its `name:`."""
    col, _ = _key_col(lines[i])
    start = i
    while not _ITEM.match(lines[start]):  # `name:` need not be the item's first key
        start -= 1
        if start < 0 or _key_col(lines[start])[0] < col:
            raise ConfigError(f"{where}:{i + 1}: cannot find the list item of this device; edit python: by hand")
    end = len(lines)
    for j in range(i + 1, len(lines)):
        s = lines[j]
        if s.strip() and not s.lstrip().startswith("#") and (len(s) - len(s.lstrip()) < col or _ITEM.match(s)):
            end = j
            break
    found = [j for j in range(start, end) if _is_key(lines[j], col, "python")]
    if len(found) > 1:
        raise ConfigError(f"{where}: device has python: twice (lines {found[0] + 1}, {found[1] + 1}); edit it by hand")
    if found:
        j = found[0]
        c, body = _key_col(lines[j])
        m = _KEY.match(body)
        assert m  # noqa: S101 - _is_key matched it
        head = lines[j][: len(lines[j]) - len(body)]
        lines[j] = head + "python: " + _quote(python) + _comment(m.group("value")) + "\n"
    else:
        lines.insert(i + 1, " " * col + f"python: {_quote(python)}\n")
    return "".join(lines)


def _is_key(line: str, col: int, key: str) -> bool:
    c, body = _key_col(line)
    m = _KEY.match(body)
    return c == col and m is not None and m.group("key") == key


def _comment(value: str) -> str:
    v = value.strip()
    if v.startswith("#"):
        return "  " + v
    return "  #" + v.split(" #", 1)[1] if " #" in v else ""
