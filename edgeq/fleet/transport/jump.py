"""Connecting through jump hosts (ProxyJump) with paramiko, imported inside the functions.

Every hop is its own SSHClient whose host key is checked against the fleet known_hosts (never AutoAdd);
hop k+1 (or the board) is reached over a `direct-tcpip` channel opened on hop k, passed as `sock=`.
Nothing reaches the board before every hop's key was verified.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import BoardError
from edgeq.fleet.transport.keyformat import host_entry
from edgeq.fleet.transport.knownhosts import read_known_hosts
from edgeq.fleet.transport.sshconfig import Hop
from edgeq.fleet.transport.ssherrors import classify_connect_error, reject_unknown_policy


def passphrase_for(device: DeviceSpec, key_file: str | None, env: Mapping[str, str]) -> str | None:
    """The passphrase of the device's key, from the variable key_passphrase_env names (never stored)."""
    if not device.key_passphrase_env or key_file != device.key_file:
        return None
    value = env.get(device.key_passphrase_env)
    if value is None:
        raise BoardError(
            device.name,
            f"environment variable {device.key_passphrase_env} (key_passphrase_env) is not set",
            f"export {device.key_passphrase_env}=...",
            kind="auth",
        )
    return value


def verified_client(device: DeviceSpec, entry: str | None = None) -> Any:
    """An SSHClient that knows the fleet known_hosts and refuses any host it does not list.

    entry: the host it will connect to (host or [host]:port; default the device's own). Its plain keys go to
    paramiko except those a `@revoked` line covers for that host; markers never reach paramiko's parser."""
    import paramiko

    client = paramiko.SSHClient()
    kh = Path(str(device.known_hosts))
    entry = entry or host_entry(str(device.host), device.port)
    try:
        known = read_known_hosts(kh)
    except OSError as e:
        raise BoardError(
            device.name, f"cannot read known_hosts {kh}: {e.strerror or e}", "fix its permissions", kind="host_key_unknown"
        ) from None
    keys = client.get_host_keys()
    for ln in known.plain:
        blob = ln.blob
        if blob is None or known.revoked(entry, blob) is not None:
            continue  # a broken line is skipped (as OpenSSH does); a revoked key is never trusted
        try:
            parsed = paramiko.hostkeys.HostKeyEntry.from_line(f"{ln.hosts} {ln.keytype} {ln.base64}", ln.lineno)
        except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError):
            continue
        if parsed is None:  # a key type paramiko does not know
            continue
        for name in parsed.hostnames:
            known_here = keys.lookup(name)
            if known_here is None or parsed.key.get_name() not in known_here:  # first line wins, as in paramiko's load
                keys.add(name, parsed.key.get_name(), parsed.key)
    client.set_missing_host_key_policy(reject_unknown_policy(known))  # never AutoAdd: trust is `edgeq devices trust`
    return client


def tune(transport: Any, keepalive: int) -> None:
    if keepalive:
        transport.set_keepalive(keepalive)  # NAT boxes and Wi-Fi boards drop idle sessions during long benches
    try:  # Nagle + delayed ACK cost 40 ms per small request (bench/fleet_bench.py); only the first hop has a socket
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


def hop_spec(device: DeviceSpec, hop: Hop) -> DeviceSpec:
    """The device's settings aimed at a jump host (for error wording and host-key fetches)."""
    return device.model_copy(update={"host": hop.host, "port": hop.port, "user": hop.user, "key_file": hop.key_file, "jump": ()})


