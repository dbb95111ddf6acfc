"""Property tests (hypothesis) of everything that parses input edgeq does not control: the pipeline YAML loader,
the devices.yaml loader, and the orchestrator's reading of what an agent printed.

Arbitrary text, arbitrary YAML trees and mutations of valid documents must give either a valid spec or the
documented config error (ConfigError, exit code 3, naming the file); agent output gives a document or
AgentOutputError / a BoardError naming the board. Never any other exception. Examples are bounded
(max_examples) so CI stays fast; deadline=None because a first example may import pydantic/yaml/numpy.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edgeq.agent import AgentOutputError, parse_agent_output
from edgeq.config import PipelineSpec, load_pipeline
from edgeq.errors import ConfigError, ExitCode
from edgeq.fleet import load_inventory
from edgeq.fleet.transport.base import BoardError
from edgeq.testing.fleet import run_cli

# max_examples comes from the hypothesis profile (tests/conftest.py): 150 in CI, fewer in a local unit run.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID_PIPELINE = {
    "name": "fuzz",
    "seed": 1,
    "data": {"source": "sklearn-digits", "max_train": 100, "max_test": 50},
    "model": {"builtin": "mlp", "hidden": [8]},
    "train": {"epochs": 1, "batch_size": 32},
    "quantize": {"variants": [{"type": "fp32"}, {"type": "int8", "calibration_samples": 10}]},
    "validate": {"gates": {"max_accuracy_drop": 0.05}},
    "deploy": {"targets": ["local"], "variants": ["int8"]},
    "benchmark": {"runs": 5, "threads": [1, 2], "min_seconds": 0},
}
VALID_DEVICES = {
    "defaults": {"user": "pi", "port": 2222, "tags": ["lab"], "connect_timeout": 5},
    "devices": [
        {"name": "pi-1", "host": "10.0.0.2", "tags": ["pi5"], "power": {"probe": "rpi5-pmic"}, "threads": 4},
        {"name": "here", "transport": "local"},
        {"name": "coral", "host": "${EDGEQ_FUZZ_HOST}", "delegate": "edgetpu", "key_passphrase_env": "EDGEQ_FUZZ_PASS"},
    ],
}
KEYS = sorted(
    set(VALID_PIPELINE) | {k for v in VALID_PIPELINE.values() if isinstance(v, dict) for k in v}
    | set(VALID_DEVICES) | set(VALID_DEVICES["devices"][0]) | {"probe", "path", "command", "variants", "type", "name"}
)  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["${EDGEQ_FUZZ_HOST}", "${EDGEQ_UNSET_X}", "${HOME}", "../..", "~", "0", "-1", "1e400", "int8", "local"])
)
trees = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), c, max_size=5),
    max_leaves=25,
)


@pytest.fixture(scope="module", autouse=True)
def _isolated_home(tmp_path_factory):
    """Nothing lands in the repo's ./.edgeq (module scope: hypothesis re-runs a test body many times)."""
    old = {k: os.environ.pop(k, None) for k in ("EDGEQ_HOME", "EDGEQ_DEVICES")}
    os.environ["EDGEQ_HOME"] = str(tmp_path_factory.mktemp("fuzz-home"))
    yield
    for k, v in old.items():
        os.environ.pop(k, None)
        if v is not None:
            os.environ[k] = v


@contextmanager
def fuzz_env():
    """${EDGEQ_FUZZ_HOST} set, ${EDGEQ_UNSET_X} unset (both paths of the substitution are exercised)."""
    old = {k: os.environ.get(k) for k in ("EDGEQ_FUZZ_HOST", "EDGEQ_UNSET_X")}
    os.environ["EDGEQ_FUZZ_HOST"] = "192.0.2.7"
    os.environ.pop("EDGEQ_UNSET_X", None)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _write(data: bytes | str, suffix: str = ".yaml") -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="edgeq-fuzz-")
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return Path(name)


