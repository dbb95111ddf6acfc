"""The fleet registry: devices.yaml -> validated, immutable DeviceSpecs, and target selection.

Lookup order: an explicit path (--devices), then $EDGEQ_DEVICES, then devices.yaml in the working folder
(the nearest folder up from the working directory holding .edgeq/ or devices.yaml: edgeq.paths), else the
embedded default (one `local` board running the agent on this machine).
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgeq import config
from edgeq.config import NAME_RE, Spec
from edgeq.config.benchcontrols import BenchControlsSpec, CooldownSpec
from edgeq.errors import ConfigError
from edgeq.fleet import paths
from edgeq.fleet.inventory.labgridspec import LabgridSpec, check_tags
from edgeq.fleet.transport.remotehome import expand_home, normalize_home
from edgeq.fleet.transport.sshconfig import Hop, HostConfig, SSHConfigFile, pick_identity, resolve_jumps

EMBEDDED_DEVICES_YAML = """\
devices:
  - name: local
    transport: local
    tags: [local]
    description: this machine (the agent runs in a subprocess)
"""

Probe = Literal["none", "rpi5-pmic", "hwmon", "command"]


class PowerSpec(Spec):
    """How the agent samples board power inside the timed window (passed to `bench --power`)."""

    probe: Probe = "none"
    path: str | None = None  # hwmon: a sysfs power*_input (microwatts) or energy*_input (microjoules) file
    kind: Literal["auto", "power", "energy"] = "auto"  # hwmon: what the file holds (auto: from its name)
    command: list[str] | None = None  # command: argv (no shell) printing one reading in watts
    interval_s: float = Field(0.05, ge=0.001, le=10.0)
    idle_s: float = Field(0.5, ge=0.0, le=60.0)  # idle baseline measured before the timed window

    @model_validator(mode="after")
    def _needs(self) -> PowerSpec:
        if self.probe == "command" and not self.command:
            raise ValueError("power.command (an argv list) is required for probe 'command'")
        if self.probe == "hwmon" and not self.path:
            raise ValueError("power.path (a sysfs power*_input or energy*_input file) is required for probe 'hwmon'")
        return self

    def agent_json(self) -> str:
        import json

        return json.dumps(self.model_dump(exclude_none=True), separators=(",", ":"))


class _DeviceFields(Spec):
    port: int = Field(22, ge=1, le=65535)
    user: str | None = None  # default: the local user name
    key_file: str | None = None  # default: keys from ssh-agent (and ~/.ssh/id_*)
    key_passphrase_env: str | None = Field(None, pattern=r"^EDGEQ_[A-Z0-9_]+$")  # NAME of the variable, never the value
    known_hosts: str | None = None  # default: <edgeq home>/known_hosts
    transport: Literal["ssh", "local"] = "ssh"
    python: str | None = None  # ssh: python3; local: this interpreter
    workdir: str | None = None  # ssh: ~/edgeq; local: <edgeq home>/boards/<name>
    tags: list[str] = Field(default_factory=list)
    threads: int = Field(1, ge=1, le=256)
    delegate: Literal["none", "xnnpack", "edgetpu"] = "xnnpack"  # xnnpack: what TFLite runtimes apply by default
    power: PowerSpec = Field(default_factory=PowerSpec)
    model: str = ""  # free text, e.g. "Raspberry Pi 5"
    description: str = ""
    connect_timeout: float = Field(10.0, gt=0, le=600)  # TCP connect, SSH banner and auth, each
    command_timeout: float = Field(900.0, gt=0)  # one agent call (a long bench fits in 15 min)
    keepalive: int = Field(15, ge=0, le=3600)  # seconds between SSH keepalives; 0 = off
    retries: int = Field(3, ge=1, le=20)  # connection attempts (only connection failures retry)
    retry_delay: float = Field(1.0, ge=0, le=60)  # first backoff; doubles per attempt
    lock_timeout: float = Field(600.0, ge=0)  # how long bench waits for the board's lock
    ssh_config: str | bool | None = None  # OpenSSH client config: default ~/.ssh/config if it exists; none/false: off
    proxy_jump: str | None = None  # [user@]host[:port],... (aliases from ssh_config allowed); none: no jump host
    # bench controls (edgeq.config.benchcontrols); a pipeline's benchmark: or `edgeq bench` flags win key by key
    cooldown: CooldownSpec | None = None
    cpu_affinity: list[int] | None = Field(None, min_length=1)
    governor: Literal["performance"] | None = None
    hot_temp_c: float | None = Field(None, gt=0, le=150)
    foreign_load: float | None = Field(None, ge=0, le=1000)

    def controls(self) -> BenchControlsSpec:
        keys = ("cooldown", "cpu_affinity", "governor", "hot_temp_c", "foreign_load")
        return BenchControlsSpec.model_validate({k: getattr(self, k) for k in keys if getattr(self, k) is not None})

    @field_validator("ssh_config")
    @classmethod
    def _ssh_config(cls, v: str | bool | None) -> str | bool | None:
        if v is True:
            raise ValueError("a path, or none/false to ignore OpenSSH client config files")
        if isinstance(v, str) and v.strip().lower() in ("none", "false", "no", "off"):
            return False
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        import re

        bad = [t for t in v if not re.fullmatch(NAME_RE, t)]
        if bad:
            raise ValueError(f"tags must match {NAME_RE} (got {bad})")
        return v

    @field_validator("python", "workdir", "user", "key_file", "known_hosts", "proxy_jump")
    @classmethod
    def _non_empty(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "\x00" in v or "\n" in v):
            raise ValueError("must be a non-empty single-line string")
        return v


class DefaultsSpec(_DeviceFields):
    """Values every device inherits unless it sets its own (tags are merged)."""


class DeviceSpec(_DeviceFields):
    name: str = Field(pattern=NAME_RE)
    host: str | None = None
    # resolved by load_inventory, never written in devices.yaml: the jump hosts in connection order, and the
    # `host:` as written when an ssh_config HostName replaced it
    jump: tuple[Hop, ...] = ()
    alias: str | None = None
    agent_fallback: bool = False  # key_file came from ssh_config (no IdentitiesOnly): ssh-agent keys are offered too
    place_tags: dict[str, str] | None = None  # labgrid mode: settings for the places carrying these tags

    @field_validator("place_tags")
    @classmethod
    def _place_tags(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return check_tags(v)

    @property
    def address(self) -> str:
        if self.transport == "local":
            return "local"
        return f"{self.host}:{self.port}" if self.port != 22 else str(self.host)

    @property
    def route(self) -> str:
        """`via bastion` (`via j1, j2` for two hops); empty for a direct connection."""
        return "via " + ", ".join(h.name for h in self.jump) if self.jump else ""

    def public(self) -> dict:
        """JSON-able view. Holds no secret: the passphrase is only named, never stored."""
        doc = self.model_dump(mode="json")
        if self.jump:
            doc["route"] = self.route
        return doc


class DevicesFileSpec(Spec):
    version: Literal[1] = 1
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    labgrid: LabgridSpec | None = None  # boards are a coordinator's places; `devices:` only adds settings
    devices: list[DeviceSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> DevicesFileSpec:
        if not self.devices and self.labgrid is None:
            raise ValueError("list at least one device under devices: (or name a labgrid: coordinator)")
        return self


@dataclass(frozen=True)
class Inventory:
    devices: tuple[DeviceSpec, ...]
    source: Path | None  # None: the embedded default
    # labgrid mode (devices come from reserved places): the coordinator, and the unresolved settings
    # (defaults merged) that edgeq.fleet.inventory.labgrid applies to a place by name or place_tags
    labgrid: LabgridSpec | None = None
    templates: tuple[DeviceSpec, ...] = ()
    defaults: tuple[tuple[str, object], ...] = ()
    base: Path | None = None  # where relative paths (key_file, known_hosts) resolve

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.devices]

    @property
    def tags(self) -> list[str]:
        return sorted({t for d in self.devices for t in d.tags})

    def get(self, name: str) -> DeviceSpec:
        for d in self.devices:
            if d.name == name:
                return d
        raise ConfigError(f"unknown device {name!r} in {self._where()}", f"known devices: {', '.join(self.names)}")

    def select(self, targets: list[str] | tuple[str, ...]) -> list[DeviceSpec]:
        """Devices matching any target (a device name, a tag, or `all`), in inventory order."""
        if not targets:
            raise ConfigError("no target given", f"pass --target NAME|TAG|all; devices: {', '.join(self.names)}")
        wanted: set[str] = set()
        unknown = []
        for t in targets:
            hit = {d.name for d in self.devices if d.name == t or t in d.tags}
            if not hit and t == "all":
                hit = set(self.names)
            if not hit:
                unknown.append(t)
            wanted |= hit
        if unknown:
            import difflib

            near = difflib.get_close_matches(unknown[0], [*self.names, *self.tags, "all"], n=1, cutoff=0.6)
            raise ConfigError(
                f"target {', '.join(repr(u) for u in unknown)} matches no device or tag in {self._where()}"
                + (f" (did you mean {near[0]!r}?)" if near else ""),
                f"known devices: {', '.join(self.names)}; tags: {', '.join(self.tags) or '(none)'}; or `all`",
            )
        return [d for d in self.devices if d.name in wanted]

    def _where(self) -> str:
        return str(self.source) if self.source else "the embedded default inventory (no devices.yaml found)"


def find_devices_file(path: Path | str | None = None) -> Path | None:
    if path:
        return Path(path)
    env = os.environ.get("EDGEQ_DEVICES")
    if env:
        return Path(env)
    from edgeq.paths import DEVICES_FILE, working_folder

    root = working_folder()
    if root is None or not (root / DEVICES_FILE).is_file():
        return None
    return Path(DEVICES_FILE) if root == Path.cwd().resolve() else root / DEVICES_FILE  # ./devices.yaml as before


def load_inventory(path: Path | str | None = None) -> Inventory:
    """Load the fleet registry. An explicit path (or $EDGEQ_DEVICES) must exist."""
    file = find_devices_file(path)
    if file is None:
        import yaml

        data = yaml.safe_load(EMBEDDED_DEVICES_YAML)
        return _build(data, {(): 1}, "<embedded devices.yaml>", None, Path.cwd())
    data, lines = config.read_yaml(file, substitute_env=True)
    return _build(data, lines, str(file), file, file.resolve().parent)


def _line(lines: dict, path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _build(data, lines: dict, where: str, source: Path | None, base: Path) -> Inventory:
    spec = config.validate(DevicesFileSpec, data, where, lines)
    d_set = spec.defaults.model_fields_set
    seen: dict[str, int] = {}
    devices = []
    ssh_configs: dict[Path, SSHConfigFile] = {}  # one parse per file per load
    for i, dev in enumerate(spec.devices):
        name_line = _line(lines, ("devices", i, "name"))
        if dev.name in seen:
            first = seen[dev.name]
            raise ConfigError(
                f"{where}:{name_line}: devices[{i}].name: duplicate device name {dev.name!r} "
                f"(first defined at {where}:{_line(lines, ('devices', first, 'name'))})",
                "give every device a distinct name",
            )
        seen[dev.name] = i
        merged = {**spec.defaults.model_dump(include=d_set), **dev.model_dump(include=dev.model_fields_set)}
        if "tags" in d_set and "tags" in dev.model_fields_set:
            merged["tags"] = list(dict.fromkeys([*spec.defaults.tags, *dev.tags]))
        merged = DeviceSpec.model_validate(merged)
        at = f"{where}:{_line(lines, ('devices', i))}: devices[{i}]"
        resolved = dev.model_fields_set & {"jump", "alias", "agent_fallback"}
        if resolved:
            raise ConfigError(f"{at}.{min(resolved)}: not a devices.yaml key", "set proxy_jump: (or ProxyJump in ssh_config)")
        if spec.labgrid is not None:
            _check_template(dev, at)
            devices.append(merged)
            continue
        if merged.transport == "ssh" and not merged.host:
            raise ConfigError(f"{at}.host: required for transport 'ssh'", "set host: (an IP or DNS name)")
        try:
            devices.append(_resolve(merged, base, ssh_configs))
        except ConfigError as e:
            raise ConfigError(f"{at} ({dev.name}): {e.message}", e.hint) from None
    if spec.labgrid is not None:
        dflt = tuple(spec.defaults.model_dump(include=d_set).items())
        return Inventory((), source, spec.labgrid, tuple(devices), dflt, base)
    return Inventory(tuple(devices), source)


def _check_template(dev: DeviceSpec, at: str) -> None:
    """labgrid mode: an entry adds settings to places; the address comes from the place's NetworkService."""
    wrong = dev.model_fields_set & {"host", "port", "user", "transport", "proxy_jump"}
    if wrong:
        raise ConfigError(
            f"{at}.{min(wrong)}: not used with labgrid: (the place's NetworkService gives address, port, username)",
            "remove it, or drop the labgrid: section to list hosts yourself",
        )


