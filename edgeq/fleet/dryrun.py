"""`deploy --dry-run` and `rollback --dry-run`: what would change on which board, with nothing sent but reads.

No agent is uploaded and no agent runs: one read-only stdlib script (the board's python, argv quoted like
every command) reads the model's pointers, whether the blob is there, the free space and the agent's hash.
The verdict uses the same rules as the real commands (content-addressed upload, disk margin, --from).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeq.fleet.board import AgentBundle, Board
from edgeq.fleet.deployment import _FREE_MARGIN, check_rollback_args, check_tflite, model_name, undone_rollback
from edgeq.fleet.fanout import ProgressFn
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.operation import FleetOp
from edgeq.fleet.transport.base import BoardError, TransportFactory
from edgeq.hashing import file_sha256
from edgeq.records.fleet import BoardOutcome, FleetSummary

# Reads only. Python 2.7+/3.x syntax: it must report even where the agent would refuse the interpreter.
_READ = """
import hashlib, json, os, re, sys
w, name, sha, agent = sys.argv[1:5]
d = os.path.join(w, "models", name)
def ptr(which):
    try:
        t = open(os.path.join(d, which)).read().strip().lower()
    except (IOError, OSError):
        return None
    return t if re.match("^[0-9a-f]{64}$", t) else None
def note():
    try:
        n = json.load(open(os.path.join(d, "rollback.json")))
    except (IOError, OSError, ValueError):
        return None
    return n if isinstance(n, dict) else None
def digest(p):
    if not os.path.isfile(p):
        return None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
probe = w
while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
    probe = os.path.dirname(probe)
st = os.statvfs(probe)
blob = os.path.join(d, sha + ".tflite") if sha else ""
print(json.dumps({"current": ptr("current"), "previous": ptr("previous"), "rolled_back": note(),
    "have": bool(sha) and digest(blob) == sha, "free_bytes": st.f_bavail * st.f_frsize,
    "agent_sha256": digest(agent), "python": "%d.%d.%d" % tuple(sys.version_info[:3])}))
"""


_UNDO_HINT = "to undo that rollback on purpose: --undo-rollback (or --from SHA256 naming the version to leave)"


def read_state(board: Board, name: str, sha: str = "") -> dict:
    argv = [board.python, "-c", _READ, board.workdir, name, sha, board.agent_path]
    rc, out, err = board.t.run(argv, min(120.0, board.device.command_timeout))
    for line in reversed(out.strip().splitlines()):  # after a chatty login shell's text
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    raise BoardError(
        board.name,
        f"the board's python {board.python!r} could not read the work dir {board.workdir} (exit {rc}): "
        f"{(err or out).strip()[-300:] or 'no output'}",
        "check python: and workdir: in devices.yaml",
        kind="no_python" if rc in (126, 127) else "bad_output",
    )


def _plan_deploy(board: Board, st: dict, sha: str, size: int, agent: AgentBundle) -> BoardOutcome:
    d = board.device
    agent_bytes = 0 if st.get("agent_sha256") == agent.sha256 else agent.path.stat().st_size
    out = BoardOutcome(device=d.name, address=d.address, status="ok", previous=st.get("current"), sha256=sha)
    if st.get("current") == sha:
        return out.replace(action="would do nothing (already current)", current=sha, bytes_uploaded=agent_bytes)
    if st.get("have"):
        return out.replace(status="changed", action="would install the blob already there", bytes_uploaded=agent_bytes)
    free = st.get("free_bytes")
    if isinstance(free, int) and free < size + _FREE_MARGIN:
        return out.replace(
            status="failed",
            kind="disk_full",
            error=f"{d.name}: would fail: {free} bytes free under {board.workdir}, {size} needed",
            hint="free space on the board (old models live in W/models/NAME/)",
        )
    up = size + agent_bytes
    what = f"would upload {size} bytes and install" + (" (and the agent)" if agent_bytes else "")
    return out.replace(status="changed", action=what, model_bytes=size, bytes_uploaded=up)


def deploy_plan(
    inventory: Inventory,
    targets: list[str],
    artifact: Path,
    *,
    name: str | None = None,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
) -> FleetSummary:
    """What `deploy` would do on each board; bytes_uploaded is what it would send."""
    size = check_tflite(artifact)
    name = model_name(artifact, name)
    sha = file_sha256(artifact)
    op = FleetOp(
        inventory.select(targets), parallel=parallel, progress=progress, transport_factory=transport_factory, agent=agent
    )

    def job(d: DeviceSpec) -> BoardOutcome:
        with op.board(d, ensure_agent=False) as board:
            return _plan_deploy(board, read_state(board, name, sha), sha, size, op.agent)

    res = op.run(job)
    return op.summary("deploy", res, artifact=str(artifact), name=name, sha256=sha, size_bytes=size, dry_run=True)


def rollback_plan(
    inventory: Inventory,
    targets: list[str],
    name: str,
    *,
    from_sha: str | None = None,
    undo_rollback: bool = False,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
) -> FleetSummary:
    """What `rollback` would do on each board (the same --from compare-and-swap and --undo-rollback rules)."""
    check_rollback_args(name, from_sha)
    op = FleetOp(
        inventory.select(targets), parallel=parallel, progress=progress, transport_factory=transport_factory, agent=agent
    )

    def job(d: DeviceSpec) -> BoardOutcome:
        with op.board(d, ensure_agent=False) as board:
            st = read_state(board, name)
        cur, prev = st.get("current"), st.get("previous")
        out = BoardOutcome(device=d.name, address=d.address, status="changed", previous=cur, current=prev)
        undo = None if from_sha is not None or undo_rollback else undone_rollback(d.name, name, cur, prev, st.get("rolled_back"))
        if undo is not None:
            out = out.replace(status="failed", current=cur, previous=prev, kind="rolled_back", error=undo, hint=_UNDO_HINT)
        elif from_sha is not None and cur != from_sha:
            again = prev == from_sha
            out = out.replace(
                status="ok" if again else "failed",
                action="would do nothing (already rolled back)" if again else None,
                current=cur,
                previous=prev,
                kind=None if again else "not_current",
                error=None if again else f"{d.name}: would refuse: current is {cur}, not {from_sha}",
            )
        elif prev is None:
            out = out.replace(
                status="failed", current=cur, kind="no_previous", error=f"{d.name}: would fail: no previous version"
            )
        else:
            out = out.replace(action=f"would make {prev[:12]} current again (instead of {(cur or '-')[:12]})")
        return out

    return op.summary("rollback", op.run(job), name=name, dry_run=True)
