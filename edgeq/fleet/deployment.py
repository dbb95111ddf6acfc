"""Deploy a TFLite artifact to boards, and roll back.

On each board: agent in place (uploaded only if missing) -> `status` -> nothing to do, install an
existing blob, or upload to W/tmp/*.part and `install`. The agent verifies the hash and loads the
model before it switches `current`, so a model the board cannot run never becomes current.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from edgeq.config import NAME_RE
from edgeq.errors import ConfigError, FleetError, ModelError
from edgeq.fleet.board import AgentBundle, Board, runtime_args
from edgeq.fleet.fanout import ProgressFn
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.operation import FleetOp
from edgeq.fleet.transport.base import BoardError, TransportFactory
from edgeq.hashing import file_sha256
from edgeq.records.fleet import AgentStatus, AgentSwitch, BoardOutcome, FleetSummary

_FREE_MARGIN = 1 << 20  # keep a MiB spare beyond the upload: the agent writes small state files too


def check_tflite(artifact: Path) -> int:
    """Refuse anything that is not a TFLite flatbuffer before it travels. Returns its size."""
    p = Path(artifact)
    try:
        with open(p, "rb") as f:
            head = f.read(8)
        size = p.stat().st_size
    except FileNotFoundError:
        raise ModelError(f"{p}: file not found", "pass the path of a .tflite artifact") from None
    except IsADirectoryError:
        raise ModelError(f"{p}: is a directory, not a TFLite model", "pass the path of a .tflite artifact") from None
    except OSError as e:
        raise ModelError(f"{p}: cannot read: {e.strerror}") from None
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelError(
            f"{p}: not a TFLite model (no TFL3 flatbuffer identifier)", "deploy a .tflite file produced by `edgeq run`"
        )
    _check_flatbuffer(p)
    return size


def _check_flatbuffer(p: Path) -> None:
    """Walk the whole flatbuffer with edgeq's own reader: a truncated or corrupt file never travels."""
    from edgeq.inspect import reader

    buf, where = reader.load_bytes(p)
    try:
        reader.check_header(buf, where)
        reader.parse(buf, where)
    except ModelError as e:
        raise ModelError(
            f"{p}: refused before any upload: {e.message.removeprefix(where + ': ')}",
            "the file is truncated or corrupt (an interrupted copy or download?): copy or convert it again",
        ) from None


def model_name(artifact: Path, name: str | None) -> str:
    n = name if name is not None else Path(artifact).stem
    if not re.fullmatch(NAME_RE, n):
        how = "--name" if name is not None else f"the artifact's file name ({Path(artifact).name})"
        raise ConfigError(
            f"model name {n!r} (from {how}) is not valid: use letters, digits, '.', '_', '-' (max 64)", "pass --name NAME"
        )
    return n


def _have(status: AgentStatus, sha: str) -> bool:
    if isinstance(status.have, bool):
        return status.have
    return status.have is not None and sha in status.have


def _upload(board: Board, artifact: Path, size: int, st: AgentStatus, progress: ProgressFn | None) -> str:
    """Upload the artifact to W/tmp/*.part after checking the board has room; the remote path."""
    d = board.device
    if st.free_bytes is not None and st.free_bytes < size + _FREE_MARGIN:
        raise BoardError(
            d.name,
            f"not enough disk space under {board.workdir}: {st.free_bytes} bytes free, {size} needed",
            "free space on the board (old models live in W/models/NAME/)",
            kind="disk_full",
            current=st.current,
        )
    if progress:
        progress({"event": "upload", "device": d.name, "bytes": 0, "total": size})
    cb = (
        (lambda done, total: progress({"event": "upload", "device": d.name, "bytes": done, "total": total})) if progress else None
    )
    try:
        return board.upload_tmp(artifact, ".part", cb)
    except BoardError as e:
        e.extra.setdefault("current", st.current)  # nothing was switched: say what stays active
        raise