def hop_error(device: DeviceSpec, hop: Hop, e: BaseException) -> BoardError:
    """A hop's failure, named: `via jump host bastion (10.0.0.1:2222): host key ... has CHANGED ...`."""
    base = classify_connect_error(hop_spec(device, hop), e)
    msg = base.message.removeprefix(f"{device.name}: ")
    entry = host_entry(hop.host, hop.port)
    hint = base.hint
    if base.kind == "host_key_changed":
        hint = (
            f"nothing was sent to {device.name}. Verify the jump host's fingerprint on its console "
            f"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub); if it matches, remove the line for {entry} from "
            f"{device.known_hosts} and run `edgeq devices trust {device.name}`"
        )
    elif base.kind == "host_key_revoked":
        hint = (
            f"nothing was sent to {device.name}. Check the jump host on its console: if it still has that key, give it "
            f"new host keys, remove its old line for {entry} from {device.known_hosts} and run "
            f"`edgeq devices trust {device.name}`"
        )
    elif base.kind == "host_key_unknown":
        hint = f"run `edgeq devices trust {device.name}`: it asks about each jump host first, then the board"
    elif base.kind == "auth":
        key = hop.key_file or "(ssh-agent / ~/.ssh)"
        hint = (
            f"edgeq logs in to the jump host {hop.name} as {hop.user!r} with {key}: set User/IdentityFile in its "
            "ssh_config Host entry (or user@ in ProxyJump), and add the public key to its ~/.ssh/authorized_keys"
        )
    elif base.unreachable or base.kind in ("dns", "refused"):
        hint = (
            f"check that the jump host {hop.label} is up and that its sshd is reachable from this machine; its address "
            "comes from ProxyJump / ssh_config (or proxy_jump: in devices.yaml)"
        )
    return BoardError(
        device.name, f"via jump host {hop.label}: {msg}", hint, kind=base.kind, retryable=base.retryable, jump_host=hop.name
    )


def close_all(clients: list[Any]) -> None:
    for c in reversed(clients):
        try:
            c.close()
        except Exception:  # noqa: S110 - closing a dead hop may raise; nothing to do
            pass


def open_route(device: DeviceSpec, hops: tuple[Hop, ...], target: tuple[str, int], env: Mapping[str, str]) -> tuple[list, Any]:
    """Log in to each hop in turn (each through the previous), then open a channel to target on the last.

    Returns (hop clients, channel); the caller closes the clients (close_all) when done. On failure
    everything opened is closed and the BoardError names the hop."""
    import paramiko

    clients: list[Any] = []
    sock = None
    ct = device.connect_timeout
    try:
        for i, hop in enumerate(hops):
            client = verified_client(device, host_entry(hop.host, hop.port))
            try:
                client.connect(
                    hostname=hop.host,
                    port=hop.port,
                    username=hop.user,
                    key_filename=hop.key_file,
                    passphrase=passphrase_for(device, hop.key_file, env),
                    allow_agent=not hop.key_file or hop.agent,
                    look_for_keys=not hop.key_file,
                    sock=sock,
                    timeout=ct,
                    banner_timeout=ct,
                    auth_timeout=ct,
                    channel_timeout=ct,
                )
            except BaseException as e:
                client.close()
                raise hop_error(device, hop, e) from None
            clients.append(client)
            t = client.get_transport()
            tune(t, device.keepalive)
            nxt = (hops[i + 1].host, hops[i + 1].port) if i + 1 < len(hops) else target
            try:
                sock = t.open_channel("direct-tcpip", nxt, ("127.0.0.1", 0), timeout=ct)
            except (paramiko.SSHException, EOFError, OSError) as e:
                raise tunnel_error(device, hop, nxt, e) from None
        return clients, sock
    except BaseException:
        close_all(clients)
        raise


def tunnel_error(device: DeviceSpec, hop: Hop, nxt: tuple[str, int], e: BaseException) -> BoardError:
    import paramiko

    where = host_entry(*nxt)
    prohibited = isinstance(e, paramiko.ChannelException) and e.code == 1  # OPEN_ADMINISTRATIVELY_PROHIBITED
    return BoardError(
        device.name,
        f"via jump host {hop.label}: cannot open a tunnel to {where}: {getattr(e, 'text', '') or e}",
        "the jump host refuses forwarding: set AllowTcpForwarding yes (and PermitOpen, if used) in its sshd_config"
        if prohibited
        else f"the jump host cannot reach {where}: check host:/port: (as seen from the jump host) and that the board is up",
        kind="unreachable" if not prohibited else "ssh",
        retryable=not prohibited,
        jump_host=hop.name,
    )
