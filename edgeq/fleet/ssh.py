"""The `ssh` transport (paramiko, imported lazily): host keys checked, keys only, argv quoted.

One SSHTransport = one SSH connection, used by one thread for one board at a time.
"""

from __future__ import annotations

import errno
import os
import posixpath
import select
import shlex
import socket
import time
from collections.abc import Callable
from pathlib import Path

from edgeq.fleet.base import BoardError, Progress
from edgeq.fleet.inventory import DeviceSpec
from edgeq.fleet.retry import RetryPolicy
from edgeq.fleet.ssherrors import classify_connect_error, quiet_paramiko, reject_unknown_policy

_UNREACHABLE_ERRNOS = {
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTDOWN,
}


def quote_argv(argv: list[str]) -> str:
    """The only way a command reaches a remote shell: every argument shlex-quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


class SSHTransport:
    def __init__(
        self, device: DeviceSpec, *, env: dict | None = None, sleep: Callable[[float], None] = time.sleep, on_retry=None
    ):
        self.device = device
        self._env = os.environ if env is None else env
        self._sleep = sleep
        self._on_retry = on_retry
        self._client = None
        self._sftp = None

    # ---------------------------------------------------------------- connection

    def connect(self) -> SSHTransport:
        quiet_paramiko()
        d = self.device
        policy = RetryPolicy(attempts=d.retries, base_delay=d.retry_delay, max_delay=30.0)

        def once():
            try:
                return self._connect_once()
            except BoardError:
                raise
            except Exception as e:
                raise classify_connect_error(d, e) from None

        self._client = policy.call(
            once,
            retryable=lambda e: isinstance(e, BoardError) and e.retryable,
            sleep=self._sleep,
            on_retry=self._on_retry,
        )
        return self

    def _connect_once(self):
        import paramiko

        d = self.device
        if d.key_file and not Path(d.key_file).is_file():
            raise BoardError(d.name, f"key file {d.key_file} not found", "fix key_file: in devices.yaml", kind="auth")
        passphrase = None
        if d.key_passphrase_env:
            passphrase = self._env.get(d.key_passphrase_env)
            if passphrase is None:
                raise BoardError(
                    d.name,
                    f"environment variable {d.key_passphrase_env} (key_passphrase_env) is not set",
                    f"export {d.key_passphrase_env}=...",
                    kind="auth",
                )
        client = paramiko.SSHClient()
        kh = Path(str(d.known_hosts))
        if kh.is_file():
            try:
                client.load_host_keys(str(kh))
            except (OSError, paramiko.SSHException) as e:
                raise BoardError(
                    d.name, f"cannot read known_hosts {kh}: {e}", "fix or remove the broken line", kind="host_key_unknown"
                ) from None
        client.set_missing_host_key_policy(reject_unknown_policy())  # never AutoAdd: trust is `edgeq devices trust`
        try:
            client.connect(
                hostname=str(d.host),
                port=d.port,
                username=d.user,
                key_filename=d.key_file,
                passphrase=passphrase,
                # a configured key is THE key: no fallback to agent or ~/.ssh that could log in as someone else
                allow_agent=not d.key_file,
                look_for_keys=not d.key_file,
                timeout=d.connect_timeout,
                banner_timeout=d.connect_timeout,
                auth_timeout=d.connect_timeout,
                channel_timeout=d.connect_timeout,
            )
        except BaseException:
            client.close()
            raise
        t = client.get_transport()
        if d.keepalive and t is not None:
            t.set_keepalive(d.keepalive)  # NAT boxes and Wi-Fi boards drop idle sessions during long benches
        if t is not None:
            # without it, an SFTP request right after a command waits behind the channel-close packet for
            # the board's delayed ACK (Nagle): 40 ms per call on Linux, measured by bench/fleet_bench.py
            try:
                t.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):  # a proxy-command channel is not a TCP socket
                pass
        return client

    def close(self) -> None:
        for obj in (self._sftp, self._client):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: S110 - closing a dead connection may raise; nothing to do
                    pass
        self._sftp = self._client = None

    def _transport(self):
        t = self._client.get_transport() if self._client is not None else None
        if t is None or not t.is_active():
            raise BoardError(
                self.device.name,
                f"connection to {self.device.address} was lost",
                "check the board's network and power, then retry",
                kind="connection_dropped",
            )
        return t

    def _dropped(self, what: str, e: BaseException) -> BoardError:
        return BoardError(
            self.device.name,
            f"connection to {self.device.address} dropped {what} ({type(e).__name__}: {e})",
            "check the board's network and power, then retry (nothing half-written is ever used)",
            kind="connection_dropped",
        )

    # ---------------------------------------------------------------- commands

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        import paramiko

        cmd = quote_argv(argv)
        what = argv[2] if len(argv) > 2 else argv[0]
        deadline = time.monotonic() + timeout
        t = self._transport()
        try:
            chan = t.open_session(timeout=self.device.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise self._dropped(f"opening a session for {what}", e) from None
        try:
            chan.exec_command(cmd)
            out, err = bytearray(), bytearray()
            # drain both streams while waiting: a full stderr window would block the remote
            # process and recv_exit_status() forever (the classic paramiko deadlock)
            fd = chan.fileno()
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if (
                    (chan.eof_received or chan.closed)
                    and chan.exit_status_ready()
                    and not chan.recv_ready()
                    and not chan.recv_stderr_ready()
                ):
                    break
                if not t.is_active():
                    raise BoardError(
                        self.device.name,
                        f"connection to {self.device.address} dropped while running {what}",
                        "check the board's network and power",
                        kind="connection_dropped",
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BoardError(
                        self.device.name,
                        f"{what} did not finish within {timeout:g}s",
                        "raise command_timeout in devices.yaml, or check the board",
                        kind="command_timeout",
                    )
                if chan.eof_received or chan.closed:
                    time.sleep(min(0.01, left))  # EOF seen, exit status in flight; the pipe stays readable now
                else:
                    select.select([fd], [], [], min(0.5, left))
            rc = chan.recv_exit_status()
            # -1 (no exit status) is either the command killed by a signal (paramiko ignores exit-signal) or
            # the connection dying under it; the transport thread records its failure before it closes the
            # channels, so saved_exception tells the two apart without waiting
            if rc == -1 and (not t.is_active() or getattr(t, "saved_exception", None) is not None):
                raise BoardError(
                    self.device.name,
                    f"connection to {self.device.address} dropped while running {what}",
                    "check the board's network, power and sshd, then retry (nothing half-written is ever used)",
                    kind="connection_dropped",
                )
        except BoardError:
            raise
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise self._dropped(f"while running {what}", e) from None
        finally:
            chan.close()
        return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    # ---------------------------------------------------------------- files (SFTP: no shell involved)

    def _sftp_client(self):
        if self._sftp is None:
            t = self._transport()
            import paramiko

            try:
                self._sftp = paramiko.SFTPClient.from_transport(t)
            except (paramiko.SSHException, EOFError, OSError) as e:
                raise BoardError(
                    self.device.name,
                    f"SFTP is not available on {self.device.address}: {e}",
                    "enable the sftp Subsystem in the board's sshd_config",
                    kind="ssh",
                ) from None
            self._sftp.get_channel().settimeout(self.device.command_timeout)
        return self._sftp

    def put_file(self, local: Path, remote_path: str, callback: Progress | None = None) -> int:
        import paramiko

        sftp = self._sftp_client()
        size = Path(local).stat().st_size
        try:
            sftp.put(str(local), remote_path, callback=callback, confirm=True)
        except (EOFError, paramiko.SSHException, OSError) as e:
            t = self._client.get_transport() if self._client is not None else None
            if t is None or not t.is_active() or isinstance(e, (EOFError, paramiko.SSHException)):
                raise self._dropped(f"while uploading {Path(local).name}", e) from None
            # an SFTP status from a live server: permission denied, or "Failure" (often: disk full)
            msg = str(e)
            if "size mismatch" in msg or msg.strip() == "Failure" or getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
                # OpenSSH's sftp-server reports ENOSPC as a bare "Failure", and paramiko's pipelined writes
                # often only notice it as a short file at the final size check: either way the disk is full
                stored = self.size(remote_path)
                raise BoardError(
                    self.device.name,
                    f"upload to {remote_path} failed: the board kept {stored if stored is not None else '?'} of {size} bytes "
                    f"(SFTP: {msg}); its disk is most likely full",
                    f"free disk space on the board under {posixpath.dirname(posixpath.dirname(remote_path))}, then retry",
                    kind="disk_full",
                ) from None
            raise BoardError(
                self.device.name,
                f"upload to {remote_path} failed: {e}",
                "check free disk space and permissions on the board",
                kind="upload_failed",
            ) from None
        return size

    def size(self, remote_path: str) -> int | None:
        import stat as st

        try:
            a = self._sftp_client().stat(remote_path)
        except FileNotFoundError:
            return None
        except OSError as e:
            if getattr(e, "errno", None) == errno.ENOENT:
                return None
            raise self._dropped(f"checking {remote_path}", e) from None
        return a.st_size if a.st_mode is not None and st.S_ISREG(a.st_mode) else None

    def makedirs(self, remote_path: str) -> None:
        import posixpath
        import stat as st

        sftp = self._sftp_client()
        p = remote_path.rstrip("/") or "/"

        def is_dir() -> bool:
            try:
                return st.S_ISDIR(sftp.stat(p).st_mode or 0)
            except OSError:
                return False

        if is_dir():
            return
        parent = posixpath.dirname(p)
        if parent and parent != p:
            self.makedirs(parent)
        try:
            sftp.mkdir(p)
        except OSError as e:
            if is_dir():  # another session (a second device on the same host) made it meanwhile
                return
            raise BoardError(
                self.device.name, f"cannot create {p}: {e}", "check workdir: in devices.yaml and its permissions", kind="os_error"
            ) from None

    def rename(self, src: str, dst: str) -> None:
        try:
            self._sftp_client().posix_rename(src, dst)
        except OSError as e:
            raise BoardError(self.device.name, f"cannot rename {src} -> {dst}: {e}", kind="os_error") from None

    def remove(self, remote_path: str) -> None:
        try:
            self._sftp_client().remove(remote_path)
        except Exception:  # noqa: S110 - best effort by contract: a dead link or a missing file leaves only a stale W/tmp/*.part the agent prunes
            pass

    def home(self) -> str:
        try:
            return self._sftp_client().normalize(".")
        except OSError as e:
            raise self._dropped("resolving the home directory", e) from None
