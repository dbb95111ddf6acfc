"""Helpers for the fault and security tests: kill/restart a farm board's sshd, inspect a board's work dir
the way the board itself would (its own agent, a real TFLite interpreter), hold or orphan W/lock, and
build a network namespace with a shaped, lossy link.

Everything acts on real processes and real files; nothing here fakes SSH or the agent.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeq.testing import sshfarm

REPO = Path(__file__).resolve().parents[2]
SHA_LEN = 64


# --------------------------------------------------------------------------- processes


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def sshd_pids(board: sshfarm.FarmBoard) -> list[int]:
    """The board's listener and its per-connection sshd processes (not the agents they started)."""
    pids = [p for p in board.session_pids() if _comm(p).startswith("sshd")]
    if board.proc is not None and board.proc.poll() is None:
        pids.insert(0, board.proc.pid)
    return pids


def kill_sshd(board: sshfarm.FarmBoard) -> int:
    """SIGKILL every sshd process of the board, listener included: the board 'loses' its SSH server."""
    pids = sshd_pids(board)  # collect before killing: orphaned sessions are re-parented and harder to find
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if board.proc is not None:
        board.proc.wait(10)
    return len(pids)


def wait_banner(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as s:
                s.settimeout(3)
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"no SSH banner from {host}:{port} within {timeout}s ({last})")


def restart_sshd(board: sshfarm.FarmBoard) -> None:
    """Start the board's sshd again on the same port with the same config and host key."""
    if board.proc is not None and board.proc.poll() is None:
        return
    cfg = board.root / "sshd_config"
    with open(board.root / "sshd.log", "ab") as logf:
        board.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sshfarm.SSHD, "-D", "-e", "-f", str(cfg), "-p", str(board.port)], stdout=logf, stderr=subprocess.STDOUT
        )
    wait_banner("127.0.0.1", board.port)


def find_agent_pids(subcommand: str, workdir: Path | str) -> list[int]:
    """Agent processes running `subcommand` on the work dir (matched on their argv, like `pgrep -f`, but exact)."""
    want_sub, want_w = subcommand.encode(), str(workdir).encode()
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 3 and argv[1].endswith(b".pyz") and argv[2] == want_sub and want_w in argv:
            out.append(int(p.name))
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def wait_gone(pids: list[int], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in pids), f"processes still alive after {timeout}s: {pids}"


# --------------------------------------------------------------------------- W/lock

_HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from edgeq.agent.boardfs import WorkdirLock
lock = WorkdirLock(sys.argv[1], 5, "fault-test holder")
lock.acquire()
print("locked", flush=True)
time.sleep(3600)
"""


def hold_lock(workdir: Path) -> subprocess.Popen:
    """A live process holding the board's W/lock exactly as an agent does (flock + holder JSON)."""
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-c", _HOLDER, str(workdir / "lock"), str(REPO)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


# --------------------------------------------------------------------------- board state, as the board sees it


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def agent_pyz(workdir: Path) -> Path:
    found = sorted((Path(workdir) / "agent").glob("edgeq-agent-*.pyz"))
    assert found, f"no agent under {workdir}/agent"
    return found[-1]


def run_agent(workdir: Path, *args: str, timeout: float = 120) -> tuple[int, dict]:
    """Run the agent that was shipped to the board, on the board's work dir (the board is this machine)."""
    p = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, str(agent_pyz(workdir)), *args], capture_output=True, text=True, timeout=timeout
    )
    return p.returncode, json.loads(p.stdout.strip().splitlines()[-1])


def interpreter_loads(blob: Path) -> bool:
    """Load, allocate and invoke the blob with a real TFLite interpreter (ai-edge-litert)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(blob))
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    interp.invoke()
    return True


@dataclass
class BoardState:
    current: str | None
    previous: str | None
    blobs: list[str]
    junk: list[str] = field(default_factory=list)  # half-written files next to the active model
    parts: list[str] = field(default_factory=list)  # W/tmp/*.part uploads left behind
    active_ok: bool | None = None  # current blob hashes right, loads in an interpreter and benches via the agent
    problem: str | None = None


def board_state(workdir: Path, name: str, *, bench: bool = True) -> BoardState:
    """What a model's directory looks like, and whether its active version is whole and runnable."""
    w = Path(workdir)
    mdir = w / "models" / name

    def ptr(which: str) -> str | None:
        p = mdir / which
        return p.read_text().strip() if p.is_file() else None

    blobs = sorted(p.stem for p in mdir.glob("*.tflite")) if mdir.is_dir() else []
    keep = ("current", "previous")
    junk = sorted(p.name for p in mdir.iterdir() if p.suffix != ".tflite" and p.name not in keep) if mdir.is_dir() else []
    parts = sorted(p.name for p in (w / "tmp").glob("*.part")) if (w / "tmp").is_dir() else []
    st = BoardState(ptr("current"), ptr("previous"), blobs, junk, parts)
    if st.current is None:
        return st
    blob = mdir / f"{st.current}.tflite"
    try:
        if len(st.current) != SHA_LEN or not blob.is_file():
            raise AssertionError(f"current points at a missing blob {blob.name}")
        if sha256_of(blob) != st.current:
            raise AssertionError(f"{blob.name} is half-written or corrupt (hash mismatch)")
        interpreter_loads(blob)
        if bench:
            rc, doc = run_agent(
                w,
                "bench",
                "--workdir",
                str(w),
                "--name",
                name,
                "--runs",
                "3",
                "--warmup",
                "1",
                "--min-seconds",
                "0",
                "--lock-timeout",
                "120",
            )
            if rc != 0 or not doc.get("ok"):
                raise AssertionError(f"the board's agent cannot run it: {doc}")
        st.active_ok = True
    except AssertionError as e:
        st.active_ok, st.problem = False, str(e)
    return st


