"""The SSH transport's file half: SFTP with every reply bounded (no shell involved).

A mixin of SSHTransport (edgeq.fleet.transport.ssh), which owns the connection; paramiko is imported lazily.
"""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import BoardError, Progress, watched


def io_timeout(device: DeviceSpec) -> float:
    """The bound on one SFTP reply (stat, mkdir, rename, one window of an upload): 3 x connect_timeout."""
    return 3 * device.connect_timeout


class SFTPFiles:
    """Files over SFTP, or over exec channels (edgeq.fleet.transport.sshexec) once SFTP proved unusable on this board."""

    device: DeviceSpec
    _client: Any
    _sftp: Any
    _via_exec: bool = False
    login_noise: str | None = None  # what the board's login shell prints before every command, if anything

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        raise NotImplementedError

    def _use_exec(self) -> bool:
        if not self._via_exec and self._sftp is None:
            self._sftp_client()
        return self._via_exec

    def _fall_back_to_exec(self, e: BaseException) -> None:
        """SFTP failed at its start: if plain commands work, files go over exec channels from now on."""
        d = self.device
        try:
            rc, out, _ = self.run(["true"], max(30.0, 3 * d.connect_timeout))
        except BoardError:
            rc, out = -1, ""
        if rc != 0:
            raise BoardError(
                d.name,
                f"SFTP is not available on {d.address} ({type(e).__name__}: {e}) and a plain command failed too",
                "enable the sftp Subsystem in the board's sshd_config and check the login shell",
                kind="ssh",
            )
        self._via_exec = True
        self.login_noise = out.strip() or None
        import logging

        from edgeq.fleet.transport.shelltext import noise_excerpt

        why = f"its login shell prints {noise_excerpt(out)!r} before every command" if out.strip() else f"{e}"
        logging.getLogger("edgeq.fleet").info("%s: SFTP unusable (%s): files go over exec channels", d.name, why)

    def _transport(self) -> Any:
        raise NotImplementedError

    def _stalled(self, what: str, seconds: float) -> BoardError:
        raise NotImplementedError

    def _dropped(self, what: str, e: BaseException) -> BoardError:
        raise NotImplementedError

    def _bounded(self, what: str, seconds: float, fn: Callable[[], Any], cut: Callable[[], Any]) -> Any:
        raise NotImplementedError

    def _x_put(self, local: Path, remote_path: str, callback: Progress | None = None) -> int:
        raise NotImplementedError

    def _x_size(self, remote_path: str) -> int | None:
        raise NotImplementedError

    def _x_makedirs(self, remote_path: str) -> None:
        raise NotImplementedError

    def _x_rename(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def _x_remove(self, remote_path: str) -> None:
        raise NotImplementedError

    def _x_home(self) -> str:
        raise NotImplementedError

    def _sftp_client(self):
        if self._sftp is None:
            import paramiko

            t = self._transport()
            ct = self.device.connect_timeout
            # SFTPClient.from_transport waits on the subsystem reply and the version packet with no bound:
            # open the channel ourselves, each reply bounded
            try:
                with watched("the session open for SFTP", ct + 1):
                    chan = t.open_session(timeout=ct)
            except (paramiko.SSHException, EOFError, OSError) as e:
                if "Timeout opening channel" in str(e) or isinstance(e, TimeoutError):
                    raise self._stalled("the session open for SFTP", ct) from None
                raise self._dropped("opening a session for SFTP", e) from None
            try:
                self._bounded("the sftp subsystem request", ct, lambda: chan.invoke_subsystem("sftp"), chan.close)
                chan.settimeout(io_timeout(self.device))
                self._sftp = self._bounded(
                    "the SFTP version handshake", io_timeout(self.device), lambda: paramiko.SFTPClient(chan), chan.close
                )
            except BoardError:
                chan.close()
                raise
            except (paramiko.SSHException, paramiko.SFTPError, EOFError, OSError) as e:
                chan.close()
                self._fall_back_to_exec(e)  # raises when commands do not work either
        return self._sftp

    def _sftp_op(self, what: str, fn: Callable[[Any], Any]) -> Any:
        """One SFTP request: its reply is bounded by the channel timeout (io_timeout), the watchdog told so."""
        sftp = self._sftp_client()
        with watched(what, io_timeout(self.device) + 1):
            return fn(sftp)

    def put_file(self, local: Path, remote_path: str, callback: Progress | None = None) -> int:
        import paramiko

        if self._use_exec():
            return self._x_put(local, remote_path, callback)

        sftp = self._sftp_client()
        size = Path(local).stat().st_size
        what = f"the upload of {Path(local).name}"
        limit = self.device.command_timeout  # the whole transfer; each reply within it: io_timeout
        try:
            self._bounded(what, limit, lambda: sftp.put(str(local), remote_path, callback=callback, confirm=True), sftp.close)
        except BoardError as e:
            if e.kind == "timeout":
                self._sftp = None  # closed by the bound: a later request opens a new channel
            raise
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

        if self._use_exec():
            return self._x_size(remote_path)

        try:
            a = self._sftp_op(f"an SFTP stat of {remote_path}", lambda c: c.stat(remote_path))
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

        p = remote_path.rstrip("/") or "/"
        if self._use_exec():
            return self._x_makedirs(p)

        def is_dir() -> bool:
            try:
                return st.S_ISDIR(self._sftp_op(f"an SFTP stat of {p}", lambda c: c.stat(p)).st_mode or 0)
            except TimeoutError as e:
                raise self._dropped(f"checking {p}", e) from None
            except OSError:
                return False

        if is_dir():
            return
        parent = posixpath.dirname(p)
        if parent and parent != p:
            self.makedirs(parent)
        try:
            self._sftp_op(f"an SFTP mkdir of {p}", lambda c: c.mkdir(p))
        except TimeoutError as e:
            raise self._dropped(f"creating {p}", e) from None
        except OSError as e:
            if is_dir():  # another session (a second device on the same host) made it meanwhile
                return
            raise BoardError(
                self.device.name, f"cannot create {p}: {e}", "check workdir: in devices.yaml and its permissions", kind="os_error"
            ) from None

    def rename(self, src: str, dst: str) -> None:
        if self._use_exec():
            return self._x_rename(src, dst)
        try:
            self._sftp_op(f"an SFTP rename to {dst}", lambda c: c.posix_rename(src, dst))
        except TimeoutError as e:
            raise self._dropped(f"renaming {src}", e) from None
        except OSError as e:
            raise BoardError(self.device.name, f"cannot rename {src} -> {dst}: {e}", kind="os_error") from None

    def remove(self, remote_path: str) -> None:
        try:
            if self._use_exec():
                return self._x_remove(remote_path)
            self._sftp_op(f"an SFTP remove of {remote_path}", lambda c: c.remove(remote_path))
        except Exception:  # noqa: S110 - best effort by contract: a dead link or a missing file leaves only a stale W/tmp/*.part the agent prunes
            pass

    def home(self) -> str:
        if self._use_exec():
            return self._x_home()
        try:
            return self._sftp_op("an SFTP realpath of the home directory", lambda c: c.normalize("."))
        except OSError as e:
            raise self._dropped("resolving the home directory", e) from None
