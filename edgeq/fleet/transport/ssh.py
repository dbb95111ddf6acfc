"""The `ssh` transport (paramiko, imported lazily): host keys checked, keys only, argv quoted.

One SSHTransport = one SSH connection, used by one thread for one board at a time.
"""

from __future__ import annotations

import errno
import os
import random
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.preflight import step_of
from edgeq.fleet.transport.base import BoardError, watched
from edgeq.fleet.transport.capture import STDERR_CAP, STDOUT_CAP, TailBuffer
from edgeq.fleet.transport.jump import close_all, open_route, passphrase_for, tune, verified_client
from edgeq.fleet.transport.keyformat import key_file_problem
from edgeq.fleet.transport.retry import CONNECT_GATE, ConnectGate, RetryPolicy
from edgeq.fleet.transport.shelltext import quote_argv
from edgeq.fleet.transport.ssherrors import banner_timeout_error, classify_connect_error, quiet_paramiko
from edgeq.fleet.transport.sshexec import ExecFiles
from edgeq.fleet.transport.sshfiles import SFTPFiles, io_timeout

_UNREACHABLE_ERRNOS = {
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTDOWN,
}


def gate_timeout(device: DeviceSpec) -> float:
    """How long a board waits for its address's connection slot (others' attempts are bounded too)."""
    return max(60.0, 6 * device.connect_timeout * (1 + len(device.jump)))


