"""OpenSSH client config (~/.ssh/config or devices.yaml `ssh_config:`) -> where and how to reach a host.

Parsing and lookup are paramiko.SSHConfig's (imported inside the functions, only when a config file is in
effect). Around it: Include is expanded here (paramiko keeps it as an unknown key), every line keeps its
file:line so errors can point at it, and directives edgeq cannot honour safely are refused:
ProxyCommand (a shell command per connection; refused on the looked-up host's values) and `Match exec`
(paramiko runs it through invoke during lookup). `Match` criteria are judged on the entries paramiko itself
parsed (its shlex tokens: `"exec"`, `ex'ec'`, `!"exec"`, `Match=exec` are all exec), at load, and a guard in
the lookup refuses any that slipped past, before paramiko could evaluate it.
"""

from __future__ import annotations

import fnmatch
import glob
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeq.errors import ConfigError

if TYPE_CHECKING:
    import paramiko

MAX_HOPS = 8
_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
# Match criteria paramiko cannot evaluate safely: exec runs a local command; localnetwork and tagged are
# unknown to it, and an unknown criterion counts as matched (the block would apply to every host)
_MATCH_REFUSED = {
    "exec": "paramiko would run its command on every lookup",
    "localnetwork": "paramiko cannot evaluate it and would apply the block to every host",
    "tagged": "paramiko cannot evaluate it and would apply the block to every host",
}
_MATCH_HINT = (
    "remove the line, or point ssh_config: in devices.yaml at a file of the boards' own Host blocks (or set ssh_config: none)"
)
_DIRECTIVE = re.compile(r"(\w+)(?:\s*=\s*|\s+)(.+)")
_HOP = re.compile(r"^(?:ssh://)?(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]\s]+\]|[^:@\s/]+)(?::(?P<port>\d+))?/?$")


@dataclass(frozen=True)
class Hop:
    """One jump host on the way to a board, resolved (its own HostName, Port, User, IdentityFile)."""

    name: str  # as written in ProxyJump (an alias or an address)
    host: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    agent: bool = False  # also offer ssh-agent keys (an IdentityFile from ssh_config without IdentitiesOnly yes)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port != 22 else self.host

    @property
    def label(self) -> str:
        """How errors name it: `bastion (10.0.0.1:2222)`, or just the address when it was written as one."""
        return self.address if self.name in (self.host, self.address) else f"{self.name} ({self.address})"


@dataclass(frozen=True)
class HostConfig:
    """What the config file says about one host (None: it says nothing)."""

    hostname: str | None = None
    port: int | None = None
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    proxy_jump: str | None = None  # raw ProxyJump value; "none" disables
    connect_timeout: float | None = None


@dataclass(frozen=True)
class _Line:
    file: Path
    lineno: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.lineno}"


