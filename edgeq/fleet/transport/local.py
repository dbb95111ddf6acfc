"""The `local` transport: the same agent, same argv, in a subprocess on this machine.

An agent call also gets --watch-stdin and, as its stdin, a pipe whose only writer is this process: when edgeq
ends, however (SIGKILL included), the kernel closes it and the agent stops and frees the board's lock, as it
does over SSH when sshd closes the channel. Without it a killed edgeq left the agent measuring, lock held,
until its own --deadline (command_timeout less 5 s: ~895 s by default).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.preflight import BOOT_SCRIPT, step_of
from edgeq.fleet.transport.base import BoardError, Progress

WATCH = "--watch-stdin"


def _is_agent_call(argv: list[str]) -> bool:
    """`python AGENT.pyz SUB ...` or `python -c BOOT_SCRIPT W AGENT SHA SUB ...` (as step_of tells them apart)."""
    return (len(argv) > 2 and argv[1].endswith(".pyz")) or (len(argv) > 6 and argv[1] == "-c" and argv[2] == BOOT_SCRIPT)


class LocalTransport:
    def __init__(self, device: DeviceSpec):
        self.device = device

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        lifeline = None
        if _is_agent_call(argv):
            argv = argv if WATCH in argv else [*argv, WATCH]
            lifeline = os.pipe()  # both ends close-on-exec: the agent gets the read end as its stdin, no one the write end
        try:
            p = subprocess.run(  # noqa: S603 - an argv list, no shell; argv[0] is the configured python
                argv,
                stdin=lifeline[0] if lifeline else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as e:
            return 127, "", f"{e.strerror}: {argv[0]}"
        except PermissionError as e:
            return 126, "", f"{e.strerror}: {argv[0]}"
        except subprocess.TimeoutExpired:
            raise BoardError(
                self.device.name,
                f"{step_of(argv) if len(argv) > 2 else 'command'} timed out after {timeout:g}s",
                kind="command_timeout",
            ) from None
        finally:
            for fd in lifeline or ():
                os.close(fd)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def put_file(self, local: Path, remote_path: str, callback: Progress | None = None) -> int:
        total = Path(local).stat().st_size
        try:
            with open(local, "rb") as src, open(remote_path, "wb") as dst:
                done = 0
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    done += len(chunk)
                    if callback:
                        callback(done, total)
                dst.flush()
                os.fsync(dst.fileno())
        except OSError as e:
            raise BoardError(self.device.name, f"copy to {remote_path} failed: {e.strerror or e}", kind="upload_failed") from None
        return total

    def size(self, remote_path: str) -> int | None:
        p = Path(remote_path)
        return p.stat().st_size if p.is_file() else None

    def makedirs(self, remote_path: str) -> None:
        try:
            Path(remote_path).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BoardError(self.device.name, f"cannot create {remote_path}: {e.strerror or e}", kind="os_error") from None

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, remote_path: str) -> None:
        try:
            os.unlink(remote_path)
        except IsADirectoryError:
            shutil.rmtree(remote_path, ignore_errors=True)
        except OSError:  # best effort by contract (missing file, permissions)
            pass

    def home(self) -> str:
        return str(Path.home())

    def close(self) -> None:
        pass