class SSHTransport(ExecFiles, SFTPFiles):
    def __init__(
        self,
        device: DeviceSpec,
        *,
        env: dict | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry=None,
        gate: ConnectGate = CONNECT_GATE,
        rng: random.Random | None = None,
        output_caps: tuple[int, int] = (STDOUT_CAP, STDERR_CAP),
    ):
        self.device = device
        self._caps = output_caps  # bytes of stdout, stderr kept per command (the tail)
        self._env = os.environ if env is None else env
        self._sleep = sleep
        self._on_retry = on_retry
        self._gate = gate
        self._rng = rng
        self._client = None
        self._sftp = None
        self._hops: list = []  # jump hosts' clients, first hop first

    # ---------------------------------------------------------------- connection

    def connect(self) -> SSHTransport:
        quiet_paramiko()
        d = self.device
        policy = RetryPolicy(attempts=d.retries, base_delay=d.retry_delay, max_delay=30.0, jitter=True)
        problem = key_file_problem(d.key_file) if d.key_file else None
        if problem:  # what OpenSSH does with such a key: refuse it before any connection
            raise BoardError(d.name, problem, f"chmod 600 {d.key_file}", kind="auth")

        def once():
            try:
                # the gate protects the sshd that takes the TCP connection: the first jump host, if any
                first = (d.jump[0].host, d.jump[0].port) if d.jump else (str(d.host), d.port)
                with watched(f"waiting for a connection slot to {d.address}", gate_timeout(d) + 1):
                    slot = self._gate.attempt(first[0], first[1], timeout=gate_timeout(d))
                    slot.__enter__()
                try:
                    # TCP connect, banner + key exchange, auth: each bounded by connect_timeout
                    with watched(f"connecting to {d.address}", (3 * d.connect_timeout + 2) * (1 + len(d.jump))):
                        return self._connect_once()
                finally:
                    slot.__exit__(None, None, None)
            except BoardError:
                raise
            except TimeoutError as e:
                if "connection slot" in str(e):
                    raise BoardError(
                        d.name,
                        f"{e}: other boards behind the same address were connecting",
                        "lower --parallel, or raise MaxStartups in that sshd",
                        kind="timeout",
                    ) from None
                raise classify_connect_error(d, e) from None
            except Exception as e:
                raise classify_connect_error(d, e) from None

        self._client = policy.call(
            once,
            retryable=lambda e: isinstance(e, BoardError) and e.retryable,
            sleep=self._sleep,
            on_retry=self._on_retry,
            rng=self._rng,
        )
        return self

    def _connect_once(self):
        import paramiko

        d = self.device
        if d.key_file and not Path(d.key_file).is_file():
            raise BoardError(d.name, f"key file {d.key_file} not found", "fix key_file: in devices.yaml", kind="auth")
        passphrase = passphrase_for(d, d.key_file, self._env)
        client = verified_client(d)
        hops, sock = open_route(d, d.jump, (str(d.host), d.port), self._env) if d.jump else ([], None)
        try:
            client.connect(
                hostname=str(d.host),
                port=d.port,
                username=d.user,
                key_filename=d.key_file,
                passphrase=passphrase,
                # a devices.yaml key is THE key: no fallback to agent or ~/.ssh that could log in as someone else
                # (an IdentityFile from ssh_config adds to the agent's keys, as in ssh, unless IdentitiesOnly yes)
                allow_agent=not d.key_file or d.agent_fallback,
                look_for_keys=not d.key_file,
                sock=sock,
                timeout=d.connect_timeout,
                banner_timeout=d.connect_timeout,
                auth_timeout=d.connect_timeout,
                channel_timeout=d.connect_timeout,
            )
        except BaseException as e:
            t = client.get_transport()
            # paramiko stops waiting for the banner at the same time as for the whole negotiation and
            # then reports "No existing session": no remote version at all means no banner ever came
            no_banner = t is not None and not getattr(t, "remote_version", "") and not isinstance(e, paramiko.BadHostKeyException)
            client.close()
            close_all(hops)
            if no_banner and isinstance(e, (paramiko.SSHException, EOFError, OSError)):
                raise banner_timeout_error(d) from None
            raise
        self._hops = hops
        t = client.get_transport()
        if t is not None:
            tune(t, d.keepalive)
        return client

    def close(self) -> None:
        sftp, client, hops = self._sftp, self._client, self._hops
        self._sftp = self._client = None
        self._hops = []
        with watched(f"closing the connection to {self.device.address}", self.device.connect_timeout):
            for obj in (sftp, client, *reversed(hops)):
                if obj is not None:
                    try:
                        obj.close()
                    except Exception:  # noqa: S110 - closing a dead connection may raise; nothing to do
                        pass

    def _stalled(self, what: str, seconds: float) -> BoardError:
        return BoardError(
            self.device.name,
            f"{self.device.address} stopped answering: no reply to {what} within {seconds:g}s",
            "the board accepted the login, then hung (a wedged sshd or an overloaded board): check it and its sshd, "
            "or raise connect_timeout in devices.yaml for a slow board",
            kind="timeout",
            step=what,
        )

    def _bounded(self, what: str, seconds: float, fn: Callable[[], Any], cut: Callable[[], Any]) -> Any:
        """fn() within `seconds`, else cut() (closing the channel wakes paramiko's unbounded waits) and a timeout."""
        fired = threading.Event()

        def fire() -> None:
            fired.set()
            try:
                cut()
            except Exception:  # noqa: S110 - the channel is given up either way
                pass

        timer = threading.Timer(seconds, fire)
        timer.daemon = True
        timer.start()
        try:
            with watched(what, seconds):
                return fn()
        except Exception as e:
            if fired.is_set() or isinstance(e, TimeoutError):
                raise self._stalled(what, seconds) from None
            raise
        finally:
            timer.cancel()

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
        if isinstance(e, TimeoutError):  # socket.timeout: a channel read hit its bound (io_timeout)
            return self._stalled(what, io_timeout(self.device))
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
        what = step_of(argv)  # the agent's subcommand names the step; any other command (the work-dir check) its program
        deadline = time.monotonic() + timeout
        t = self._transport()
        ct = self.device.connect_timeout
        step = f"the session open for {what}"
        try:
            with watched(step, ct + 1):
                chan = t.open_session(timeout=ct)
        except (paramiko.SSHException, EOFError, OSError) as e:
            if "Timeout opening channel" in str(e) or isinstance(e, TimeoutError):
                raise self._stalled(step, ct) from None
            raise self._dropped(f"opening a session for {what}", e) from None
        try:
            self._bounded(f"the exec request for {what}", ct, lambda: chan.exec_command(cmd), chan.close)
            with watched(f"running {what}", max(0.0, deadline - time.monotonic())):
                rc, out, err = self._collect(chan, t, what, timeout, deadline)
        except BoardError:
            raise
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise self._dropped(f"while running {what}", e) from None
        finally:
            chan.close()
        return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def _collect(self, chan, t, what: str, timeout: float, deadline: float) -> tuple[int, bytes, bytes]:
        """Drain the command's output until it exits or the deadline passes; keep the tail of each stream."""
        out, err = TailBuffer(self._caps[0], "stdout"), TailBuffer(self._caps[1], "stderr")
        # drain both streams while waiting: a full stderr window would block the remote
        # process and recv_exit_status() forever (the classic paramiko deadlock)
        fd = chan.fileno()
        while True:
            while chan.recv_ready():
                out.add(chan.recv(65536))
            while chan.recv_stderr_ready():
                err.add(chan.recv_stderr(65536))
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
        return rc, out.value(), err.value()
