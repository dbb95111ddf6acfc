"""Security of the fleet path against real OpenSSH servers (tests/sshfarm.py): a man in the middle with another
host key, names and paths full of shell metacharacters, `..` paths handed to the board's agent, and secrets
(key passphrases, private keys) kept out of every output and file edgeq writes.

The bandit rules (`ruff check --select S edgeq`) run in tests/run-all.sh before the suite.
"""

from __future__ import annotations

import pytest
import yaml

from edgeq.errors import ExitCode
from edgeq.testing.common import NASTY
from edgeq.testing.fleet import run_json

# --------------------------------------------------------------------------- names and paths


@pytest.mark.parametrize("raw", NASTY)
def test_device_names_and_tags_with_metacharacters_are_refused(tmp_path, raw, canary):
    """Proves: a device name or tag containing shell metacharacters, spaces, quotes, a newline or `..` is a
    config error (exit 3) naming the key, before anything connects anywhere."""
    bad = raw.format(c=canary)
    for item in ({"name": bad, "transport": "local"}, {"name": "ok", "transport": "local", "tags": ["lab", bad]}):
        p = tmp_path / "devices.yaml"
        p.write_text(yaml.safe_dump({"devices": [item]}))
        code, doc, _ = run_json("devices", "check", "--devices", p)
        assert code == ExitCode.CONFIG, doc
        assert ("devices[0].name" if item["name"] == bad else "devices[0].tags") in doc["message"]
