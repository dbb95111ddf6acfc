"""The transport interface and the one error type every board failure becomes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edgeq.errors import FleetError

if TYPE_CHECKING:
    from edgeq.fleet.inventory import DeviceSpec

# kinds that mean "we never got to talk to the board" (summary status "unreachable")
UNREACHABLE_KINDS = frozenset({"unreachable", "refused", "timeout", "dns"})


class BoardError(FleetError):
    """A failure on one board. The message starts with the device name; `kind` is machine-readable."""

    def __init__(
        self, device: str, message: str, hint: str | None = None, *, kind: str = "error", retryable: bool = False, **extra
    ):
        super().__init__(f"{device}: {message}", hint)
        self.device = device
        self.kind = kind
        self.retryable = retryable  # only connection failures are retried
        self.extra = extra

    @property
    def unreachable(self) -> bool:
        return self.kind in UNREACHABLE_KINDS

    def to_dict(self) -> dict:
        return {**super().to_dict(), "device": self.device, "kind": self.kind, **self.extra}


Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class Transport(Protocol):
    """How edgeq reaches one board. Every command is an argv list; implementations quote it."""

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """Run argv on the board; (exit code, stdout, stderr). Negative/255 codes: killed or lost."""
        ...

    def put_file(self, local: Path, remote_path: str, callback: Progress | None = None) -> int:
        """Copy a local file to remote_path (the caller picks a temp name); returns bytes sent."""
        ...

    def size(self, remote_path: str) -> int | None:
        """Size of a regular file on the board, None if absent."""
        ...

    def makedirs(self, remote_path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None:
        """Atomic replace on the board's filesystem."""
        ...

    def remove(self, remote_path: str) -> None:
        """Best effort: a missing file is not an error."""
        ...

    def home(self) -> str:
        """The login user's home directory on the board (resolves `~` in workdir)."""
        ...

    def close(self) -> None: ...


TransportFactory = Callable[["DeviceSpec"], Transport]  # a connected transport for one device
