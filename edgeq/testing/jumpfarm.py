"""Boards reachable only through a jump host: real sshds in a network namespace.

Layout (one namespace, one veth pair):
  root namespace (the test)  --veth-->  JUMP sshd on <subnet>.2:2222 (AllowTcpForwarding yes)
  inside the namespace only:            JUMP2 sshd on 127.0.0.1:P, board sshds on 127.0.0.1:P1, P2, ...
The namespace's 127.0.0.1 is not the test's, so a direct connection to a board fails; the jump host
reaches it over its own loopback. Every sshd accepts the farm's user key; nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgeq.testing import sshfarm
from edgeq.testing.faultkit import _ip, wait_banner

_PROBE = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
            s.settimeout(3)
            if s.recv(4).startswith(b"SSH-"):
                sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
"""


@dataclass
class NsSshd:
    """One sshd inside the namespace (a jump host or a board)."""

    name: str
    addr: str  # as seen inside the namespace (and, for the first jump host, from the root namespace)
    port: int
    root: Path
    host_key: Path
    proc: subprocess.Popen | None = None

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def log(self) -> Path:
        return self.root / "sshd.log"

    @property
    def known_hosts_line(self) -> str:
        kt, b64 = Path(str(self.host_key) + ".pub").read_text().split()[:2]
        return f"[{self.addr}]:{self.port} {kt} {b64}"


@dataclass
class JumpNet:
    ns: str
    host_if: str
    subnet: str
    auth_file: Path
    root: Path
    sshds: dict[str, NsSshd] = field(default_factory=dict)

    @classmethod
    def start(cls, farm: sshfarm.SSHFarm, root: Path, boards: int = 2) -> JumpNet:
        tag = os.urandom(3).hex()
        subnet = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
        net = cls(f"eqj{tag}", f"eqjh{tag}", subnet, farm.root / "keys" / "authorized_keys", root)
        root.mkdir(parents=True, exist_ok=True)
        peer_if = f"eqjn{tag}"
        try:
            _ip("ip", "netns", "add", net.ns)
            _ip("ip", "link", "add", net.host_if, "type", "veth", "peer", "name", peer_if)
            _ip("ip", "link", "set", peer_if, "netns", net.ns)
            _ip("ip", "addr", "add", f"{subnet}.1/24", "dev", net.host_if)
            _ip("ip", "link", "set", net.host_if, "up")
            _ip("ip", "addr", "add", f"{subnet}.2/24", "dev", peer_if, ns=net.ns)
            _ip("ip", "link", "set", peer_if, "up", ns=net.ns)
            _ip("ip", "link", "set", "lo", "up", ns=net.ns)
            net.add("jump", f"{subnet}.2", 2222, forwarding=True)
            net.add("jump2", "127.0.0.1", sshfarm.free_port(), forwarding=True)
            for i in range(boards):
                # a port free in the root namespace too: a direct attempt must find nothing there
                net.add(f"nb{i + 1}", "127.0.0.1", sshfarm.free_port())
        except BaseException:
            net.stop()
            raise
        return net

    def add(self, name: str, addr: str, port: int, *, forwarding: bool = False) -> NsSshd:
        root = self.root / name
        root.mkdir(exist_ok=True)
        s = NsSshd(name, addr, port, root, root / "ssh_host_ed25519_key")
        s.workdir.mkdir(exist_ok=True)
        sshfarm.keygen(s.host_key, comment=f"host-{name}")
        (root / "sshd_config").write_text("\n".join([
            f"ListenAddress {addr}", f"HostKey {s.host_key}", f"AuthorizedKeysFile {self.auth_file}",
            f"PidFile {root / 'sshd.pid'}", "StrictModes no", "UsePAM no", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp",
            "MaxStartups 50", "MaxSessions 50", "LogLevel INFO",  # INFO: every accepted login is logged
            f"AllowTcpForwarding {'yes' if forwarding else 'no'}", f"SetEnv HOME={root}", "",
        ]))  # fmt: skip
        self.sshds[name] = s
        self.restart(s)
        return s

    def restart(self, s: NsSshd) -> None:
        """(Re)start an sshd with its config and current host key, and wait for its banner."""
        self.kill(s)
        with open(s.log, "ab") as logf:
            s.proc = subprocess.Popen(  # noqa: S603 - fixed argv
                ["ip", "netns", "exec", self.ns, sshfarm.SSHD, "-D", "-e", "-f", str(s.root / "sshd_config"), "-p", str(s.port)],
                stdout=logf, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if s.addr == "127.0.0.1":
            p = subprocess.run(  # noqa: S603 - fixed argv
                ["ip", "netns", "exec", self.ns, sys.executable, "-c", _PROBE, s.addr, str(s.port), "20"], timeout=40
            )
            if p.returncode != 0:
                raise RuntimeError(f"sshd {s.name} did not start: {s.log.read_text(errors='replace')[-2000:]}")
        else:
            wait_banner(s.addr, s.port, timeout=20)

    def kill(self, s: NsSshd) -> None:
        """The listener and its sessions (children of the listener in /proc)."""
        if s.proc is None:
            return
        board = sshfarm.FarmBoard(s.name, s.port, s.root, s.workdir, s.host_key, s.proc)
        for pid in board.session_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if s.proc.poll() is None:
            s.proc.kill()
        s.proc.wait(10)
        s.proc = None

    def new_host_key(self, s: NsSshd) -> None:
        """The host 'was reinstalled' (or someone is in the middle): a new host key, same address."""
        for p in (s.host_key, Path(str(s.host_key) + ".pub")):
            p.unlink()
        sshfarm.keygen(s.host_key, comment=f"host-{s.name}-new")
        self.restart(s)

    def stop(self) -> None:
        for s in self.sshds.values():
            try:
                self.kill(s)
            except Exception:  # noqa: S110 - the namespace's pids are killed below anyway
                pass
        p = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True)  # noqa: S603,S607
        for pid in [int(x) for x in p.stdout.split()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _ip("ip", "link", "del", self.host_if, check=False)
        _ip("ip", "netns", "del", self.ns, check=False)
