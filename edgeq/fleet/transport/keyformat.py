"""How OpenSSH writes host keys: fingerprints and known_hosts host names.

A leaf module: hostkeys (the trust store) and ssherrors (connection failures) both name keys the same
way, and neither has to import the other for it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob: 'SHA256:' + base64 without padding."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


def host_entry(host: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare for port 22, else [host]:port."""
    return host if port == 22 else f"[{host}]:{port}"


def key_file_problem(path: str) -> str | None:
    """Why OpenSSH would refuse this private key file (readable or writable by group or others), or None.

    ssh's own check (sshkey_perm_ok): any group/other permission bit on a key the user owns is refused.
    A missing file is not judged here.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077 and st.st_uid == os.getuid():
        return (
            f"key file {path} has mode {mode:04o}: it is accessible by group or others, and ssh refuses such a key "
            "(UNPROTECTED PRIVATE KEY FILE)"
        )
    return None