class SSHConfigFile:
    """A parsed client config file. `lookup(host)` never runs anything (Match exec is refused at load)."""

    def __init__(self, path: Path, lines: list[_Line]):
        import paramiko

        self.path = path
        self._lines = lines
        try:
            self._cfg = _guarded_config_class().from_text("\n".join(ln.text for ln in lines))
        except paramiko.ssh_exception.ConfigParseError as e:
            raise ConfigError(f"{path}: cannot parse the SSH client config: {e}", "fix the line (see `man ssh_config`)") from None
        self._refuse_match_criteria()

    def _refuse_match_criteria(self) -> None:
        """Refuse a `Match exec` (or another criterion paramiko cannot evaluate) as paramiko parsed it.

        paramiko keeps one entry per Host/Match line, in order, after an implicit global one; pairing them
        with the lines that start a block gives each criterion its file:line."""
        regex = _settings_regex()
        heads = [ln for ln in self._lines if (m := regex.match(ln.text)) and m.group(1).lower() in ("host", "match")]
        entries = getattr(self._cfg, "_config", None)
        if not isinstance(entries, list) or len(entries) != len(heads) + 1:  # a paramiko that parses otherwise
            raise ConfigError(
                f"{self.path}: this paramiko parses the SSH client config in a way edgeq cannot check for `Match exec`",
                "install paramiko>=3.4,<6 (edgeq's range), or set ssh_config: none in devices.yaml",
            )
        for head, entry in zip(heads, entries[1:], strict=True):
            for crit in entry.get("matches") or ():
                kind = str(crit.get("type", "")).lower()
                if kind in _MATCH_REFUSED:
                    raise ConfigError(
                        f"{head.where}: `Match {kind}` is not supported by edgeq ({_MATCH_REFUSED[kind]})", _MATCH_HINT
                    )

    def lookup(self, host: str) -> HostConfig:
        opts: Any = self._cfg.lookup(host)
        if opts.get("proxycommand"):
            raise ConfigError(
                f"{self._locate('proxycommand', host)}: ProxyCommand (for Host {host}) is not supported by edgeq",
                "use ProxyJump [user@]host[:port] instead (a jump host edgeq connects through itself), "
                "or set ssh_config: none for this device in devices.yaml",
            )
        return HostConfig(
            hostname=opts.get("hostname") if opts.get("hostname") != host else None,
            port=self._int(opts, "port", host),
            user=opts.get("user"),
            identity_files=tuple(opts.get("identityfile") or ()),
            identities_only=str(opts.get("identitiesonly", "no")).lower() == "yes",
            proxy_jump=opts.get("proxyjump"),
            connect_timeout=self._int(opts, "connecttimeout", host),
        )

    def _int(self, opts: Any, key: str, host: str) -> int | None:
        if key not in opts:
            return None
        try:
            v = int(opts[key])
        except ValueError:
            v = -1
        if v <= 0 or (key == "port" and v > 65535):
            where = self._locate(key, host)
            raise ConfigError(f"{where}: {key} {opts[key]!r} (for Host {host}) is not valid", "use a positive integer")
        return v

    def _locate(self, key: str, host: str) -> str:
        """file:line of the first `key` directive in a block that applies to host (else the file)."""
        patterns: list[str] | None = ["*"]
        for ln in self._lines:
            m = _DIRECTIVE.match(ln.text)
            if not m:
                continue
            k = m.group(1).lower()
            if k == "host":
                patterns = _host_patterns(m.group(2))
            elif k == "match":
                patterns = None  # Match blocks: applicability is paramiko's; name the line anyway
            elif k == key and (patterns is None or host_matches(patterns, host)):
                return ln.where
        return str(self.path)


def _settings_regex() -> re.Pattern[str]:
    """paramiko's own directive pattern (the same as _DIRECTIVE in every paramiko edgeq supports)."""
    import paramiko

    return getattr(paramiko.SSHConfig, "SETTINGS_REGEX", _DIRECTIVE)


def _guarded_config_class() -> type[paramiko.SSHConfig]:
    """paramiko.SSHConfig whose lookup refuses a refused Match criterion instead of evaluating it.

    The load-time check above already refused such a file; this is the second lock: `_does_match` is where
    paramiko runs `Match exec` (invoke.run), so nothing reaches it with an exec criterion in the list."""
    import paramiko

    class GuardedSSHConfig(paramiko.SSHConfig):
        def _does_match(self, match_list: Any, *args: Any, **kwargs: Any) -> Any:
            for crit in match_list or ():
                kind = str(crit.get("type", "")).lower()
                if kind in _MATCH_REFUSED:
                    raise ConfigError(f"`Match {kind}` is not supported by edgeq ({_MATCH_REFUSED[kind]})", _MATCH_HINT)
            return super()._does_match(match_list, *args, **kwargs)  # type: ignore[misc]

    return GuardedSSHConfig


def _host_patterns(value: str) -> list[str]:
    """A Host line's patterns as paramiko reads them (shlex: quotes removed)."""
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def host_matches(patterns: list[str], host: str) -> bool:
    """OpenSSH Host pattern semantics: any positive pattern matches and no negated one does."""
    hit = False
    for p in patterns:
        if p.startswith("!"):
            if fnmatch.fnmatchcase(host, p[1:]):
                return False
        elif fnmatch.fnmatchcase(host, p):
            hit = True
    return hit