def check_pipeline(data: bytes | str):
    """Load a pipeline file: a PipelineSpec, or ConfigError (exit 3) naming the file. Anything else fails the test."""
    p = _write(data)
    try:
        spec, _ = load_pipeline(p)
        assert isinstance(spec, PipelineSpec)
        return spec
    except ConfigError as e:
        assert e.exit_code == ExitCode.CONFIG == 3
        assert str(p) in e.message, e.message  # says where
        return None
    finally:
        p.unlink()


def check_devices(data: bytes | str):
    p = _write(data)
    try:
        with fuzz_env():
            inv = load_inventory(p)
        assert inv.devices and len(set(inv.names)) == len(inv.names)
        assert inv.select(["all"]) == list(inv.devices)
        json.dumps([d.public() for d in inv.devices])  # what `devices list --json` prints
        return inv
    except ConfigError as e:
        assert e.exit_code == ExitCode.CONFIG
        assert str(p) in e.message, e.message
        return None
    finally:
        p.unlink()


def _dump(doc) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- mutations of valid documents


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw, base: dict, n_max: int = 4):
    """A valid document with 1..n_max random edits: replace a value, delete a key, add a key, wrap in a list."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, n_max))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        last = path[-1]
        op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "swap_type"]))
        if op == "replace":
            parent[last] = draw(trees)
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS) | st.text(min_size=1, max_size=6))] = draw(trees)
        elif op == "wrap":
            parent[last] = [parent[last]]
        elif op == "swap_type":
            v = parent[last]
            parent[last] = str(v) if not isinstance(v, str) else (int(v) if v.isdigit() else {"v": v})
    return doc


@st.composite
def text_mutated(draw, base: dict):
    """The valid document's YAML text with random character-level edits (YAML syntax characters favoured)."""
    text = _dump(base)
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "dup_line"]))
        if op == "insert":
            bits = list(":-[]{}#&*!|>'\"%@`,? \n\t\\$") + ["  ", "*a", "&a ", "!!python/object "]
            text = text[:i] + draw(st.sampled_from(bits)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 8)) :]
        else:
            lines = text.splitlines(keepends=True)
            j = draw(st.integers(0, max(0, len(lines) - 1)))
            text = "".join(lines[: j + 1] + lines[j:])
    return text


# --------------------------------------------------------------------------- pipeline YAML


def test_valid_documents_load():
    assert check_pipeline(_dump(VALID_PIPELINE)) is not None
    assert check_devices(_dump(VALID_DEVICES)) is not None


@FUZZ
@given(st.text(max_size=300))
def test_pipeline_loader_arbitrary_text(text):
    check_pipeline(text)


@FUZZ
@given(st.binary(max_size=200))
def test_pipeline_loader_arbitrary_bytes(data):
    check_pipeline(data)


@FUZZ
@given(trees)
def test_pipeline_loader_arbitrary_yaml_trees(tree):
    check_pipeline(_dump(tree))


@FUZZ
@given(mutated(VALID_PIPELINE))
def test_pipeline_loader_mutated_documents(doc):
    check_pipeline(_dump(doc))


@FUZZ
@given(text_mutated(VALID_PIPELINE))
def test_pipeline_loader_mutated_text(text):
    check_pipeline(text)


# --------------------------------------------------------------------------- devices.yaml


@FUZZ
@given(st.text(max_size=300))
def test_devices_loader_arbitrary_text(text):
    check_devices(text)


@FUZZ
@given(trees)
def test_devices_loader_arbitrary_yaml_trees(tree):
    check_devices(_dump(tree))


@FUZZ
@given(mutated(VALID_DEVICES))
def test_devices_loader_mutated_documents(doc):
    check_devices(_dump(doc))


