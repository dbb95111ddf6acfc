"""The `local` transport: the same agent, same argv, in a subprocess on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.preflight import step_of
from edgeq.fleet.transport.base import BoardError, Progress


class LocalTransport:
    def __init__(self, device: DeviceSpec):
        self.device = device

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        try:
            p = subprocess.run(  # noqa: S603 - an argv list, no shell; argv[0] is the configured python
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
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