def resolve_device(fields: dict, base: Path) -> DeviceSpec:
    """A DeviceSpec built outside devices.yaml (a labgrid place), with the same defaults as a listed one."""
    return _resolve(DeviceSpec.model_validate(fields), base, {})


def _local_path(p: str | None, base: Path) -> str | None:
    if p is None:
        return None
    q = Path(p).expanduser()
    return str(q if q.is_absolute() else (base / q))


def _resolve(d: DeviceSpec, base: Path, ssh_configs: dict[Path, SSHConfigFile]) -> DeviceSpec:
    """Fill defaults that depend on where we run; paths on THIS machine become absolute."""
    upd: dict = {
        "key_file": _local_path(d.key_file, base),
        "known_hosts": _local_path(d.known_hosts, base) or str(paths.default_known_hosts()),
        "user": d.user or _local_user(),
    }
    if d.transport == "ssh":
        upd.update(_ssh_route(d, upd["key_file"], base, ssh_configs))
    if d.transport == "local":
        upd["python"] = expand_home(d.python, str(Path.home())) if d.python else sys.executable
        upd["workdir"] = _local_path(d.workdir and normalize_home(d.workdir), base) or str(paths.local_board_dir(d.name))
    else:
        # "~" (and "$HOME", written as "~") is resolved against the board's home over SFTP, never by a shell
        upd["python"] = normalize_home(d.python) if d.python else "python3"
        upd["workdir"] = normalize_home(d.workdir) if d.workdir else "~/edgeq"
    return d.model_copy(update=upd)


