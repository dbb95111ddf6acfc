"""Wedged boards for fault tests: real sockets that stop answering at a chosen point of an SSH session.

StallServer completes the TCP accept, the SSH handshake and public-key authentication (paramiko's
server side, in threads) and then never answers the chosen request: "session" (the channel open) or
"request" (the channel opens; its exec or sftp subsystem request is never answered). SilentServer accepts TCP
connections and never sends a banner. Both are real servers on loopback; nothing in edgeq is faked.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Literal

Stall = Literal["session", "request"]


class StallServer:
    def __init__(self, host_key: Path, authorized_pub: str, stall: Stall = "session"):
        import paramiko

        self.stall = stall
        self._host_key = paramiko.Ed25519Key.from_private_key_file(str(host_key))
        self._allowed = authorized_pub.split()[1]
        self._release = threading.Event()  # set on stop: the wedged handlers return and threads end
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._transports: list = []
        threading.Thread(target=self._accept, daemon=True, name=f"stall-{self.port}").start()

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self._host_key.get_name()} {self._host_key.get_base64()}"

    def _accept(self) -> None:
        import paramiko

        while not self._release.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            t = paramiko.Transport(conn)
            t.add_server_key(self._host_key)
            self._transports.append(t)
            try:
                t.start_server(server=_Interface(self))
            except (paramiko.SSHException, EOFError, OSError):
                t.close()

    def stop(self) -> None:
        self._release.set()
        try:
            self._sock.close()
        except OSError:
            pass
        for t in self._transports:
            t.close()


def _interface_base():
    import paramiko

    return paramiko.ServerInterface


class _Interface(_interface_base()):  # type: ignore[misc]
    def __init__(self, server: StallServer):
        self.s = server

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key) -> int:
        from paramiko.common import AUTH_FAILED, AUTH_SUCCESSFUL

        return AUTH_SUCCESSFUL if key.get_base64() == self.s._allowed else AUTH_FAILED

    def _wedge(self) -> None:
        # blocks the server's transport thread: from here on the client gets no reply to anything
        self.s._release.wait()

    def check_channel_request(self, kind: str, chanid: int) -> int:
        from paramiko.common import OPEN_SUCCEEDED

        if self.s.stall == "session":
            self._wedge()
        return OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command) -> bool:
        self._wedge()
        return False

    def check_channel_subsystem_request(self, channel, name) -> bool:
        self._wedge()
        return False


class SilentServer:
    """Accepts TCP connections and never writes a byte: an sshd stuck before its banner."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name=f"silent-{self.port}").start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)  # kept open, never written to

    def stop(self) -> None:
        self._stop.set()
        for s in [self._sock, *self._conns]:
            try:
                s.close()
            except OSError:
                pass


def wedged_board(root: Path, authorized_pub: str, stall: Stall = "session") -> StallServer:
    """A StallServer with its own ed25519 host key under root (add .known_hosts_line to known_hosts)."""
    from edgeq.testing.sshfarm import keygen

    root.mkdir(parents=True, exist_ok=True)
    key = root / f"stall_host_key_{len(list(root.glob('stall_host_key_*')))}"
    keygen(key, comment="host-wedged")
    return StallServer(key, authorized_pub, stall)
