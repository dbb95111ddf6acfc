"""One board session: a connected transport plus the agent on it, and agent results as data.

Agent failures become BoardErrors with a kind and a next step; nothing here prints.
"""

from __future__ import annotations

import json
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from edgeq.agent import AgentOutputError, build_zipapp, parse_agent_output
from edgeq.fleet import paths
from edgeq.fleet.agentdoc import read_agent_doc
from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.preflight import BOOT_RC, PREFLIGHT_SCRIPT, boot_argv
from edgeq.fleet.transport.base import BoardError, Progress, Transport
from edgeq.fleet.transport.remotehome import expand_home
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


def _old_python(python: str, version: str) -> tuple[str, str]:
    return (
        f"the board's python {python!r} is Python {version}: edgeq's agent needs Python 3.7 or newer",
        "point python: in devices.yaml at a Python 3.7+ on the board (Mendel's python3 is 3.7; `ls /usr/bin/python3*`), "
        "or install one, then run `edgeq devices setup` for its TFLite runtime",
    )


def _json_line(out: str) -> tuple[dict, str]:
    """The last line of `out` that is a JSON object, and the other lines (a chatty login shell's text)."""
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].lstrip().startswith("{"):
            try:
                doc = json.loads(lines[i])
            except ValueError:
                continue
            if isinstance(doc, dict):
                return doc, "\n".join(lines[:i] + lines[i + 1 :])
    raise ValueError("no JSON object line")


