"""The SSH transport's files over exec channels: the fallback when SFTP is unusable on a board.

A login shell that prints on stdout (a banner echoed from ~/.bashrc, `conda init`, a fortune) puts its text
in front of the SFTP protocol, and paramiko stops at "Garbage packet received"; some boards have no sftp
subsystem at all. Commands still work there: their output is read after the noise. So each file operation
becomes one fixed POSIX sh script (its arguments quoted like every argv), and an upload streams the file
into the board's temp file on the command's stdin. Each script prints one marker line, found after any
noise; the upload is verified by size here, and by sha256 by the agent before anything uses it.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import BoardError, Progress, watched

_MARK = "EDGEQ-FILE-OP"
_CHUNK = 32768

# positional parameters only: the paths never become part of the script text
_SIZE = f'if [ -f "$1" ]; then printf "{_MARK} %s\\n" "$(wc -c < "$1")"; else echo "{_MARK} none"; fi'
_MKDIR = f'mkdir -p -- "$1" && echo "{_MARK} ok"'
_RENAME = f'mv -f -- "$1" "$2" && echo "{_MARK} ok"'
_REMOVE = f'rm -f -- "$1"; echo "{_MARK} ok"'
_HOME = f'cd && printf "{_MARK} %s\\n" "$PWD"'
_PUT = f'cat > "$1" && printf "{_MARK} %s\\n" "$(wc -c < "$1")"'


def marker_value(out: str) -> str | None:
    """The value of the last marker line in a command's stdout (shell noise before it is skipped)."""
    for line in reversed(out.splitlines()):
        i = line.find(_MARK + " ")
        if i >= 0:
            return line[i + len(_MARK) + 1 :].strip()
    return None


class ExecFiles:
    """File operations as commands (mixed into SSHTransport, which provides run and the channel plumbing)."""

    device: DeviceSpec
    login_noise: str | None

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        raise NotImplementedError

    def _transport(self) -> Any:
        raise NotImplementedError

    def _bounded(self, what: str, seconds: float, fn: Callable[[], Any], cut: Callable[[], Any]) -> Any:
        raise NotImplementedError

    def _dropped(self, what: str, e: BaseException) -> BoardError:
        raise NotImplementedError

    def _collect(self, chan: Any, t: Any, what: str, timeout: float, deadline: float) -> tuple[int, bytes, bytes]:
        raise NotImplementedError

    def _script(self, what: str, script: str, *args: str) -> str:
        """Run one file-op script; its marker value, or a BoardError naming the step and what the board said."""
        limit = max(30.0, 3 * self.device.connect_timeout)
        rc, out, err = self.run(["sh", "-c", script, "sh", *args], limit)
        value = marker_value(out)
        if rc == 0 and value is not None:
            return value
        said = (err.strip() or out.strip())[-300:] or f"exit {rc}"
        full = "No space left" in said or "Disk quota" in said
        raise BoardError(
            self.device.name,
            f"{what} failed on the board (over an exec channel, SFTP being unusable): {said}",
            "free space on the board under the work dir" if full else "check the work dir's permissions on the board",
            kind="disk_full" if full else "os_error",
        )

    def _x_size(self, remote_path: str) -> int | None:
        v = self._script(f"checking {remote_path}", _SIZE, remote_path)
        return None if v == "none" else int(v)

    def _x_makedirs(self, remote_path: str) -> None:
        self._script(f"creating {remote_path}", _MKDIR, remote_path)

    def _x_rename(self, src: str, dst: str) -> None:
        self._script(f"renaming {src} -> {dst}", _RENAME, src, dst)

    def _x_remove(self, remote_path: str) -> None:
        try:
            self._script(f"removing {remote_path}", _REMOVE, remote_path)
        except Exception:  # noqa: S110 - best effort by contract, as over SFTP
            pass

    def _x_home(self) -> str:
        return self._script("resolving the home directory", _HOME)

    def _x_put(self, local: Path, remote_path: str, callback: Progress | None = None) -> int:
        """Stream `local` into remote_path on the stdin of `cat`; the board's size must match ours."""
        import paramiko

        size = Path(local).stat().st_size
        what = f"the upload of {Path(local).name}"
        limit = self.device.command_timeout
        deadline = time.monotonic() + limit
        t = self._transport()
        ct = self.device.connect_timeout
        try:
            with watched(f"the session open for {what}", ct + 1):
                chan = t.open_session(timeout=ct)
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise self._dropped(f"opening a session for {what}", e) from None
        try:
            from edgeq.fleet.transport.shelltext import quote_argv

            self._bounded(
                f"the exec request for {what}",
                ct,
                lambda: chan.exec_command(quote_argv(["sh", "-c", _PUT, "sh", remote_path])),
                chan.close,
            )
            chan.settimeout(3 * ct)  # one window of the upload: the board must take it within this
            self._bounded(what, limit, lambda: self._send(chan, Path(local), size, callback), chan.close)
            rc, out, err = self._collect(chan, t, what, limit, deadline)
        except BoardError:
            raise
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise self._dropped(f"while uploading {Path(local).name}", e) from None
        finally:
            chan.close()
        got = marker_value(out.decode("utf-8", "replace"))
        if rc == 0 and got is not None and got.isdigit() and int(got) == size:
            return size
        said = err.decode("utf-8", "replace").strip()[-300:]
        full = "No space left" in said or "Disk quota" in said
        raise BoardError(
            self.device.name,
            f"upload to {remote_path} failed: the board kept {got or '?'} of {size} bytes (exit {rc}"
            + (f": {said})" if said else ")")
            + ("; its disk is full" if full else ""),
            f"free disk space on the board under {posixpath.dirname(posixpath.dirname(remote_path))}, then retry"
            if full
            else "check free disk space and permissions on the board",
            kind="disk_full" if full else "upload_failed",
        )

    @staticmethod
    def _send(chan: Any, local: Path, size: int, callback: Progress | None) -> None:
        done = 0
        with open(local, "rb") as f:
            while chunk := f.read(_CHUNK):
                chan.sendall(chunk)
                done += len(chunk)
                if callback:
                    callback(done, size)
        chan.shutdown_write()  # EOF: cat ends, then the size line comes back
