"""A farm of real OpenSSH servers on loopback, one per fake "board", for fleet tests.

Each board: its own sshd (/usr/sbin/sshd -D -e -f CONFIG -p PORT) with its own ed25519 host key,
ListenAddress 127.0.0.1, key-only auth for the current user, and its own work dir. The board's
python is this interpreter (it has ai-edge-litert). Nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeq.testing import Missing

SSHD = "/usr/sbin/sshd"


def ensure_sshd() -> None:
    """openssh-server must be installed (tests/run-all.sh does it); sshd needs its privsep dir."""
    if not Path(SSHD).exists():
        raise Missing(f"{SSHD} is missing: install openssh-server (tests/run-all.sh does)")
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, passphrase: str = "", comment: str = "edgeq-test") -> str:
    """Write an ed25519 key pair; return the public key line."""
    subprocess.run(  # noqa: S603,S607 - fixed argv
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path)], check=True, capture_output=True
    )
    return Path(str(path) + ".pub").read_text().strip()


def fingerprint_of(pub_path: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub_path)], check=True, capture_output=True, text=True).stdout  # noqa: S603,S607
    return out.split()[1]


@dataclass
class FarmBoard:
    name: str
    port: int
    root: Path
    workdir: Path
    host_key: Path
    proc: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def host_pub(self) -> str:
        return Path(str(self.host_key) + ".pub").read_text().strip()

    @property
    def known_hosts_line(self) -> str:
        keytype, b64 = self.host_pub.split()[:2]
        return f"[127.0.0.1]:{self.port} {keytype} {b64}"

    def session_pids(self) -> list[int]:
        """Per-connection sshd processes (children of the listener) and their descendants."""
        if self.proc is None:
            return []
        children: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
        out, todo = [], list(children.get(self.proc.pid, []))
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    def drop_connections(self) -> int:
        """SIGKILL every live session: the client sees the connection die mid-operation."""
        n = 0
        for pid in self.session_pids():
            try:
                os.kill(pid, signal.SIGKILL)
                n += 1
            except ProcessLookupError:
                pass
        return n


@dataclass
class SSHFarm:
    root: Path
    boards: list[FarmBoard] = field(default_factory=list)
    user_key: Path | None = None
    wrong_key: Path | None = None  # a key the boards do not accept
    enc_key: Path | None = None  # passphrase-protected and accepted
    enc_passphrase: str = ""
    known_hosts: Path | None = None

    @classmethod
    def start(cls, root: Path, n: int = 3, passphrase: str = "farm-passphrase-7f3a9c") -> SSHFarm:
        ensure_sshd()
        root.mkdir(parents=True, exist_ok=True)
        farm = cls(root=root, enc_passphrase=passphrase)
        keys = root / "keys"
        keys.mkdir(exist_ok=True)
        farm.user_key, farm.wrong_key, farm.enc_key = keys / "id_user", keys / "id_wrong", keys / "id_enc"
        authorized = [keygen(farm.user_key), keygen(farm.enc_key, passphrase)]
        keygen(farm.wrong_key)
        auth_file = keys / "authorized_keys"
        auth_file.write_text("\n".join(authorized) + "\n")
        auth_file.chmod(0o600)
        try:
            for i in range(n):
                farm._start_board(f"b{i + 1}", auth_file)
        except BaseException:
            farm.stop()
            raise
        farm.known_hosts = root / "known_hosts"
        farm.known_hosts.write_text("".join(b.known_hosts_line + "\n" for b in farm.boards))
        return farm

    def add_board(self, name: str, *, login_banner: str | None = None) -> FarmBoard:
        """One more board after start(); its host key joins the farm's known_hosts.

        login_banner: the board's ~/.bashrc prints it on stdout for every command, as a chatty real image does
        (a banner, `conda init`, a fortune); SFTP then runs the external sftp-server through that login shell,
        so the banner lands in front of the SFTP protocol exactly as on such a board.
        """
        assert self.user_key is not None and self.known_hosts is not None  # noqa: S101 - start() ran
        b = self._start_board(name, self.user_key.parent / "authorized_keys", login_banner=login_banner)
        with open(self.known_hosts, "a") as f:
            f.write(b.known_hosts_line + "\n")
        return b

    def _start_board(self, name: str, auth_file: Path, *, login_banner: str | None = None) -> FarmBoard:
        broot = self.root / name
        broot.mkdir(exist_ok=True)
        sftp = "internal-sftp"
        if login_banner is not None:
            import shlex

            (broot / ".bashrc").write_text(f"echo {shlex.quote(login_banner)}\n")
            sftp = "/usr/lib/openssh/sftp-server"  # run through the login shell, as a stock sshd_config does
        host_key = broot / "ssh_host_ed25519_key"
        keygen(host_key, comment=f"host-{name}")
        last_err = ""
        for _ in range(5):  # a port picked free can be taken before sshd binds it: pick again
            port = free_port()
            cfg = broot / "sshd_config"
            cfg.write_text(
                "\n".join(
                    [
                        "ListenAddress 127.0.0.1",
                        f"HostKey {host_key}",
                        f"AuthorizedKeysFile {auth_file}",
                        f"PidFile {broot / 'sshd.pid'}",
                        "StrictModes no",
                        "UsePAM no",
                        "PasswordAuthentication no",
                        "KbdInteractiveAuthentication no",
                        "PermitRootLogin prohibit-password",
                        f"Subsystem sftp {sftp}",
                        "MaxStartups 50",
                        "MaxSessions 50",
                        "LogLevel ERROR",
                        # a board's own clean login, not this host's: root's ~/.bashrc here runs `pyenv init`
                        # on every SSH command (0.25-0.3 s of CPU each), which no Raspberry Pi account does
                        f"SetEnv HOME={broot}",
                        "",
                    ]
                )
            )
            log = broot / "sshd.log"
            with open(log, "ab") as logf:  # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(  # noqa: S603 - fixed argv
                    [SSHD, "-D", "-e", "-f", str(cfg), "-p", str(port)], stdout=logf, stderr=subprocess.STDOUT
                )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                        s.settimeout(2)
                        if s.recv(4).startswith(b"SSH-"):
                            break
                except OSError:
                    time.sleep(0.05)
            if proc.poll() is None:
                b = FarmBoard(name, port, broot, broot / "work", host_key, proc, log)
                b.workdir.mkdir(exist_ok=True)
                self.boards.append(b)
                return b
            last_err = log.read_text(errors="replace")
        raise RuntimeError(f"sshd for {name} did not start: {last_err[-2000:]}")

    def device_yaml(self, board: FarmBoard, name: str | None = None, **over) -> str:
        """One `devices:` list item for a board (YAML flow mapping); keyword args override keys."""
        d = {
            "name": name or board.name,
            "host": "127.0.0.1",
            "port": board.port,
            "user": _user(),
            "key_file": str(self.user_key),
            "known_hosts": str(self.known_hosts),
            "python": sys.executable,
            "workdir": str(board.workdir),
            "tags": ["farm"],
            "connect_timeout": 5,
            "retries": 2,
            "retry_delay": 0.05,
            "lock_timeout": 30,
        }
        d.update(over)
        import json

        return "  - " + json.dumps({k: v for k, v in d.items() if v is not None}) + "\n"

    def stop(self) -> None:
        # sessions first: once the listener is gone they are re-parented and harder to find
        for b in self.boards:
            b.drop_connections()
        for b in self.boards:
            if b.proc is not None and b.proc.poll() is None:
                b.proc.terminate()
                try:
                    b.proc.wait(5)
                except subprocess.TimeoutExpired:
                    b.proc.kill()
                    b.proc.wait(5)


def lean_python(root: Path) -> str:
    """A board-like interpreter for big farms: a venv of this Python whose only site entry is this Python's
    site-packages as a plain path (numpy and ai-edge-litert import), so the .pth hooks of this development host
    (the editable edgeq finder, a CA-bundle injector: 70-170 ms of CPU per Python start) do not run on every
    board command, as they would not on a board's own venv (`edgeq devices setup` makes one per board)."""
    import site
    import sysconfig

    venv = root / "board-python"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)  # noqa: S603
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    purelib.mkdir(parents=True, exist_ok=True)
    (purelib / "host-site-packages.pth").write_text("".join(p + "\n" for p in site.getsitepackages()))
    return str(venv / "bin" / "python")


def _user() -> str:
    import getpass

    return getpass.getuser()