def half_written_or_unloadable(state: BoardState) -> int:
    """1 if the board's active model is half-written/unloadable or half-written files sit beside it, else 0."""
    return int(state.active_ok is False or bool(state.junk))


def report(fault: str, half_written: int, lost: int) -> None:
    """One line per fault for the closing note (visible with -s or in the captured stdout of -rA)."""
    print(f"FAULT {fault}: boards with a half-written or unloadable active model={half_written}, results lost={lost}")


# --------------------------------------------------------------------------- a board behind a shaped link


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    p = subprocess.run(argv, capture_output=True, text=True)  # noqa: S603 - fixed argv
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")
    return p


@dataclass
class NetnsBoard:
    """An sshd in its own network namespace, reached over a veth pair whose both ends are shaped with tbf
    (rate limit) and whose namespace drops a random share of packets with nftables (numgen random).

    netem would be the usual tool, but this kernel is built without it (CONFIG_NET_SCH_NETEM is not set:
    `tc qdisc add ... netem` fails with "Specified qdisc kind is unknown"), so: tbf for a slow link,
    nftables for loss, and no added delay."""

    ns: str
    host_if: str
    addr: str
    port: int
    root: Path
    workdir: Path
    host_key: Path
    proc: subprocess.Popen | None = None

    @property
    def known_hosts_line(self) -> str:
        kt, b64 = Path(str(self.host_key) + ".pub").read_text().split()[:2]
        return f"[{self.addr}]:{self.port} {kt} {b64}"

    @classmethod
    def start(cls, farm: sshfarm.SSHFarm, root: Path, *, rate: str = "4mbit", loss_pct: int = 5) -> NetnsBoard:
        tag = os.urandom(3).hex()
        ns, host_if, peer_if = f"eqf{tag}", f"eqh{tag}", f"eqn{tag}"
        subnet = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
        root.mkdir(parents=True, exist_ok=True)
        b = cls(ns, host_if, f"{subnet}.2", 2222, root, root / "work", root / "ssh_host_ed25519_key")
        b.workdir.mkdir(exist_ok=True)
        try:
            _ip("ip", "netns", "add", ns)
            _ip("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
            _ip("ip", "link", "set", peer_if, "netns", ns)
            _ip("ip", "addr", "add", f"{subnet}.1/24", "dev", host_if)
            _ip("ip", "link", "set", host_if, "up")
            _ip("ip", "addr", "add", f"{b.addr}/24", "dev", peer_if, ns=ns)
            _ip("ip", "link", "set", peer_if, "up", ns=ns)
            _ip("ip", "link", "set", "lo", "up", ns=ns)
            for dev, where in ((host_if, None), (peer_if, ns)):  # both directions are slow
                _ip("tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "16kb", "latency", "400ms", ns=where)
            b.set_loss(loss_pct)
            sshfarm.keygen(b.host_key, comment=f"host-{ns}")
            cfg = root / "sshd_config"
            cfg.write_text("\n".join([
                f"ListenAddress {b.addr}", f"HostKey {b.host_key}",
                f"AuthorizedKeysFile {farm.root / 'keys' / 'authorized_keys'}",
                f"PidFile {root / 'sshd.pid'}", "StrictModes no", "UsePAM no", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp",
                "MaxStartups 50", "MaxSessions 50", "LogLevel ERROR", "",
            ]))  # fmt: skip
            with open(root / "sshd.log", "ab") as logf:
                b.proc = subprocess.Popen(  # noqa: S603 - fixed argv
                    ["ip", "netns", "exec", ns, sshfarm.SSHD, "-D", "-e", "-f", str(cfg), "-p", str(b.port)],
                    stdout=logf, stderr=subprocess.STDOUT,
                )  # fmt: skip
            wait_banner(b.addr, b.port, timeout=30)
        except BaseException:
            b.stop()
            raise
        return b

    def set_loss(self, pct: int) -> None:
        """Drop pct% of the packets entering and leaving the namespace (100: a dead link that stays 'up')."""
        _ip("nft", "delete", "table", "inet", "edgeqloss", ns=self.ns, check=False)
        if pct <= 0:
            return
        rule = "drop" if pct >= 100 else f"numgen random mod 100 < {pct} drop"
        script = (
            "table inet edgeqloss {\n"
            f"  chain in {{ type filter hook input priority 0; policy accept; {rule}; }}\n"
            f"  chain out {{ type filter hook output priority 0; policy accept; {rule}; }}\n"
            "}\n"
        )
        p = subprocess.run(["ip", "netns", "exec", self.ns, "nft", "-f", "-"], input=script, capture_output=True, text=True)  # noqa: S603,S607
        if p.returncode != 0:
            raise RuntimeError(f"nft: {p.stderr.strip()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # the listener and its sessions live in the namespace; kill them by the namespace's pid list
            p = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True)  # noqa: S603,S607
            for pid in [int(x) for x in p.stdout.split()]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait(10)
        _ip("ip", "link", "del", self.host_if, check=False)
        _ip("ip", "netns", "del", self.ns, check=False)


def netns_available() -> str | None:
    """None if network namespaces, veth, tbf and nftables work here; else why not."""
    for tool in ("ip", "tc", "nft"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:  # noqa: S603,S607
            return f"{tool} is not installed (tests/run-all.sh installs iproute2 and nftables)"
    name = f"eqprobe{os.urandom(2).hex()}"
    p = _ip("ip", "netns", "add", name, check=False)
    if p.returncode != 0:
        return f"ip netns add: {p.stderr.strip()}"
    _ip("ip", "netns", "del", name, check=False)
    return None
