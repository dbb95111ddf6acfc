"""pytest fixtures for the emulated aarch64 board (import them into a test module; not a conftest).

    from farm.fixtures import aarch64_board_fixture  # noqa: F401 - registers `aarch64_board`

(Fixtures are registered under their `name=`, as in tests/fleet_fixtures.py, so importing the
*_fixture functions does not shadow the fixture arguments.)

aarch64_board (session scope): a running farm.aarch64.Board, built from the cached rootfs (built
first if the recipe changed), that accepts a freshly generated ed25519 key. Besides Board's own
attributes it carries `timings` = {"ensure_rootfs_s", "built_now", "build_s" (as recorded when
the cache entry was built), "start_s"}. A board that cannot be built or started fails the tests
with the reason: this is CI's only aarch64 coverage, so it must not silently skip.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from . import aarch64


@pytest.fixture(scope="session", name="aarch64_rootfs")
def aarch64_rootfs_fixture():
    """(rootfs path, seconds ensure_rootfs took, whether this session built it)."""
    t0 = time.monotonic()
    cached = (aarch64.cache_dir() / f"aarch64-{aarch64.recipe_hash()}" / "build.json").exists()
    try:
        rootfs = aarch64.ensure_rootfs()
    except aarch64.FarmError as e:
        pytest.fail(f"cannot build the emulated aarch64 board: {e}", pytrace=False)
    return rootfs, time.monotonic() - t0, not cached


@pytest.fixture(scope="session", name="aarch64_board")
def aarch64_board_fixture(aarch64_rootfs, tmp_path_factory):
    rootfs, ensure_s, built_now = aarch64_rootfs
    keys = tmp_path_factory.mktemp("aarch64-keys")
    key = keys / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeq-test", "-f", str(key)], check=True, capture_output=True
    )
    try:
        board = aarch64.start_board(rootfs, authorized_pubkey=key.with_suffix(".pub"), key_file=key)
    except aarch64.FarmError as e:
        pytest.fail(f"cannot start the emulated aarch64 board: {e}", pytrace=False)
    board.timings = {
        "ensure_rootfs_s": round(ensure_s, 1),
        "built_now": built_now,
        "build_s": aarch64.build_info(rootfs)["build_seconds"],
        "start_s": round(board.start_seconds, 1),
    }
    try:
        yield board
    finally:
        board.stop()