def _say_lock_wait(board: Board, st: AgentStatus, progress: ProgressFn | None) -> None:
    """Who holds the board right now and how long the agent will wait for it (a progress event)."""
    lock = st.lock or {}
    if not progress or not lock.get("held"):
        return
    raw = lock.get("holder")
    h: dict[str, Any] = raw if isinstance(raw, dict) else {}
    gone = " (no longer running)" if lock.get("holder_alive") is False else ""
    who = f"pid {h.get('pid', '?')}{gone} ({h.get('command', '?')}) since {h.get('since', '?')}"
    progress({"event": "lock_wait", "device": board.name, "holder": who, "wait_s": board.device.lock_timeout})


def install_on(
    board: Board, artifact: Path, size: int, sha: str, name: str, progress: ProgressFn | None = None, *, then_lock: bool = False
) -> BoardOutcome:
    """Make `sha` the current version of `name` on a board. The board's outcome, without time and bytes."""
    d = board.device
    st = board.call("status", "--name", name, "--sha256", sha)
    assert isinstance(st, AgentStatus)  # noqa: S101 - read_agent_doc's contract for "status"
    out = BoardOutcome(device=d.name, address=d.address, status="ok", previous=st.current, sha256=sha, model_bytes=0)
    if st.current == sha:
        if then_lock:  # the caller's next step (bench) waits for the board
            _say_lock_wait(board, st, progress)
        return out.replace(action="unchanged", current=sha, error=None)
    _say_lock_wait(board, st, progress)
    if _have(st, sha):
        blob = f"{board.workdir}/models/{name}/{sha}.tflite"
        action = "installed existing blob"
    else:
        start_bytes = board.bytes_uploaded
        blob = _upload(board, artifact, size, st, progress)
        out = out.replace(model_bytes=board.bytes_uploaded - start_bytes)
        action = "uploaded and installed"
    if progress:
        progress({"event": "install", "device": d.name})
    try:
        res = board.call("install", "--name", name, "--blob", blob, "--sha256", sha, *runtime_args(d))
    except BoardError as e:
        if e.kind == "agent_killed" and _switched_anyway(board, name, sha, e):
            action += " (agent killed after the switch; verified)"
            return out.replace(status="changed", action=action, current=sha, error=None)
        e.extra.setdefault("current", st.current)  # the agent switches only after a successful load
        raise
    finally:
        if blob.endswith(".part"):
            board.t.remove(blob)  # the agent renamed it on success; on failure it must not linger
    assert isinstance(res, AgentSwitch)  # noqa: S101 - read_agent_doc's contract for "install"
    return out.replace(status="changed", action=action, current=res.current, error=None)


def _switched_anyway(board: Board, name: str, sha: str, err: BoardError) -> bool:
    """After an install agent was killed: did it die after its switch? Asks the board (one `status`).

    The agent switches the pointer only after a successful load check, so a `current` equal to `sha` is a
    finished install. When the board cannot answer, what is current stays unknown (not claimed to be the old one).
    """
    try:
        st = board.call("status", "--name", name, "--sha256", sha)
    except BoardError:
        err.extra.setdefault("current", None)
        return False
    assert isinstance(st, AgentStatus)  # noqa: S101 - read_agent_doc's contract for "status"
    err.extra.setdefault("current", st.current)
    return st.current == sha


def deploy(
    inventory: Inventory,
    targets: list[str],
    artifact: Path,
    *,
    name: str | None = None,
    parallel: int = 5,
    batches: str | list | None = None,
    max_fail: int | None = None,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
) -> FleetSummary:
    """Deploy an artifact to the targets. Per-board failures are in the summary (ok False), not raised."""
    size = check_tflite(artifact)
    name = model_name(artifact, name)
    sha = file_sha256(artifact)
    op = FleetOp(
        inventory.select(targets), parallel=parallel, progress=progress, transport_factory=transport_factory, agent=agent
    )

    def job(d: DeviceSpec) -> BoardOutcome:
        with op.board(d) as board:
            try:
                rec = install_on(board, artifact, size, sha, name, progress)
            except BoardError as e:
                e.extra.setdefault("bytes_uploaded", board.bytes_uploaded)
                raise
            return rec.replace(bytes_uploaded=board.bytes_uploaded)  # agent bytes included: what crossed the wire

    res = op.run(job, batches=batches, max_fail=max_fail)
    return op.summary("deploy", res, artifact=str(artifact), name=name, sha256=sha, size_bytes=size)


