"""Real test parts for edgeq's own tests and benches: OpenSSH boards, Prometheus, faults, an aarch64 board.

    sshfarm   real sshd boards on loopback ports
    promfarm  a real Prometheus and Pushgateway; synthetic run manifests for the results tests
    faultkit  killing sshd and agents, holding locks, slow/lossy links in a network namespace
    fleet     devices.yaml entries for farm boards; running the CLI in-process
    aarch64   an emulated Raspberry Pi (arm64 Debian under qemu-user) with its own sshd

No pytest here: tests/conftest.py and tests/farm/conftest.py wrap these as fixtures. Nothing in edgeq's
core imports this package (an import-linter contract in pyproject.toml). Nothing here installs
packages: tests/run-all.sh does; a missing part raises Missing, naming it.
"""

from __future__ import annotations


class Missing(RuntimeError):
    """A real part the tests need is not installed here; the message names it and how to get it."""
