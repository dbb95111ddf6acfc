"""A real labgrid coordinator + exporter on loopback, exporting sshd farm boards as NetworkService places.

Used by tests/farm/test_labgrid.py and bench/labgrid_bench.py. Each board becomes a place of its name,
matching its NetworkService, with the tags given. The labgrid programs run from this interpreter's scripts.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeq.testing import Missing
from edgeq.testing.sshfarm import FarmBoard, _user, free_port


def script(name: str) -> str:
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.exists():
        raise Missing(f"{name} not found beside this Python: pip install 'edgeq[labgrid]' (tests/run-all.sh does)")
    return str(path)


@dataclass
class LabFarm:
    root: Path
    port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [script("labgrid-client"), "-x", self.address, *args], capture_output=True, text=True, timeout=30, check=check
        )

    @classmethod
    def start(cls, root: Path, boards: list[FarmBoard], tags: dict[str, dict[str, str]]) -> LabFarm:
        root.mkdir(parents=True, exist_ok=True)
        lab = cls(root=root, port=free_port())
        try:
            lab._start(boards, tags)
        except BaseException:
            lab.stop()
            raise
        return lab

    def _start(self, boards: list[FarmBoard], tags: dict[str, dict[str, str]]) -> None:
        log = open(self.root / "coordinator.log", "wb")  # noqa: SIM115 - the process keeps it
        self.procs.append(
            subprocess.Popen([script("labgrid-coordinator"), "-l", self.address], cwd=self.root, stdout=log, stderr=log)
        )
        _wait_port(self.port, 20)
        conf = {b.name: {"NetworkService": {"address": "127.0.0.1", "port": b.port, "username": _user()}} for b in boards}
        (self.root / "exporter.yaml").write_text(json.dumps(conf))  # YAML is a superset of JSON
        elog = open(self.root / "exporter.log", "wb")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(
                [script("labgrid-exporter"), "-c", self.address, "--name", "farm", "exporter.yaml"],
                cwd=self.root,
                stdout=elog,
                stderr=elog,
            )
        )
        for b in boards:
            self.client("-p", b.name, "create")
            self.client("-p", b.name, "add-match", f"farm/{b.name}/NetworkService")
            t = tags.get(b.name, {})
            if t:
                self.client("-p", b.name, "set-tags", *(f"{k}={v}" for k, v in t.items()))
        deadline = time.monotonic() + 20
        while True:
            out = self.client("resources").stdout
            if all(f"farm/{b.name}/NetworkService" in out for b in boards):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"labgrid exporter did not publish the boards: {out!r}")
            time.sleep(0.2)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"labgrid-coordinator did not listen on 127.0.0.1:{port}")
