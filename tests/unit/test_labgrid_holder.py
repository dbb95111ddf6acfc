"""Which labgrid holder edgeq may release: only an edgeq that certainly no longer runs (same kernel, same
PID namespace, its pid gone or started at another time). tests/farm/test_labgrid.py runs the real thing,
with a holder in another PID namespace (unshare)."""

from __future__ import annotations

import os

import pytest

from edgeq.fleet.inventory.labgrid import Holder, holder_gone, me, proc_start

HERE = Holder(boot="0123456789ab", pidns=4026531836, pid=100, start=5000)


def owner(pid=4242, boot="0123456789ab", ns=4026531836, start=777) -> str:
    return f"vm/root.edgeq-{pid}-boot{boot}-pidns{ns}-start{start}"


@pytest.mark.parametrize(
    "name, start_of, gone",
    [
        (owner(), lambda pid: None, True),  # SIGKILLed: its pid is free
        (owner(), lambda pid: 777, False),  # running
        (owner(), lambda pid: 9999, True),  # its pid now belongs to another process
        (owner(ns=4026532000), lambda pid: None, False),  # a container: its pid means nothing here
        (owner(boot="ba9876543210"), lambda pid: None, False),  # another kernel (another machine, or a reboot)
        ("vm/root.edgeq-4242", lambda pid: None, False),  # an older edgeq: no way to tell
        ("vm/alice", lambda pid: None, False),  # a person with labgrid-client
    ],
)
def test_only_a_certainly_dead_holder_is_gone(name, start_of, gone):
    assert holder_gone(name, HERE, start_of) is gone


def test_without_procfs_nothing_is_reaped():
    assert holder_gone(owner(), None, lambda pid: None) is False


def test_this_process_names_itself_so_others_here_can_tell():
    ident = me()
    assert ident is not None and ident.pid == os.getpid() and ident.start == proc_start(os.getpid())
    assert holder_gone(f"vm/root.edgeq-{ident.tag}", ident) is False
    assert holder_gone(f"vm/root.edgeq-{ident.tag}".replace(f"start{ident.start}", f"start{ident.start + 1}"), ident) is True
