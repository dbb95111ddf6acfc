"""One board session: a connected transport plus the agent on it, and agent results as data.

Agent failures become BoardErrors with a kind and a next step; nothing here prints.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from edgeq.agent import AgentOutputError, build_zipapp, parse_agent_output
from edgeq.fleet import paths
from edgeq.fleet.agentdoc import read_agent_doc
from edgeq.fleet.base import BoardError, Progress, Transport
from edgeq.fleet.inventory import DeviceSpec
from edgeq.hashing import file_sha256
from edgeq.records.fleet import AgentDoc

TMP_DIR = "tmp"  # W/tmp on the board: the agent accepts --blob only from there (or the blob store)
_KILLED_HINT = "the agent was killed (out of memory? someone stopped it?); check `dmesg` on the board and retry"
_CRASH_HINT = (
    "the board's TFLite runtime cannot run this model (tflite-runtime 2.14 on arm64 crashes on per-channel int8 "
    "FULLY_CONNECTED): quantize the variant with per_channel: false, or install ai-edge-litert on the board"
)
# what Python's faulthandler (enabled by the agent) prints when the process dies of a fatal signal
_FATAL = re.compile(r"Fatal Python error: (Segmentation fault|Bus error|Illegal instruction|Floating-point exception|Aborted)")
_FATAL_IN = re.compile(r'File "[^"]*", line \d+ in (\w+)')


@dataclass(frozen=True)
class AgentBundle:
    """The zipapp built on this machine, shipped to W/agent/<file name> on each board."""

    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name


def build_agent(dest: Path | None = None) -> AgentBundle:
    p = Path(build_zipapp(dest or paths.agent_cache_dir()))
    return AgentBundle(p, file_sha256(p))


class Board:
    def __init__(self, device: DeviceSpec, transport: Transport, agent: AgentBundle):
        self.device = device
        self.t = transport
        self.agent = agent
        self.workdir = self._resolve_workdir(str(device.workdir))
        self.agent_path = f"{self.workdir}/agent/{agent.filename}"
        self.bytes_uploaded = 0

    def _resolve_workdir(self, w: str) -> str:
        # the remote shell never sees "~" (every argument is quoted), so resolve it here
        if w == "~" or w.startswith("~/"):
            return self.t.home().rstrip("/") + w[1:]
        if not w.startswith("/"):
            return self.t.home().rstrip("/") + "/" + w
        return w.rstrip("/") or "/"

    @property
    def name(self) -> str:
        return self.device.name

    def ensure_agent(self) -> int:
        """Upload the agent zipapp unless the same file is already there; bytes uploaded."""
        size = self.agent.path.stat().st_size
        if self.t.size(self.agent_path) == size:  # the name carries the content hash
            return 0
        self.t.makedirs(f"{self.workdir}/agent")
        tmp = f"{self.workdir}/agent/.{secrets.token_hex(6)}.part"
        try:
            sent = self.t.put_file(self.agent.path, tmp)
            self.t.rename(tmp, self.agent_path)
        except BaseException:
            self.t.remove(tmp)  # best effort, never raises
            raise
        self.bytes_uploaded += sent
        return sent

    def upload_tmp(self, local: Path, suffix: str = ".part", callback: Progress | None = None) -> str:
        """Upload to W/tmp/<random><suffix>; the caller installs or removes it."""
        self.t.makedirs(f"{self.workdir}/{TMP_DIR}")
        remote = f"{self.workdir}/{TMP_DIR}/{secrets.token_hex(8)}{suffix}"
        try:
            self.bytes_uploaded += self.t.put_file(local, remote, callback)
        except BaseException:
            self.t.remove(remote)
            raise
        return remote

    def call(self, sub: str, *args: str, timeout: float | None = None) -> AgentDoc:
        """Run `python AGENT sub --workdir W args...` and return its success document as a record."""
        argv = [str(self.device.python), self.agent_path, sub, "--workdir", self.workdir, *map(str, args)]
        rc, out, err = self.t.run(argv, timeout or self.device.command_timeout)
        return read_agent_doc(self.name, sub, self.interpret(sub, rc, out, err))

    def interpret(self, sub: str, rc: int, out: str, err: str) -> dict:
        """The agent's success document as sent (ok true); every failure raises a BoardError."""
        py = self.device.python
        tail = _tail(err)
        if not out.strip():
            if rc in (126, 127):
                return self._fail(
                    f"cannot run the board's python {py!r} (exit {rc}: {tail or 'not found'})",
                    "install python3 on the board or set python: in devices.yaml to its interpreter's path",
                    kind="no_python",
                )
            crash = _FATAL.search(err)
            if crash and (rc < 0 or rc >= 128):
                where = _FATAL_IN.findall(err[crash.end() :])
                return self._fail(
                    f"agent {sub} crashed ({crash.group(1).lower()}) inside the board's TFLite runtime"
                    + (f" in {where[0]}()" if where else "")
                    + f" (python {py})",
                    _CRASH_HINT,
                    kind="runtime_crash",
                )
            if rc < 0 or rc >= 128:
                sig = -rc if rc < 0 else rc - 128
                how = f"signal {sig}" if rc != -1 else "it died without an exit status: a signal, or the session ended"
                return self._fail(f"agent {sub} was killed before reporting a result ({how})", _KILLED_HINT, kind="agent_killed")
            return self._fail(
                f"agent {sub} printed no result (exit {rc}){': ' + tail if tail else ''}",
                "check that python: in devices.yaml is Python 3.9+ on the board",
                kind="bad_output",
            )
        try:
            doc = parse_agent_output(out, err, rc)
        except AgentOutputError as e:
            return self._fail(
                f"{sub}: {e}",
                "check that python: in devices.yaml is Python 3.9+ (not a wrapper that prints)",
                kind="bad_output",
            )
        if doc.get("ok") is True:
            return doc
        return self._agent_failure(sub, rc, doc)

    def _agent_failure(self, sub: str, rc: int, doc: dict) -> dict:
        kind = str(doc.get("kind") or "agent_error")
        error = str(doc.get("error") or f"exit {rc}")
        extra = {k: v for k, v in doc.items() if k not in ("ok", "kind", "error", "protocol") and _jsonable(v)}
        hint = {
            "no_runtime": "install a TFLite runtime on the board: pip install ai-edge-litert (or tflite-runtime with numpy<2)",
            "sha_mismatch": "the upload was corrupted in transit; deploy again",
            "unloadable": "the board's runtime cannot load this model (an op or op version it lacks); "
            "upgrade the runtime or build a compatible variant",
            "locked": "another benchmark holds the board; wait or raise lock_timeout in devices.yaml",
            "not_found": "deploy the model first (edgeq deploy ...)",
            "no_previous": "there is no previous version on the board to roll back to",
            "delegate_missing": "install the delegate library on the board or set delegate: none",
            "bad_input": "check --inputs matches the model's input shape and dtype",
        }.get(kind)
        if kind == "unloadable" and isinstance(doc.get("crash"), dict):
            hint = _CRASH_HINT
        if kind == "os_error" and doc.get("errno") in ("ENOSPC", "EDQUOT"):
            kind, hint = "disk_full", f"free space on the board under {self.workdir} (old models: W/models/NAME/)"
        elif kind == "os_error":
            hint = f"check permissions and space under {self.workdir} on the board"
        what = f"agent {sub} failed: {error}"
        if kind == "unloadable" and doc.get("op"):
            what += f" (op {doc['op']}, runtime {_rt(doc.get('runtime'))})"
        return self._fail(what, hint, kind=kind, **extra)

    def _fail(self, message: str, hint: str | None, *, kind: str, **extra) -> dict:
        raise BoardError(self.name, message, hint, kind=kind, **extra)


def _rt(r) -> str:
    if isinstance(r, dict):
        return f"{r.get('name')} {r.get('version') or ''}".strip()
    return str(r)


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _tail(text: str, n: int = 300) -> str:
    text = text.strip()
    return ("..." + text[-n:]) if len(text) > n else text
