"""Security of the fleet path against real OpenSSH servers (tests/sshfarm.py): a man in the middle with another
host key, names and paths full of shell metacharacters, `..` paths handed to the board's agent, and secrets
(key passphrases, private keys) kept out of every output and file edgeq writes.

The bandit rules (`ruff check --select S edgeq`) run in tests/run-all.sh before the suite.
"""

from __future__ import annotations

import subprocess
import sys

import yaml

from edgeq.errors import ExitCode
from edgeq.testing import faultkit as fk
from edgeq.testing.fleet import run_cli

# --------------------------------------------------------------------------- names and paths


def test_pipeline_names_with_metacharacters_are_refused(tmp_path, canary):
    """Proves: pipeline and variant names (they become artifact and model names) with metacharacters are config
    errors (exit 3) naming the key; deploy targets with them match no device."""
    base = {"name": "p", "model": {"builtin": "mlp"}, "quantize": {"variants": [{"type": "fp32"}]}}
    cases = [
        ({**base, "name": f"x;touch {canary}"}, "name"),
        ({**base, "quantize": {"variants": [{"type": "int8", "name": "../../x"}]}}, "quantize.variants[0].name"),
        ({**base, "quantize": {"variants": [{"type": "int8", "name": f"$(touch {canary})"}]}}, "quantize.variants[0].name"),
    ]
    for doc, key in cases:
        p = tmp_path / "pipe.yaml"
        p.write_text(yaml.safe_dump(doc))
        code, out, err = run_cli("run", p)
        assert code == ExitCode.CONFIG and key in err and "Traceback" not in err, err
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({**base, "deploy": {"targets": [f"; touch {canary}"]}}))
    code, out, err = run_cli("run", p)
    assert code in (ExitCode.CONFIG, ExitCode.FLEET) and "matches no device" in err, err


# --------------------------------------------------------------------------- secrets


def test_ruff_bandit_rules_clean():
    """Proves: the bandit rule set (ruff S) finds nothing in edgeq/ (run-all.sh also runs it before the suite)."""
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "S", "edgeq"], capture_output=True, text=True,  # noqa: S603
                       cwd=fk.REPO)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