@FUZZ
@given(text_mutated(VALID_DEVICES))
def test_devices_loader_mutated_text(text):
    check_devices(text)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("name: p\nmodel: &m {builtin: mlp, again: *m}\n", "a cycle"),
        ("devices: &d\n  - name: a\n    host: h\n    tags: *d\n", "a cycle"),
        ("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
         + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 8)) + "name: p\n",
         "expands to more than"),
    ],
)  # fmt: skip
def test_alias_cycles_and_bombs_are_config_errors(text, needle):
    """Found by fuzzing the loaders: a self-referencing alias was an internal RecursionError (exit 1) and a
    'billion laughs' document hung the devices loader; both are now file:line config errors."""
    for check in (check_pipeline, check_devices):
        p = _write(text)
        try:
            with fuzz_env(), pytest.raises(ConfigError) as ei:
                (load_pipeline if check is check_pipeline else load_inventory)(p)
            assert needle in ei.value.message and f"{p}:" in ei.value.message
        finally:
            p.unlink()


# --------------------------------------------------------------------------- agent output (orchestrator side)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=5),
    max_leaves=20,
)
AGENT_KEYS = [
    "ok",
    "kind",
    "error",
    "protocol",
    "command",
    "board",
    "runtime",
    "latency_s",
    "memory",
    "current",
    "previous",
    "have",
    "free_bytes",
    "op",
    "errno",
    "holder",
    "predictions",
    "power",
    "delegate",
    "samples_s",
]
agent_docs = st.fixed_dictionaries(
    {"ok": st.booleans() | json_values},
    optional={k: json_values for k in AGENT_KEYS[1:]} | {"kind": st.sampled_from(
        ["unloadable", "os_error", "locked", "no_runtime", "usage", "internal", "weird"]) | json_values},
)  # fmt: skip
agent_stdout = (
    st.text(max_size=200)
    | agent_docs.map(json.dumps)
    | st.tuples(st.text(max_size=60), agent_docs.map(json.dumps)).map(lambda t: t[0] + "\n" + t[1] + "\n")
    | agent_docs.map(json.dumps).flatmap(lambda s: st.integers(0, len(s)).map(lambda i: s[:i]))  # truncated
    | json_values.map(json.dumps)
)
return_codes = st.sampled_from([0, 1, 2, 3, 4, 6, 7, 9, 126, 127, 130, 137, 255, -1, -9, -15]) | st.integers(-300, 300)


@FUZZ
@given(agent_stdout, st.text(max_size=100), return_codes)
def test_parse_agent_output_document_or_agent_output_error(out, err, rc):
    try:
        doc = parse_agent_output(out, err, rc)
    except AgentOutputError as e:
        assert str(e).startswith("agent ")
        return
    assert isinstance(doc, dict) and isinstance(doc["ok"], bool)
    if doc["ok"]:
        assert rc <= 0  # a complete success document then death by a signal (rc < 0) is a finished job
    else:
        assert isinstance(doc["kind"], str)


class _FakeTransport:
    """Pure-logic fake (no network): answers `status` as if the model were installed, and prints `reply` for
    the command under test. Proves the orchestrator survives any agent output; the real agent is tested
    over real SSH elsewhere."""

    def __init__(self, reply: tuple[int, str, str], sha: str, agent_size: int):
        self.reply, self.sha, self.agent_size = reply, sha, agent_size

    def run(self, argv, timeout):
        from edgeq.fleet.preflight import step_of

        if step_of(argv) == "status":  # also the first call, which carries the work-dir check (boot_argv)
            return 0, json.dumps({"ok": True, "current": self.sha, "have": True}), ""
        return self.reply

    def put_file(self, local, remote_path, callback=None):
        return 0

    def size(self, remote_path):
        return self.agent_size

    def makedirs(self, p):
        pass

    def rename(self, a, b):
        pass

    def remove(self, p):
        pass

    def home(self):
        return "/home/pi"

    def close(self):
        pass


