"""The board's work dir in `devices setup`: the same check as every other operation before anything runs there,
and the switch to a new venv under the board lock (edgeq.fleet.setup.layout says what is accepted)."""

from __future__ import annotations

import json
import stat

from edgeq.fleet.board import AgentBundle, Board
from edgeq.fleet.preflight import SETUP_PREFLIGHT_SCRIPT
from edgeq.fleet.setup import layout
from edgeq.fleet.setup.scripts import SWITCH
from edgeq.fleet.setup.session import NO_PYTHON_HINT, SetupSession, tail
from edgeq.fleet.setup.wheelcache import WheelSet
from edgeq.fleet.transport.base import BoardError


def preflight(s: SetupSession, agent: AgentBundle) -> None:
    """The work-dir check every other operation runs (edgeq.fleet.board: W and W/agent created 0700, refused when
    a symbolic link, another user's or writable by others), plus setup's own paths (layout.judge), before
    anything in W runs: with a python outside W when devices.yaml names the venv's (python3 first)."""
    inside = s.python.startswith(s.workdir.rstrip("/") + "/")
    pythons = ["python3", s.python] if inside else [s.python]
    for i, py in enumerate(pythons):
        board = Board(s.d.model_copy(update={"python": py}), s.t, agent)
        argv = [py, "-c", SETUP_PREFLIGHT_SCRIPT, board.workdir, board.agent_path, *layout.paths(board.workdir).values()]
        rc, out, err = s.run(argv, "checking the work dir", min(120.0, s.d.command_timeout))
        try:
            facts = board._judge_preflight(rc, out, err)  # the same judge as deploy, check and bench
        except BoardError as e:
            if e.kind in ("no_python", "old_python") and i + 1 < len(pythons):
                continue
            if e.kind == "no_python":
                raise s.fail(f"cannot run the board's python {py!r} (not found)", NO_PYTHON_HINT, "no_python") from None
            if e.kind == "old_python":
                return  # nothing was made; the probe names the version found and the one setup needs
            raise
        bad = layout.judge(board.workdir, facts.get("extra") or {}, int(facts["euid"]))
        if bad is not None:
            path, why, st = bad
            mode = f"{stat.S_IMODE(int(st['mode'])):04o}"
            hint = (
                f"on the board: remove the link {path} (rm {path}, not what it points to), then run devices setup again"
                if "edgeq did not make" in why
                else f"on the board: chown the login user {path} && chmod go-w {path} (or point workdir: elsewhere)"
            )
            raise s.fail(
                f"refusing the board's work dir: {path} {why} (owner {st.get('owner') or st.get('uid')}, mode {mode}): "
                "devices setup builds there, and python -m venv follows a symbolic link and empties its target",
                hint,
                "unsafe_workdir",
            )
        return


def switch(s: SetupSession, base: str, venv_id: str, wheels: WheelSet) -> None:
    """Point W/venv at the verified new venv under W/lock (waiting up to lock_timeout for a bench), then prune."""
    argv = [base, "-c", SWITCH, s.workdir, venv_id, format(s.d.lock_timeout, "g"), *wheels.names]
    rc, out, err = s.run(argv, "switching to the new venv", s.d.command_timeout + s.d.lock_timeout)
    try:
        doc = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        doc = {}
    if rc == 0 and doc.get("switched"):
        return
    if rc == 6 and doc.get("error") == "locked":
        h = doc.get("holder") or {}
        who = f"pid {h.get('pid', '?')} on {h.get('hostname', '?')} ({h.get('command', '?')}) since {h.get('since', '?')}"
        raise s.fail(
            f"the new venv is ready, but {s.workdir}/lock stayed held by {who} for lock_timeout "
            f"{s.d.lock_timeout:g} s: the current venv is left in place",
            "run devices setup again once the board is free (or raise lock_timeout in devices.yaml)",
            "locked",
        )
    why = tail(doc.get("error") or err or out)
    raise s.fail(f"switching {s.venv} to the new venv failed (exit {rc}): {why}", None, "setup_failed")