def _ssh_route(d: DeviceSpec, key_file: str | None, base: Path, cache: dict[Path, SSHConfigFile]) -> dict:
    """What the OpenSSH client config adds for this host (devices.yaml values win), and the jump hosts."""
    explicit = d.model_fields_set  # merged defaults + device: everything devices.yaml states
    cfg = _ssh_config_file(d.ssh_config, base, cache)
    hc = cfg.lookup(str(d.host)) if cfg else HostConfig()
    upd: dict = {"ssh_config": str(cfg.path) if cfg else False}
    if hc.hostname:
        upd["host"], upd["alias"] = hc.hostname, d.host
    if hc.port and "port" not in explicit:
        upd["port"] = hc.port
    if hc.user and "user" not in explicit:
        upd["user"] = hc.user
    agent = False
    if hc.identity_files and "key_file" not in explicit and pick_identity(hc.identity_files):
        upd["key_file"] = key_file = pick_identity(hc.identity_files)
        upd["agent_fallback"] = agent = not hc.identities_only  # as ssh: IdentityFile adds to the agent's keys
    if hc.connect_timeout and "connect_timeout" not in explicit:
        upd["connect_timeout"] = float(min(hc.connect_timeout, 600))
    spec = d.proxy_jump if "proxy_jump" in explicit else hc.proxy_jump
    upd["jump"] = resolve_jumps(spec, cfg, default_user=_local_user(), default_key=key_file, default_agent=agent)
    return upd


def _ssh_config_file(setting: str | bool | None, base: Path, cache: dict[Path, SSHConfigFile]) -> SSHConfigFile | None:
    """The config file in effect: the one named (must exist), else ~/.ssh/config if present; False: none.

    paramiko (for its parser) is imported only here, when a file is in effect."""
    if setting is False:
        return None
    if setting is None or setting is True:
        path = Path("~/.ssh/config").expanduser()
        if not path.is_file():
            return None
    else:
        path = Path(str(_local_path(setting, base)))
        if not path.is_file():
            raise ConfigError(f"ssh_config: {path} does not exist", "fix the path, or set ssh_config: none")
    if path not in cache:
        from edgeq.fleet.transport import sshconfig

        cache[path] = sshconfig.load(path)
    return cache[path]


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): root is the usual board user there
        return "root"