def load(path: Path) -> SSHConfigFile:
    """Read a client config (Include expanded), refusing what cannot be honoured safely."""
    return SSHConfigFile(path, _read(path, 0))


def _read(path: Path, depth: int) -> list[_Line]:
    try:
        raw = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read SSH client config {path}: {e.strerror or e}", "fix ssh_config: in devices.yaml") from None
    out: list[_Line] = []
    for i, text in enumerate(raw, 1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        m = _DIRECTIVE.match(text)
        if m and m.group(1).lower() == "include":
            if depth >= _INCLUDE_DEPTH:
                raise ConfigError(f"{path}:{i}: Include nested too deeply (a loop?)", "fix the Include lines")
            for pattern in m.group(2).split():
                p = Path(pattern).expanduser()
                p = p if p.is_absolute() else Path("~/.ssh").expanduser() / p  # OpenSSH: relative to ~/.ssh
                for found in sorted(glob.glob(str(p))):
                    out.extend(_read(Path(found), depth + 1))
            continue
        out.append(_Line(path, i, text))
    return out


def parse_jump(spec: str) -> list[tuple[str | None, str, int | None]]:
    """ProxyJump's value -> [(user, host, port)], in order. `none` -> []."""
    if spec.strip().lower() == "none":
        return []
    out = []
    for part in spec.split(","):
        m = _HOP.match(part.strip())
        if not m:
            raise ConfigError(f"ProxyJump hop {part.strip()!r} is not [user@]host[:port]", "write ProxyJump user@host:port,...")
        port = int(m["port"]) if m["port"] else None
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(f"ProxyJump hop {part.strip()!r}: port out of range", "use a port 1..65535")
        out.append((m["user"], m["host"].strip("[]"), port))
    return out


def resolve_jumps(
    spec: str | None,
    cfg: SSHConfigFile | None,
    *,
    default_user: str,
    default_key: str | None,
    default_agent: bool = False,
    _seen: tuple[str, ...] = (),
) -> tuple[Hop, ...]:
    """Hops in connection order. A hop that is itself an alias gets its HostName/Port/User/IdentityFile, and
    its own ProxyJump goes first (as OpenSSH does). Users and keys not configured: the local user, the
    device's key_file (a lab's one fleet key usually opens the bastion too)."""
    hops: list[Hop] = []
    for user, name, port in parse_jump(spec or "none"):
        hc = cfg.lookup(name) if cfg else HostConfig()
        if name in _seen or len(_seen) >= MAX_HOPS:
            raise ConfigError(f"ProxyJump loop or too many hops at {name!r} (via {' -> '.join(_seen)})", "fix ProxyJump")
        if hc.proxy_jump and hc.proxy_jump.lower() != "none":
            hops += resolve_jumps(
                hc.proxy_jump,
                cfg,
                default_user=default_user,
                default_key=default_key,
                default_agent=default_agent,
                _seen=(*_seen, name),
            )
        own_key = pick_identity(hc.identity_files)
        hops.append(
            Hop(
                name=name,
                host=hc.hostname or name,
                port=port or hc.port or 22,
                user=user or hc.user or default_user,
                key_file=own_key or default_key,
                agent=not hc.identities_only if own_key else default_agent,
            )
        )
    if len(hops) > MAX_HOPS:
        raise ConfigError(f"{len(hops)} jump hosts on one route (at most {MAX_HOPS})", "shorten ProxyJump")
    return tuple(hops)


def pick_identity(files: tuple[str, ...]) -> str | None:
    """The first IdentityFile that exists (OpenSSH tries them in order and skips missing ones), else None."""
    paths = [str(Path(f).expanduser()) for f in files]
    return next((p for p in paths if Path(p).is_file()), None)
