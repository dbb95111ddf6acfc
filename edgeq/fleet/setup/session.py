"""One board being set up: its transport, resolved paths, and the helpers every step of `devices setup` uses."""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import BoardError, Transport
from edgeq.fleet.transport.remotehome import expand_home, resolve_workdir

MARKER = "edgeq-setup.json"
NO_PYTHON_HINT = (
    "install Python 3 on the board (Raspberry Pi OS, Ubuntu: sudo apt install python3 python3-venv) "
    "or set python: in devices.yaml to its interpreter's path"
)


class SetupSession:
    """One board being set up: its transport, resolved paths and the run helper."""

    def __init__(self, device: DeviceSpec, t: Transport):
        self.d, self.t = device, t
        home = t.home()
        self.workdir = resolve_workdir(str(device.workdir), home)
        self.venv = f"{self.workdir}/venv"
        self.venv_python = f"{self.venv}/bin/python"
        self.wheels = f"{self.workdir}/wheels"
        self.python = expand_home(str(device.python), home)
        self.bytes_uploaded = 0
        self.building: str | None = None  # W/venvs/ID while a new venv is made, installed and verified

    def run(self, argv: list[str], what: str, timeout: float | None = None) -> tuple[int, str, str]:
        return self.t.run(argv, timeout or self.d.command_timeout)

    def json_of(self, argv: list[str], what: str) -> dict:
        """Run a board-side script; its last JSON line (shell noise before it is skipped)."""
        rc, out, err = self.run(argv, what)
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    break
        if rc in (126, 127):
            raise BoardError(
                self.d.name, f"cannot run the board's python {argv[0]!r} (not found)", NO_PYTHON_HINT, kind="no_python"
            )
        raise BoardError(self.d.name, f"{what} failed (exit {rc}): {tail(err or out)}", kind="setup_failed")

    def fail(self, message: str, hint: str | None, kind: str) -> BoardError:
        return BoardError(self.d.name, message, hint, kind=kind)


def tail(text: str, n: int = 400) -> str:
    text = text.strip()
    return ("..." + text[-n:]) if len(text) > n else text


def put_text(s: SetupSession, text: str, remote: str) -> None:
    """Upload a small file under a temporary name and rename it into place."""
    with tempfile.NamedTemporaryFile("w", suffix=".part", delete=False) as f:
        f.write(text)
    local = Path(f.name)
    tmp = f"{remote.rsplit('/', 1)[0]}/.{secrets.token_hex(6)}.part"
    try:
        s.bytes_uploaded += s.t.put_file(local, tmp)
        s.t.rename(tmp, remote)
    except BaseException:
        s.t.remove(tmp)
        raise
    finally:
        local.unlink(missing_ok=True)
