"""The on-device agent, seen from the orchestrator: build the zipapp, parse what it prints.

The agent itself (agent.py and its sibling modules) runs alone on boards with stdlib + numpy + a TFLite
runtime; this file is the orchestrator side and may use the rest of edgeq. Keep it light: the CLI imports it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

from .codes import EXIT_CODES, NAME_PATTERN, PROTOCOL

__all__ = [
    "AGENT_MODULES",
    "EXIT_CODES",
    "NAME_PATTERN",
    "PROTOCOL",
    "AgentOutputError",
    "agent_bytes",
    "agent_sha256",
    "build_zipapp",
    "parse_agent_output",
]

# Modules shipped to boards, packaged as edgeq_agent/<module> in the zipapp. They import only each other.
# Not shipped: this file (the orchestrator side).
AGENT_MODULES = (
    "agent.py",
    "benchctl.py",
    "boardfs.py",
    "boardstate.py",
    "codes.py",
    "control.py",
    "facts.py",
    "floor.py",
    "inputs.py",
    "loadcheck.py",
    "measure.py",
    "numeric.py",
    "opstats.py",
    "power.py",
    "profile.py",
    "runtimes/__init__.py",
    "runtimes/interpreter.py",
    "runtimes/litert.py",
    "runtimes/litert_capi.py",
    "runtimes/litert_compiled.py",
    "runtimes/tensorflow.py",
    "runtimes/tflite_runtime.py",
)
MAX_OUTPUT_CHARS = 64 * 1024 * 1024  # a bench with ~1M raw samples; anything larger is not the agent talking
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed mtimes: the same source gives the same bytes and sha
_SHEBANG = b"#!/usr/bin/env python3\n"
# The zipapp's entry point: syntax every Python 2.7+ parses, so an old interpreter gets a document naming
# the version the agent needs instead of a SyntaxError from modules written for 3.7+.
_MAIN = b"""import sys
if sys.version_info < (3, 7):
    import json
    v = "%d.%d.%d" % tuple(sys.version_info[:3])
    sys.stdout.write(json.dumps({"ok": False, "protocol": 1, "kind": "old_python", "python": v, "needs": "3.7",
        "error": "edgeq's board agent needs Python 3.7 or newer; " + (sys.executable or "python") + " is Python " + v}) + "\\n")
    sys.exit(12)
from edgeq_agent.agent import run
sys.exit(run())
"""
_PKG_INIT = b'"""edgeq board agent (zipapp copy of edgeq/agent)."""\n'


class AgentOutputError(ValueError):
    """The agent's stdout is not one JSON object with a boolean "ok" (crash, truncation, banner noise...)."""

    def __init__(self, message: str, *, excerpt: str = "", returncode: int | None = None, stderr_tail: str = ""):
        super().__init__(message)
        self.excerpt = excerpt
        self.returncode = returncode
        self.stderr_tail = stderr_tail


def agent_bytes() -> bytes:
    """The zipapp's exact bytes (stored, sorted, fixed timestamps and modes)."""
    here = Path(__file__).parent
    buf = io.BytesIO()
    buf.write(_SHEBANG)
    files = [("__main__.py", _MAIN), ("edgeq_agent/__init__.py", _PKG_INIT)]
    files += [("edgeq_agent/" + m, (here / m).read_bytes()) for m in AGENT_MODULES]
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for arcname, data in sorted(files):
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the build host
            zf.writestr(info, data)
    return buf.getvalue()


def agent_sha256() -> str:
    """sha256 of the zipapp built from the current source."""
    return hashlib.sha256(agent_bytes()).hexdigest()


def build_zipapp(dest_dir: Path) -> Path:
    """Write dest_dir/edgeq-agent-<sha12>.pyz (atomically) unless an identical one is there; return its path."""
    data = agent_bytes()
    sha = hashlib.sha256(data).hexdigest()
    dest_dir = Path(dest_dir)
    path = dest_dir / ("edgeq-agent-" + sha[:12] + ".pyz")
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha:
        return path
    dest_dir.mkdir(parents=True, exist_ok=True)
    # a name of its own per call: threads of one process (one per board) may build at the same time
    fd, name = tempfile.mkstemp(prefix="." + path.name + ".tmp.", dir=dest_dir)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o755)  # noqa: S103 - an executable zipapp (shebang), readable by all like any program
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _excerpt(text: str, limit: int = 200) -> str:
    text = text.strip()
    short = text[:limit] + ("…" if len(text) > limit else "")
    return repr(short)


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _decode_object(text: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def parse_agent_output(stdout: str, stderr: str, returncode: int) -> dict:
    """The agent's JSON object (ok true or false). Raises AgentOutputError, and only that, when there is none.

    Lines before the object (a login banner, a library's print) are tolerated: the agent prints its object
    as the last line. A success object with a positive exit code is rejected as inconsistent.
    """
    try:
        out = _as_text(stdout)
        err_tail = _as_text(stderr).strip()[-500:]
        try:
            code = int(returncode) if returncode is not None else None
        except (TypeError, ValueError):
            code = None
    except Exception as exc:  # str() of an exotic object failed
        raise AgentOutputError("agent output unreadable: " + type(exc).__name__) from None

    def fail(what: str, text: str = "") -> AgentOutputError:
        where = "exit code " + str(code)
        if code is not None and code < 0:
            where = "killed by signal " + str(-code)
        msg = "agent " + what + " (" + where + ")"
        if text:
            msg += "; stdout: " + _excerpt(text)
        if err_tail:
            msg += "; stderr: " + _excerpt(err_tail[-300:], 300)
        return AgentOutputError(msg, excerpt=_excerpt(text) if text else "", returncode=code, stderr_tail=err_tail)

    if len(out) > MAX_OUTPUT_CHARS:
        raise fail("printed " + str(len(out)) + " characters on stdout, more than the " + str(MAX_OUTPUT_CHARS) + " limit", out)
    if not out.strip():
        raise fail("printed nothing on stdout")
    doc = _decode_object(out.strip())
    if not isinstance(doc, dict):
        for line in reversed(out.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                doc = _decode_object(line)
                break
            if '{"ok"' in line:  # shell noise without a newline, then the object (it starts with "ok")
                doc = _decode_object(line[line.index('{"ok"') :])
                break
    if doc is None:
        raise fail("did not print a JSON object (truncated or garbage output)", out)
    if not isinstance(doc, dict):
        raise fail("printed JSON that is not an object", out)
    if not isinstance(doc.get("ok"), bool):
        raise fail('printed a JSON object without a boolean "ok"', out)
    # a success object followed by death by a signal (code < 0: killed, or the session lost its exit
    # status) is complete: the agent prints it only after its work is durable. A positive code is not.
    if doc["ok"] and code not in (0, None) and code > 0:
        raise fail("reported success but exited non-zero", out)
    if not doc["ok"] and not isinstance(doc.get("kind"), str):
        raise fail('reported failure without a "kind"', out)
    return doc
