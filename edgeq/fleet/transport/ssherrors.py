"""SSH connection failures -> BoardErrors that say what failed and what to do next.

paramiko is imported inside the functions. hostkeys imports this module, never the other way round.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from edgeq.fleet.inventory.devices import DeviceSpec
from edgeq.fleet.transport.base import BoardError
from edgeq.fleet.transport.keyformat import fingerprint, host_entry
from edgeq.fleet.transport.knownhosts import KnownHosts, read_known_hosts

_UNREACHABLE_ERRNOS = {
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTDOWN,
}


def classify_connect_error(device: DeviceSpec, e: BaseException) -> BoardError:
    """Map a socket/paramiko failure while connecting to a BoardError with a next step."""
    import paramiko

    name, addr = device.name, device.address
    if isinstance(e, BoardError):
        return e
    if isinstance(e, _RevokedHostKey):
        return revoked_error(device, e.keytype, e.fp, e.where)
    if isinstance(e, paramiko.BadHostKeyException):
        known = read_known_hosts(Path(str(device.known_hosts)))
        revoked = known.revoked(host_entry(str(device.host), device.port), e.key.asbytes())
        if revoked is not None:  # the recorded key is another one; the presented one is revoked: say that
            return revoked_error(device, e.key.get_name(), fingerprint(e.key.asbytes()), known.where(revoked))
        return BoardError(
            name,
            f"host key for {addr} has CHANGED: the server presents {e.key.get_name()} {fingerprint(e.key.asbytes())}, "
            f"but {device.known_hosts} records {fingerprint(e.expected_key.asbytes())}. "
            "This may be a man-in-the-middle attack; it is also what a reinstalled board looks like",
            f"verify the new fingerprint on the board's console (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub); if it matches, "
            f"run `edgeq devices trust {name} --replace` "
            f"or remove the old line for {host_entry(str(device.host), device.port)} from {device.known_hosts}",
            kind="host_key_changed",
        )
    if isinstance(e, _UnknownHostKey):
        ca = (
            f"; {e.ca_where} names a @cert-authority for it, but edgeq does not verify host certificates (only host keys)"
            if e.ca_where
            else ""
        )
        return BoardError(
            name,
            f"host key of {addr} is not in {device.known_hosts} ({e.keytype} {e.fp}){ca}; refusing to connect to an unknown host",
            f"run `edgeq devices trust {name}` and compare the fingerprint with the board's own"
            + (" (the @cert-authority line can stay)" if e.ca_where else ""),
            kind="host_key_unknown",
        )
    if isinstance(e, paramiko.PasswordRequiredException):
        return BoardError(
            name,
            f"key file {device.key_file} is encrypted and no passphrase was given",
            "set key_passphrase_env: EDGEQ_... in devices.yaml and export that variable, or load the key into ssh-agent",
            kind="auth",
        )
    if isinstance(e, paramiko.AuthenticationException):
        how = f"key file {device.key_file}" if device.key_file else "ssh-agent / ~/.ssh keys"
        return BoardError(
            name,
            f"authentication refused by {addr} for user {device.user!r} ({how})",
            "check user: and key_file: in devices.yaml, "
            "and that the public key is in the board's ~/.ssh/authorized_keys (ssh-copy-id)",
            kind="auth",
        )
    if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
        errs = list(e.errors.values())
        if errs and all(getattr(x, "errno", None) == errno.ECONNREFUSED for x in errs):
            return BoardError(
                name,
                f"connection refused by {addr}: nothing listens on port {device.port}",
                "check host/port in devices.yaml and that sshd runs on the board",
                kind="refused",
                retryable=True,
            )
        return BoardError(
            name,
            f"cannot reach {addr}: {errs[0] if errs else e}",
            "check the board is powered and on the network",
            kind="unreachable",
            retryable=True,
        )
    if isinstance(e, socket.gaierror):
        return BoardError(name, f"unknown host name {device.host!r}: {e.strerror}", "check host: in devices.yaml", kind="dns")
    if isinstance(e, ConnectionRefusedError):
        return BoardError(
            name,
            f"connection refused by {addr}: nothing listens on port {device.port}",
            "check host/port in devices.yaml and that sshd runs on the board",
            kind="refused",
            retryable=True,
        )
    if isinstance(e, (socket.timeout, TimeoutError)):
        return BoardError(
            name,
            f"timed out connecting to {addr} after {device.connect_timeout:g}s",
            "check the board is powered and on the network (or raise connect_timeout)",
            kind="timeout",
            retryable=True,
        )
    if isinstance(e, OSError) and e.errno in _UNREACHABLE_ERRNOS:
        return BoardError(
            name,
            f"cannot reach {addr}: {e.strerror}",
            "check the board is powered and on the network",
            kind="unreachable",
            retryable=True,
        )
    if isinstance(e, (EOFError, ConnectionError)):
        return BoardError(
            name,
            f"{addr} closed the connection during the SSH handshake",
            "is it an SSH server? check port: and the board's sshd logs",
            kind="unreachable",
            retryable=True,
        )
    if isinstance(e, paramiko.SSHException):
        msg = str(e)
        if "banner" in msg.lower():
            return banner_timeout_error(device, msg)
        # "Invalid key": paramiko could not decrypt an OpenSSH-format key, i.e. a wrong passphrase
        if "private key" in msg.lower() or "key" in msg.lower() and "deserializ" in msg.lower() or msg.strip() == "Invalid key":
            via = f" with the passphrase from {device.key_passphrase_env}" if device.key_passphrase_env else ""
            return BoardError(
                name,
                f"cannot use key file {device.key_file}{via}: {msg}",
                "point key_file: at an OpenSSH private key (check the passphrase variable too)",
                kind="auth",
            )
        return BoardError(name, f"SSH negotiation with {addr} failed: {msg}", "check the board's sshd configuration", kind="ssh")
    if isinstance(e, OSError):
        return BoardError(
            name,
            f"cannot connect to {addr}: {e.strerror or e}",
            "check host and port in devices.yaml",
            kind="unreachable",
            retryable=True,
        )
    return BoardError(name, f"cannot connect to {addr}: {type(e).__name__}: {e}", kind="ssh")


def banner_timeout_error(device: DeviceSpec, detail: str = "") -> BoardError:
    """The port accepted the TCP connection but no SSH banner came: unreachable for SSH, worth a retry."""
    why = f" ({detail})" if detail else ""
    return BoardError(
        device.name,
        f"{device.address} accepted the connection but sent no SSH banner within {device.connect_timeout:g}s{why}",
        "the board's sshd is overloaded or hung (MaxStartups reached, out of memory, a wedged board), or port: "
        "points at something that is not SSH: check the board, or raise connect_timeout in devices.yaml",
        kind="timeout",
        retryable=True,
        step="the SSH banner",
    )


def quiet_paramiko() -> None:
    """paramiko logs transport errors (e.g. "Socket exception: Connection reset") through logging's
    last-resort stderr handler; every such failure already becomes a BoardError, so drop the noise."""
    import logging

    lg = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in lg.handlers):
        lg.addHandler(logging.NullHandler())


def revoked_error(device: DeviceSpec, keytype: str, fp: str, where: str) -> BoardError:
    return BoardError(
        device.name,
        f"host key of {device.address} ({keytype} {fp}) is marked @revoked in {where}: refusing to connect "
        "(a revoked key may be a stolen one, used to impersonate the board)",
        "check the board on its console: if it still has that key, give it new host keys "
        f"(ssh-keygen -A after removing /etc/ssh/ssh_host_*), then run `edgeq devices trust {device.name} --replace`",
        kind="host_key_revoked",
    )


class _UnknownHostKey(Exception):
    def __init__(self, keytype: str, fp: str, ca_where: str | None = None):
        super().__init__(f"unknown host key {keytype} {fp}")
        self.keytype, self.fp, self.ca_where = keytype, fp, ca_where


class _RevokedHostKey(Exception):
    def __init__(self, keytype: str, fp: str, where: str):
        super().__init__(f"revoked host key {keytype} {fp} ({where})")
        self.keytype, self.fp, self.where = keytype, fp, where


def reject_unknown_policy(known: KnownHosts | None = None):
    """paramiko's RejectPolicy that says *why*: revoked (a @revoked line), unknown (only a @cert-authority line
    covers the host), or unknown (run `edgeq devices trust`). paramiko calls it after the key exchange, before
    any authentication; the keys handed to paramiko never include a revoked one (jump.verified_client)."""
    import paramiko

    class RejectUnknown(paramiko.RejectPolicy):
        def missing_host_key(self, client, hostname, key):
            fp = fingerprint(key.asbytes())
            revoked = known.revoked(hostname, key.asbytes()) if known else None
            if known and revoked:
                raise _RevokedHostKey(key.get_name(), fp, known.where(revoked))
            ca = known.cert_authority(hostname) if known else None
            raise _UnknownHostKey(key.get_name(), fp, known.where(ca) if known and ca else None)

    return RejectUnknown()