def undone_rollback(device: str, name: str, current: str | None, previous: str | None, note: dict | None) -> str | None:
    """The dry run's refusal of a plain rollback (no --from, no --undo-rollback) on a board, or None: refused when
    its current version came from a rollback (`note`: the board's W/models/NAME/rollback.json, counted while it
    matches current and previous). The agent applies the same rule (edgeq.agent.boardfs.Store.rollback)."""
    if not note or current is None or (note.get("restored"), note.get("replaced")) != (current, previous):
        return None
    return (
        f"{device}: would refuse: model {name}: {current[:12]} is current because a rollback put it back in place of "
        f"{(previous or '-')[:12]}; another rollback would undo that rollback"
    )


def check_rollback_args(name: str, from_sha: str | None) -> None:
    """The model name and --from checks `rollback` and `rollback --dry-run` share (before any board is touched)."""
    if not re.fullmatch(NAME_RE, name):
        raise ConfigError(f"model name {name!r} is not valid", "use letters, digits, '.', '_', '-' (max 64)")
    if from_sha is not None and not re.fullmatch(r"[0-9a-f]{64}", from_sha):
        raise ConfigError(
            f"--from {from_sha!r} is not a sha256 (64 hex digits)", "pass the full sha256 `edgeq deploy --json` printed"
        )


def rollback(
    inventory: Inventory,
    targets: list[str],
    name: str,
    *,
    parallel: int = 5,
    batches: str | list | None = None,
    max_fail: int | None = None,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
    from_sha: str | None = None,
    undo_rollback: bool = False,
) -> FleetSummary:
    """Make each board's previous version of `name` current again (the agent checks it loads).

    With `from_sha`, a compare-and-swap: only boards whose current is `from_sha` switch; a board already
    rolled back from it is left alone ("already rolled back"), any other is refused (kind "not_current").
    Without it, a board whose current version was put there by a rollback is refused (kind "rolled_back",
    nothing changed): a retry never undoes the rollback it repeats. `undo_rollback` allows that undo.
    """
    check_rollback_args(name, from_sha)
    op = FleetOp(
        inventory.select(targets), parallel=parallel, progress=progress, transport_factory=transport_factory, agent=agent
    )

    def job(d: DeviceSpec) -> BoardOutcome:
        with op.board(d) as board:
            args = ["--name", name, *(["--from", from_sha] if from_sha else []), *(["--undo-rollback"] if undo_rollback else [])]
            res = board.call("rollback", *args, *runtime_args(d))
            up = board.bytes_uploaded
        assert isinstance(res, AgentSwitch)  # noqa: S101 - read_agent_doc's contract for "rollback"
        again = res.changed is False
        return BoardOutcome(
            device=d.name,
            address=d.address,
            status="ok" if again else "changed",
            action="already rolled back" if again else "rolled back",
            previous=res.previous,
            current=res.current,
            bytes_uploaded=up,
            error=None,
        )

    return op.summary("rollback", op.run(job, batches=batches, max_fail=max_fail), name=name)


class _Summary(Protocol):  # FleetSummary, SetupSummary
    @property
    def ok(self) -> bool: ...
    @property
    def action(self) -> str: ...
    @property
    def devices(self) -> Sequence[BoardOutcome]: ...
    @property
    def failed(self) -> tuple[BoardOutcome, ...]: ...


def raise_for_failures(summary: _Summary) -> None:
    """The CLI's exit decision after deploy, rollback or setup: FleetError (exit FLEET) naming the boards that
    did not succeed, the first error, and its hint."""
    if summary.ok:
        return
    bad = summary.failed
    names = ", ".join(f"{r.device} ({r.status})" for r in bad)
    first = next((r for r in bad if r.error), None)
    raise FleetError(
        f"{summary.action} did not succeed on {len(bad)} of {len(summary.devices)} board(s): {names}"
        + (f"; first error: {first.error}" if first else ""),
        (first.hint if first else None) or "see the per-board table above",
        result=summary,
    )