class Board:
    def __init__(self, device: DeviceSpec, transport: Transport, agent: AgentBundle):
        self.device = device
        self.t = transport
        self.agent = agent
        self.workdir = self._resolve_workdir(str(device.workdir))
        # `~` and $HOME in python: as in workdir: (resolved against the board's home, not ours)
        py = str(device.python)
        self.python = expand_home(py, self.t.home()) if py[:1] in "~$" else py
        self.agent_path = f"{self.workdir}/agent/{agent.filename}"
        self.bytes_uploaded = 0
        self.login_noise: str | None = getattr(transport, "login_noise", None)
        # set by board_session: the work-dir check and agent upload ride on the first agent call (call_ensured)
        self.agent_pending = False

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

    def ensure_agent(self, facts: dict | None = None) -> int:
        """Upload the agent zipapp unless the same content is already there; bytes uploaded.

        The work dir and W/agent are created 0700, and refused when another user owns them or others may
        write them: whoever can write there runs code as this login on every deploy.
        """
        facts = facts or self._preflight()  # `facts`: the work-dir check's document, judged already
        if facts.get("sha256") == self.agent.sha256:
            return 0
        tmp = f"{self.workdir}/agent/.{secrets.token_hex(6)}.part"
        try:
            sent = self.t.put_file(self.agent.path, tmp)
            self.t.rename(tmp, self.agent_path)
        except BaseException:
            self.t.remove(tmp)  # best effort, never raises
            raise
        self.bytes_uploaded += sent
        return sent

    def _preflight(self) -> dict:
        """Run the stdlib check script with the board's python: owners, modes, and the agent's sha256 there."""
        argv = [self.python, "-c", PREFLIGHT_SCRIPT, self.workdir, self.agent_path]
        rc, out, err = self.t.run(argv, min(120.0, self.device.command_timeout))
        return self._judge_preflight(rc, out, err)

    def call_ensured(self, sub: str, *args: str, timeout: float | None = None) -> AgentDoc:
        """ensure_agent() then call(), in one command and one Python process on the board when the agent is in place.

        The board runs the work-dir check; only if the agent there has our sha256 and the work dir, W/agent and
        the agent pass the same owner/mode rules as _check_owner does it run the agent in that process. Anything
        else (agent missing or changed, unsafe owner, old python) comes back as the check's document with exit
        BOOT_RC, and the usual path follows: refuse, or upload the agent, then call(). `devices check` on 100
        boards spent a third of the boards' CPU on the second Python start and channel.
        """
        self.agent_pending = False
        limit = timeout or self.device.command_timeout
        rest = [sub, "--workdir", self.workdir, *map(str, args), *agent_limits(limit, watch_stdin=self.device.transport == "ssh")]
        t0 = time.time()
        rc, out, err = self.t.run(boot_argv(self.python, self.workdir, self.agent_path, self.agent.sha256, rest), limit)
        called = (t0, time.time())  # this host's clock around the call: the board's is compared with it
        if rc == BOOT_RC or rc in (126, 127):
            facts = self._judge_preflight(rc, out, err)  # raises for what the board refused
            self.ensure_agent(facts)
            return self.call(sub, *args, timeout=timeout)
        try:
            noise = _json_line(out)[1]
        except ValueError:
            noise = ""
        if noise and not self.login_noise:  # what the login shell printed before the agent's line
            self.login_noise = noise
        return read_agent_doc(self.name, sub, self.interpret(sub, rc, out, err), called)

    def _judge_preflight(self, rc: int, out: str, err: str) -> dict:
        if rc in (126, 127):
            self._fail(
                f"cannot run the board's python {self.python!r} (exit {rc}: {_tail(err) or 'not found'})",
                f"python {self.python!r} was not found on the board: set python: in devices.yaml to its interpreter, or "
                f"install python3 and python3-venv and run `edgeq devices setup {self.name} --write`",
                kind="no_python",
            )
        try:
            facts, noise = _json_line(out)
            if noise:  # the check script prints one line: the rest came from the login shell
                self.login_noise = noise
            if facts.get("error") == "old_python":
                return self._fail(*_old_python(self.python, str(facts.get("python"))), kind="old_python")
            if "error" in facts:
                full = facts.get("errno") in ("ENOSPC", "EDQUOT")
                return self._fail(
                    str(facts["error"]),
                    f"free space on the board under {self.workdir}"
                    if full
                    else "check workdir: in devices.yaml and its permissions",
                    kind="disk_full" if full else "os_error",
                )
            paths_ = facts["paths"]
            euid = int(facts["euid"])
        except (ValueError, IndexError, KeyError, TypeError):
            return self._fail(
                f"the board's python {self.python!r} did not run edgeq's check of the work dir {self.workdir} "
                f"(exit {rc}): {_tail(err) or _tail(out) or 'no output'}",
                "check that python: in devices.yaml is Python 3.7+ (not a wrapper that prints) and that workdir: "
                "is a directory this login can create",
                kind="bad_output",
            )
        for path in (self.workdir, f"{self.workdir}/agent", self.agent_path):
            st = paths_.get(path)
            if st is not None:
                self._check_owner(path, st, euid)
        return facts

    def _check_owner(self, path: str, st: dict, euid: int) -> None:
        mode, uid = int(st["mode"]), int(st["uid"])
        who = st.get("owner") or str(uid)
        problem = None
        if stat.S_ISLNK(mode):
            problem = "is a symbolic link"
        elif uid != euid:
            problem = f"is owned by {who} (uid {uid}), not by the login user (uid {euid})"
        elif mode & 0o022:
            problem = f"is writable by {'group and others' if mode & 0o022 == 0o022 else 'group' if mode & 0o020 else 'others'}"
        if problem:
            self._fail(
                f"refusing the board's work dir: {path} {problem} (owner {who}, mode {stat.S_IMODE(mode):04o}): "
                "anyone who can write there can replace the agent edgeq runs",
                f"on the board: chown the login user {path} && chmod go-w {path} (or point workdir: elsewhere)",
                kind="unsafe_workdir",
                path=path,
                owner=who,
                mode=f"{stat.S_IMODE(mode):04o}",
            )

    def upload_tmp(self, local: Path, suffix: str = ".part", callback: Progress | None = None) -> str:
        """Upload to W/tmp/<random><suffix>; the caller installs or removes it."""
        if self.agent_pending:  # nothing has checked the work dir yet
            self.agent_pending = False
            self.ensure_agent()
        self.t.makedirs(f"{self.workdir}/{TMP_DIR}")
        remote = f"{self.workdir}/{TMP_DIR}/{secrets.token_hex(8)}{suffix}"
        try:
            self.bytes_uploaded += self.t.put_file(local, remote, callback)
        except BaseException:
            self.t.remove(remote)
            raise
        return remote

    def call(self, sub: str, *args: str, timeout: float | None = None) -> AgentDoc:
        """Run `python AGENT sub --workdir W args...` and return its success document as a record.

        The agent gets its own deadline a little inside ours, so it stops and frees W/lock before we give
        up; over SSH it also stops when our channel closes (we timed out, were interrupted or died).
        """
        if self.agent_pending:
            return self.call_ensured(sub, *args, timeout=timeout)
        limit = timeout or self.device.command_timeout
        argv = [self.python, self.agent_path, sub, "--workdir", self.workdir, *map(str, args)]
        argv += agent_limits(limit, watch_stdin=self.device.transport == "ssh")
        t0 = time.time()
        rc, out, err = self.t.run(argv, limit)
        called = (t0, time.time())  # this host's clock around the call: the board's is compared with it
        return read_agent_doc(self.name, sub, self.interpret(sub, rc, out, err), called)

    def interpret(self, sub: str, rc: int, out: str, err: str) -> dict:
        """The agent's success document as sent (ok true); every failure raises a BoardError."""
        py = self.python
        tail = _tail(err)
        if not out.strip():
            if rc in (126, 127):
                return self._fail(
                    f"cannot run the board's python {py!r} (exit {rc}: {tail or 'not found'})",
                    f"python {self.python!r} was not found on the board: set python: in devices.yaml to its interpreter, or "
                    f"install python3 and python3-venv and run `edgeq devices setup {self.name} --write`",
                    kind="no_python",
                )
            crash = _FATAL.search(err)
            if crash and (rc < 0 or rc >= 128):
                trace = err[crash.end() :]
                # faulthandler lists every thread; the crash is in "Current thread" (not the agent's stdin watcher)
                cur = trace.find("Current thread")
                where = _FATAL_IN.findall(trace[cur:] if cur >= 0 else trace)
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
                "check that python: in devices.yaml is Python 3.7+ on the board",
                kind="bad_output",
            )
        try:
            doc = parse_agent_output(out, err, rc)
        except AgentOutputError as e:
            if rc < 0 or rc >= 128:  # killed mid-write: what it printed is a torn document, not a wrong one
                return self._fail(
                    f"agent {sub} was killed before reporting a complete result (exit {rc}; {e})",
                    _KILLED_HINT,
                    kind="agent_killed",
                )
            if self.login_noise:
                from edgeq.fleet.transport.shelltext import noise_excerpt

                return self._fail(
                    f"the login shell on {self.name} prints {noise_excerpt(self.login_noise)!r} before every command, and "
                    f"the agent's {sub} result could not be read after it ({e})",
                    'make ~/.bashrc quiet for non-interactive shells (`[ -z "$PS1" ] && return` at its top)',
                    kind="login_shell_noise",
                )
            return self._fail(
                f"{sub}: {e}",
                "check that python: in devices.yaml is Python 3.7+ (not a wrapper that prints)",
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
            "no_runtime": f"python {self.python} has no TFLite runtime: run `edgeq devices setup {self.name} --write` "
            "(a venv in the workdir, installed offline from wheels this machine downloads)",
            "sha_mismatch": "the upload was corrupted in transit; deploy again"
            if sub == "install"
            else "the model current on the board is not the one edgeq deployed (another deploy or a changed file): "
            "deploy it again and rerun",
            "load_timeout": "the model did not finish one inference on zeros in time (a loop that never ends?): "
            "check the model, or raise command_timeout in devices.yaml for a very slow board",
            "not_current": "the board's current version is not the one given with --from: check it with "
            "`edgeq deploy` / the last rollback before rolling back again",
            "rolled_back": "the last rollback already happened (a retry?): to undo it on purpose, run `edgeq rollback "
            "--undo-rollback`, or name the version to leave with --from SHA256; to move on, deploy the version you want",
            "deadline": "raise command_timeout in devices.yaml, or check the board (it stopped by itself and freed its lock)",
            "unloadable": "the board's runtime cannot load this model (an op or op version it lacks); "
            "upgrade the runtime or build a compatible variant",
            "locked": "another benchmark holds the board; wait or raise lock_timeout in devices.yaml",
            "not_found": "deploy the model first (edgeq deploy ...)",
            "no_previous": "there is no previous version on the board to roll back to",
            "delegate_missing": "install the delegate library on the board or set delegate: none",
            "bad_input": "check --inputs matches the model's input shape and dtype",
            "old_python": _old_python(self.python, str(doc.get("python")))[1],
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


def runtime_args(d: DeviceSpec, threads: int | None = None, *, delegate: bool = True) -> list[str]:
    """The agent's --threads, --delegate and --lock-timeout for this device (its runtime_opts and lock_opt).

    threads: a count other than the device's (bench measures several); delegate=False for `tensors`, which runs
    the builtin kernels (a delegate fuses ops and keeps no intermediate tensors)."""
    args = ["--threads", str(d.threads if threads is None else threads)]
    args += ["--delegate", d.delegate] if delegate else []
    return [*args, "--lock-timeout", f"{d.lock_timeout:g}"]


def agent_limits(limit: float, *, watch_stdin: bool) -> list[str]:
    """The agent's --deadline (inside the host's command timeout) and --load-timeout (inside that)."""
    deadline = max(1.0, limit - min(5.0, limit * 0.1))
    out = ["--deadline", f"{deadline:g}", "--load-timeout", f"{min(300.0, deadline * 0.8):g}"]
    return out + (["--watch-stdin"] if watch_stdin else [])


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
