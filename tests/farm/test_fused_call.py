"""Issue 16: the work-dir check rides on the first agent call (one command per board when the agent is in place).

Real sshd boards and the real agent; the transport is the real SSH transport, wrapped only to record the
commands it sends.
"""

from __future__ import annotations

from edgeq import fleet
from edgeq.fleet.board import build_agent
from edgeq.fleet.inventory.devices import load_inventory
from edgeq.fleet.preflight import step_of
from edgeq.fleet.transport.factory import open_transport
from edgeq.testing.fleet import board_entry, write_devices


class _Recording:
    """The real transport; every command's step name and exit code appended to `log`."""

    def __init__(self, t, log: list):
        self._t, self._log = t, log

    def run(self, argv, timeout):
        rc, out, err = self._t.run(argv, timeout)
        self._log.append((step_of(argv), rc))
        return rc, out, err

    def __getattr__(self, name):
        return getattr(self._t, name)


def _check(inv, agent, log):
    return fleet.check(inv, ["all"], transport_factory=lambda d: _Recording(open_transport(d), log), agent=agent)


def test_check_is_one_command_once_the_agent_is_there(farm, tmp_path):
    inv = load_inventory(write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "f1")))
    agent = build_agent(tmp_path / "agent")
    log: list = []
    first = _check(inv, agent, log)
    # a fresh board: the fused call finds no agent (exit 75), the agent is uploaded, facts runs on its own
    assert first.ok and log[0] == ("facts", 75) and log[-1] == ("facts", 0), log
    log.clear()
    again = _check(inv, agent, log)
    assert again.ok and log == [("facts", 0)], log
    keep = {"device", "status", "healthy", "reachable", "runtime", "python", "arch"}
    one, two = first.devices[0].to_json(), again.devices[0].to_json()
    assert {k: one[k] for k in keep} == {k: two[k] for k in keep} and one.keys() == two.keys()


def test_a_changed_agent_is_replaced_before_it_runs(farm, tmp_path):
    inv = load_inventory(write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "f2")))
    agent = build_agent(tmp_path / "agent")
    assert _check(inv, agent, []).ok
    on_board = tmp_path / "boards" / "f2" / "agent" / agent.filename
    on_board.write_bytes(on_board.read_bytes() + b"\n# changed on the board\n")
    log: list = []
    res = _check(inv, agent, log)
    assert res.ok and log[0] == ("facts", 75) and log[-1] == ("facts", 0), log
    assert on_board.read_bytes() == agent.path.read_bytes()
