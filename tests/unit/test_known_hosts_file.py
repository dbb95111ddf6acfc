"""known_hosts as OpenSSH writes it (edgeq.fleet.transport.knownhosts): markers, patterns, hashed names."""

from __future__ import annotations

import base64
import hashlib
import hmac

from edgeq.fleet.transport.knownhosts import CERT_AUTHORITY, REVOKED, host_field_matches, read_known_hosts

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
OTHER = "AAAAC3NzaC1lZDI1NTE5AAAAIA3Hr4vJ5Ywq0vKjJm0zv9m1nQ9pV0qP5i8Rk0mJq8tB"


def _hashed(entry: str) -> str:
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, entry.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_patterns_wildcards_negation_ports_and_hashes():
    assert host_field_matches("*", "[127.0.0.1]:2222")
    assert host_field_matches("[127.0.0.1]:2222", "[127.0.0.1]:2222")  # brackets are literal, not a class
    assert not host_field_matches("[127.0.0.1]:2222", "1")
    assert host_field_matches("[127.0.0.1]:*", "[127.0.0.1]:2200") and not host_field_matches("[127.0.0.1]:*", "127.0.0.1")
    assert host_field_matches("pi-??.LAB", "pi-01.lab")  # OpenSSH compares host names in lower case
    assert not host_field_matches("*.lab,!pi-09.lab", "pi-09.lab") and host_field_matches("*.lab,!pi-09.lab", "pi-01.lab")
    assert host_field_matches(_hashed("pi-01"), "pi-01") and not host_field_matches(_hashed("pi-01"), "pi-02")
    assert not host_field_matches("|1|broken", "pi-01")


def test_markers_are_read_apart_and_junk_is_skipped(tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(
        f"# fleet\npi-01 ssh-ed25519 {KEY}\n@revoked * ssh-ed25519 {KEY}\n@cert-authority *.lab ssh-ed25519 {OTHER}\n"
        f"@future * ssh-ed25519 {KEY}\n@revoked\n\nshort line\n"
    )
    k = read_known_hosts(kh)
    assert [(ln.lineno, ln.marker) for ln in k.lines] == [(2, None), (3, REVOKED), (4, CERT_AUTHORITY)]
    assert [ln.lineno for ln in k.plain] == [2]
    blob = base64.b64decode(KEY)
    assert k.revoked("anything", blob).lineno == 3 and k.revoked("x", base64.b64decode(OTHER)) is None
    assert k.where(k.cert_authority("pi-01.lab")) == f"{kh}:4" and k.cert_authority("pi-01") is None
    assert read_known_hosts(tmp_path / "missing").lines == ()
