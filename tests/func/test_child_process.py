"""The child-process helper QAT and the PyTorch conversion share (edgeq/stages/child.py), with plain Python
children: real processes, real signals, no TensorFlow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgeq.errors import ConfigError, ModelError, QuantizeError
from edgeq.stages import child

# A child module like qat_worker / torchsrc: library noise on stdout, progress through say (once while fd 1
# is redirected, as captured_output() does around a converter), then what the job asks for.
FAKE = """
import os, sys, time
from pathlib import Path

from edgeq.errors import ConfigError, ModelError
from edgeq.stages.child import child_main
from edgeq.stages.quiet import captured_output


def work(job, say):
    print("library noise")
    say("step 1")
    with captured_output():
        print("hidden by the redirect")
        say("step 2")
    if job.get("pid_file"):
        Path(job["pid_file"]).write_text(str(os.getpid()))
    if job["do"] == "ModelError":
        raise ModelError("the module is not a torch.nn.Module", "return the trained module")
    if job["do"] == "ConfigError":
        raise ConfigError("train.qat is not set", "set train.qat.epochs")
    if job["do"] == "bug":
        raise RuntimeError("a bug in the child")
    if job["do"] == "sleep":
        time.sleep(120)
    return {"answer": 42, "echo": job["do"]}


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:], work))
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake child's module name; importable by `python -m` in children (PYTHONPATH) and reported pids."""
    (tmp_path / "fakechild.py").write_text(FAKE)
    monkeypatch.delenv("EDGEQ_DEBUG", raising=False)
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _run(env, tmp_path, do, log, **kw):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    opts = {"name": "fake", "died": "variant x: the fake process", "error": QuantizeError, "prefix": "variant x: "} | kw
    return child.run_child("fakechild", {"do": do}, work, log, env=env, **opts)


def test_result_comes_back_and_progress_is_relayed(fake, tmp_path):
    seen: list[str] = []
    assert _run(fake, tmp_path, "ok", seen.append) == {"answer": 42, "echo": "ok"}
    assert seen == ["step 1", "step 2"]  # progress only: the child's other output is not the log's
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []  # job and result files removed


@pytest.mark.parametrize("cls", [ModelError, ConfigError])
def test_the_childs_error_is_raised_in_the_parent_as_the_same_class(fake, tmp_path, cls):
    seen: list[str] = []
    with pytest.raises(cls) as e:
        _run(fake, tmp_path, cls.__name__, seen.append)
    assert type(e.value) is cls  # not the fallback QuantizeError: the exit code stays the child's
    assert (
        e.value.message
        == {
            ModelError: "variant x: the module is not a torch.nn.Module",
            ConfigError: "variant x: train.qat is not set",
        }[cls]
    )
    assert e.value.hint == {ModelError: "return the trained module", ConfigError: "set train.qat.epochs"}[cls]
    assert seen == ["step 1", "step 2"]


def test_a_child_that_dies_without_a_result_is_the_callers_error_with_its_output(fake, tmp_path):
    with pytest.raises(ModelError) as e:
        _run(fake, tmp_path, "bug", lambda s: None, error=ModelError, died="model.torch 'm:f': the conversion process")
    msg = e.value.message
    assert msg.startswith("model.torch 'm:f': the conversion process died without a result; its last output:\n"), msg
    assert "library noise" in msg and "RuntimeError: a bug in the child" in msg
    assert "--debug" in (e.value.hint or "")


def test_an_unknown_error_class_falls_back_to_the_callers():
    for name in ("NoSuchError", "ValueError", "enum", None):
        err = child.error_from({"error": name, "message": "m", "hint": "h"}, QuantizeError, "variant x: ")
        assert type(err) is QuantizeError and err.message == "variant x: m" and err.hint == "h"


def test_ctrl_c_stops_the_child(tmp_path):
    pid_file = tmp_path / "pid"
    code = (
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        f"print('TF noise'); print({child.MARK!r} + 'epoch 1', flush=True)\ntime.sleep(120)\n"
    )
    seen = []

    def log(line):
        seen.append(line)
        raise KeyboardInterrupt  # what Ctrl-C raises in edgeq's main thread while it relays progress

    t = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        child.relay([sys.executable, "-c", code], log)
    assert seen == ["epoch 1"]
    assert _gone(int(pid_file.read_text()))  # not left running for 120 s
    assert time.monotonic() - t < 30


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL of the parent, /proc")
def test_killing_the_parent_with_sigkill_ends_the_child(fake, tmp_path):
    """edgeq killed -9 (or by the OOM killer) while a child works: the child must not keep running."""
    pid_file = tmp_path / "child.pid"
    work = tmp_path / "work"
    work.mkdir()
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from edgeq.errors import QuantizeError
        from edgeq.stages.child import run_child
        job = {{"do": "sleep", "pid_file": {str(pid_file)!r}}}
        run_child("fakechild", job, Path({str(work)!r}), print, name="t", died="t", error=QuantizeError, env={fake!r})
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        pid = _wait_for_pid(pid_file, parent)
    finally:
        parent.kill()  # SIGKILL: no Python code of the parent runs, no finally, no stop()
        parent.wait()
    assert _wait_gone(pid, 5.0), "the child kept running after its parent was killed"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_the_parent_poll_alone_ends_an_orphan(tmp_path):
    """Without the kernel's death signal (deathsig=False: other systems), the getppid() poll notices."""
    pid_file = tmp_path / "pid"
    code = (
        "import os, subprocess, sys\n"
        "c = 'import os, time; from edgeq.stages.child import watch_parent; "
        "watch_parent(os.getppid(), deathsig=False); time.sleep(120)'\n"
        "p = subprocess.Popen([sys.executable, '-c', c], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "import time; time.sleep(1)\n"  # the child is past watch_parent's first check: the poll must see it
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # the parent exits, the child stays
    assert _wait_gone(int(pid_file.read_text()), 5.0), "the orphaned child kept running"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl")
def test_the_child_asks_the_kernel_for_sigkill_when_its_parent_dies():
    code = (
        "import ctypes, os\n"
        "from edgeq.stages.child import watch_parent\n"
        "watch_parent(os.getppid())\n"
        "sig = ctypes.c_int(0)\n"
        "assert ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0) == 0\n"  # PR_GET_PDEATHSIG
        "print(sig.value)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert int(out.stdout) == signal.SIGKILL


def test_a_child_whose_parent_is_already_gone_exits_at_once(tmp_path):
    """The parent died before the child could watch it: the death signal will never come, the first check exits."""
    code = "import os, time; from edgeq.stages.child import watch_parent; watch_parent(os.getppid() + 10**6); time.sleep(60)"
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert r.returncode == child.ORPHAN_EXIT and time.monotonic() - t < 30


def _wait_for_pid(pid_file: Path, parent: subprocess.Popen, timeout: float = 60.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pid_file.exists() and pid_file.read_text():
            return int(pid_file.read_text())
        assert parent.poll() is None, "the parent ended before its child started"
        time.sleep(0.05)
    pytest.fail("the child did not start")


def _wait_gone(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return False


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for whoever adopted it to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