@pytest.fixture(scope="module", name="fuzz_fleet")
def fuzz_fleet_fixture(tmp_path_factory):
    from edgeq.fleet.board import build_agent

    d = tmp_path_factory.mktemp("fuzzfleet")
    dev = d / "devices.yaml"
    dev.write_text("devices:\n  - {name: pi, host: 192.0.2.9}\n")
    art = d / "m.tflite"
    # a real (tiny) model: the host refuses a truncated or corrupt flatbuffer before any board call
    import base64

    from edgeq.fleet.setup.scripts import TINY_MODEL_B64

    art.write_bytes(base64.b64decode(TINY_MODEL_B64))
    agent = build_agent(d / "agent")
    return load_inventory(dev), art, agent


@FUZZ
@given(agent_stdout, st.text(max_size=60), return_codes)
def test_board_interpret_gives_a_document_or_a_named_board_error(out, err, rc):
    from edgeq.fleet.board import AgentBundle, Board

    inv = load_inventory(_devices_file())
    b = Board(inv.devices[0], _FakeTransport((rc, out, err), "0" * 64, 1), AgentBundle(Path("/x/edgeq-agent-0.pyz"), "0" * 64))
    try:
        doc = b.interpret("bench", rc, out, err)
    except BoardError as e:
        assert e.message.startswith("pi: ") and e.device == "pi" and isinstance(e.kind, str)
        json.dumps(e.to_dict())  # --json can print it
        return
    assert doc["ok"] is True


def _devices_file() -> Path:
    p = Path(tempfile.gettempdir()) / "edgeq-fuzz-devices.yaml"
    if not p.exists():
        p.write_text("devices:\n  - {name: pi, host: 192.0.2.9}\n")
    return p


@FUZZ
@given(agent_docs.map(lambda d: {**d, "ok": True}), st.sampled_from(["facts", "bench"]))
def test_check_and_bench_records_survive_any_agent_document(fuzz_fleet, doc, which):
    """Whatever a board's agent claims in a successful document, check and bench return one JSON-able record
    per board and never an internal error."""
    from edgeq import fleet
    from edgeq.hashing import file_sha256

    inv, art, agent = fuzz_fleet
    sha = file_sha256(art)
    factory = lambda d: _FakeTransport((0, json.dumps(doc), ""), sha, agent.path.stat().st_size)  # noqa: E731
    if which == "facts":
        res = fleet.check(inv, ["pi"], transport_factory=factory, agent=agent).to_json()
    else:
        res = fleet.bench(inv, ["pi"], art, runs=1, min_seconds=0, transport_factory=factory, agent=agent).to_json()
    rec = res["devices"][0]
    assert rec.get("kind") != "internal", rec
    json.dumps(res)


# --------------------------------------------------------------------------- the CLI: no traceback reaches the user


@FEW
@given(st.one_of(mutated(VALID_PIPELINE), trees))
def test_cli_run_on_fuzzed_pipeline_is_a_clean_config_error(doc):
    text = _dump(doc)
    assume(check_pipeline(text) is None)  # a valid document would really train: only the refused ones here
    p = _write(text)
    try:
        code, out, err = run_cli("run", p)
        assert code == ExitCode.CONFIG, (code, err)
        assert "Traceback" not in out + err and "internal error" not in err
        said = "".join(ln for ln in err.splitlines(keepends=True) if not ln.startswith("using home "))  # which home: named first
        assert said.startswith("error: ") and str(p) in said
        code, out, err = run_cli("run", p, "--json")
        assert code == ExitCode.CONFIG and json.loads(out)["exit_code"] == 3
    finally:
        p.unlink()


@FEW
@given(st.one_of(mutated(VALID_DEVICES), trees))
def test_cli_devices_list_on_fuzzed_devices_yaml(doc):
    p = _write(_dump(doc))
    try:
        with fuzz_env():
            code, out, err = run_cli("devices", "list", "--devices", p, "--json")
        assert code in (0, ExitCode.CONFIG), (code, err)
        assert "Traceback" not in out + err and "internal error" not in err
        json.loads(out)
    finally:
        p.unlink()
