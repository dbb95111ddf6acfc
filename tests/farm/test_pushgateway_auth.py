"""A Pushgateway URL with credentials (`http://user:password@host:9091`): a real Pushgateway behind basic auth
(`--web.config.file`, bcrypt hash) accepts the push, and the credentials never reach stdout, stderr, `--json`
or a hint, whatever happens: pushed, wrong password, gateway unreachable, URL refused, `edgeq run --push-gateway`."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from edgeq.results import load_manifest, record_run
from edgeq.testing.promfarm import ensure_installed, free_port, stop, synthetic_manifest

USER = "ci-bot"
PASSWORD = "p@ss:w/rd?#1"  # noqa: S105 - a test password with every character a URL's userinfo must encode
ENCODED = "p%40ss%3Aw%2Frd%3F%231"
SECRETS = (PASSWORD, ENCODED, "p%40ss", f"{USER}:", base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())


def _get(url: str, auth: bool) -> tuple[int, bytes]:
    req = urllib.request.Request(url)  # noqa: S310 - loopback test server
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback test server
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A real Pushgateway on loopback that wants basic auth: (port)."""
    ensure_installed()
    root = tmp_path_factory.mktemp("pgw-auth")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (root / "web.yml").write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    port = free_port()
    log = root / "pushgateway.log"
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            "prometheus-pushgateway",
            f"--web.listen-address=127.0.0.1:{port}",
            "--persistence.file=",
            f"--web.config.file={root / 'web.yml'}",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while _ready(port) is None:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert _get(f"http://127.0.0.1:{port}/metrics", auth=False)[0] == 401  # auth is really on
        yield port
    finally:
        stop(proc)


def _ready(port: int) -> int | None:
    try:
        return _get(f"http://127.0.0.1:{port}/-/ready", auth=True)[0]
    except OSError:
        return None


@pytest.fixture
def db(tmp_path) -> Path:
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1", devices=("pi5",))), db)
    return db


def _no_secret(*texts: str) -> None:
    for t in texts:
        for s in SECRETS:
            assert s not in t, f"{s!r} printed:\n{t}"


def test_push_with_credentials_in_the_url(edgeq, db, gateway):
    url = f"http://{USER}:{ENCODED}@127.0.0.1:{gateway}"
    r = edgeq("metrics", "push", "r1", "--gateway", url, "--db", db, "--json")
    assert r.code == 0, r.stderr
    _no_secret(r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    assert doc["gateway"] == f"http://***@127.0.0.1:{gateway}", doc
    code, body = _get(f"http://127.0.0.1:{gateway}/metrics", auth=True)
    assert code == 200 and b"edgeq_latency_p50_seconds{" in body and b'pipeline="synth"' in body
    r = edgeq("metrics", "push", "r1", "--gateway", url, "--db", db)  # the human line too
    assert r.code == 0 and f"to http://***@127.0.0.1:{gateway} " in r.stderr, r.stderr
    _no_secret(r.stdout, r.stderr)
    # the environment variable takes the same URL
    r = edgeq("metrics", "push", "r1", "--db", db, env={"EDGEQ_PUSHGATEWAY": url})
    assert r.code == 0, r.stderr
    _no_secret(r.stdout, r.stderr)


def test_refused_or_unreachable_with_credentials_never_prints_them(edgeq, db, gateway):
    wrong = f"http://{USER}:{ENCODED}x@127.0.0.1:{gateway}"
    r = edgeq("metrics", "push", "r1", "--gateway", wrong, "--db", db, "--json")
    assert r.code == 11 and "401" in r.stderr, r.stderr
    _no_secret(r.stdout, r.stderr)
    assert json.loads(r.stdout)["ok"] is False
    r = edgeq("metrics", "push", "r1", "--gateway", f"http://127.0.0.1:{gateway}", "--db", db)  # none given
    assert r.code == 11 and "401" in r.stderr and "credentials" in r.stderr, r.stderr
    closed = free_port()
    r = edgeq("metrics", "push", "r1", "--gateway", f"http://{USER}:{ENCODED}@127.0.0.1:{closed}", "--db", db, "--json")
    assert r.code == 11 and "unreachable" in r.stderr, r.stderr
    _no_secret(r.stdout, r.stderr)
    r = edgeq("metrics", "push", "r1", "--gateway", f"ftp://{USER}:{ENCODED}@127.0.0.1:{closed}", "--db", db, "--json")
    assert r.code == 11 and "not an http(s) URL" in r.stderr, r.stderr
    _no_secret(r.stdout, r.stderr)


def test_run_push_gateway_with_credentials(edgeq, write_pipeline, gateway):
    pipe = write_pipeline()
    wrong = f"http://{USER}:{ENCODED}x@127.0.0.1:{gateway}"
    r = edgeq("run", pipe, "--push-gateway", wrong, "--json")
    assert r.code == 11, r.stderr
    _no_secret(r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    push = doc["result"]["metrics_push"] if "result" in doc else doc["metrics_push"]
    assert push["ok"] is False and push["gateway"] == f"http://***@127.0.0.1:{gateway}", push
    r = edgeq("run", pipe, "--push-gateway", f"http://{USER}:{ENCODED}@127.0.0.1:{gateway}", "--json")
    assert r.code == 0, r.stderr
    _no_secret(r.stdout, r.stderr)
    assert json.loads(r.stdout)["metrics_push"]["ok"] is True
