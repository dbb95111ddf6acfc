"""The small programs `devices setup` runs on a board with `python -c` (no agent there yet).

They are Python 3.5+ and stdlib only (the probe runs before we know the board's Python is new enough),
print one JSON line, and never touch the network.
"""

from __future__ import annotations

from edgeq.agent.floor import NOOP_MODEL_B64

# f(x) = x * 2 + 1 on a float32 [1, 4]: MUL and ADD at op version 1 (min_runtime_version 1.5.0 in its
# metadata), so tflite-runtime 2.11 on a Coral board loads it as well as ai-edge-litert does. The agent
# times the same model as its harness floor: one copy of the bytes, kept with the agent.
TINY_MODEL_B64 = NOOP_MODEL_B64

TINY_INPUT = (0.0, 1.0, 2.0, 3.0)
TINY_EXPECTED = (1.0, 3.0, 5.0, 7.0)

PROBE = r"""
import json, os, platform, sys
W = sys.argv[1]
out = {"python": "%d.%d.%d" % tuple(sys.version_info[:3]), "executable": sys.executable, "arch": platform.machine()}
lib, ver = platform.libc_ver()
out["libc"], out["libc_version"] = lib or None, ver or None
osr = {}
try:
    with open("/etc/os-release") as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            osr[k] = v.strip().strip('"')
except OSError:
    pass
out["os_id"], out["os_version"], out["os_name"] = osr.get("ID"), osr.get("VERSION_ID"), osr.get("PRETTY_NAME")
try:
    import ensurepip
    out["ensurepip"] = bool(ensurepip._get_packages()) if hasattr(ensurepip, "_get_packages") else True
except Exception:
    out["ensurepip"] = False
out["apex"] = os.path.exists("/dev/apex_0")
lib = None
LIBS = ("/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib/arm-linux-gnueabihf", "/usr/lib")
for d in LIBS + ("/usr/local/lib",):
    if os.path.exists(d + "/libedgetpu.so.1"):
        lib = d + "/libedgetpu.so.1"
        break
out["edgetpu_lib"] = lib
out["venv_python"] = os.path.exists(W + "/venv/bin/python")
try:
    with open(W + "/venv/edgeq-setup.json") as f:
        out["marker"] = json.load(f)
except (OSError, ValueError):
    out["marker"] = None
print(json.dumps(out))
"""

# argv: WHEEL_DIR then NAME=SHA256 pairs. Verifies every *.part against its hash and renames it into
# place (atomic on the board's filesystem); then reports which final files match: {"have": [...]}.
SYNC = r"""
import hashlib, json, os, sys
d = sys.argv[1]
want = dict(a.split("=", 1) for a in sys.argv[2:])
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
bad = []
for name in os.listdir(d) if os.path.isdir(d) else []:
    if name.endswith(".part"):
        final = name[:-5]
        p = os.path.join(d, name)
        if final in want and sha(p) == want[final]:
            os.replace(p, os.path.join(d, final))
        else:
            bad.append(final)
            os.remove(p)
have = [n for n, s in sorted(want.items()) if os.path.isfile(os.path.join(d, n)) and sha(os.path.join(d, n)) == s]
print(json.dumps({"have": have, "bad": bad}))
"""

# argv: RUNTIME_MODULE MODEL_B64 — load, allocate, invoke the tiny model; report runtime and output.
VERIFY = r"""
import base64, json, sys
mod, model = sys.argv[1], base64.b64decode(sys.argv[2])
out = {"ok": False}
try:
    import numpy as np
    out["numpy"] = np.__version__
    if mod == "ai_edge_litert.interpreter":
        from ai_edge_litert.interpreter import Interpreter
        dist = "ai-edge-litert"
    else:
        from tflite_runtime.interpreter import Interpreter
        dist = "tflite-runtime"
    try:
        from importlib.metadata import version
        out["runtime_version"] = version(dist)
    except ImportError:
        import pkg_resources
        out["runtime_version"] = pkg_resources.get_distribution(dist).version
    out["runtime"] = dist
    it = Interpreter(model_content=model)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(i["index"], np.arange(4, dtype=np.float32).reshape(1, 4))
    it.invoke()
    out["output"] = [float(v) for v in it.get_tensor(o["index"]).reshape(-1)]
    out["ok"] = True
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out))
"""

# argv: W NEW_ID LOCK_TIMEOUT_S WHEEL_NAME... Under W/lock (the agent's board lock: a running bench is waited
# for, and no agent that takes the lock starts meanwhile) point W/venv at venvs/NEW_ID with one rename (an
# older edgeq's W/venv directory is moved aside first); then remove every other venv under W/venvs and every
# file in W/wheels not named. Prints one JSON line: {"switched", "old", "pruned"}, or {"error", ...} and exits
# 6 (W/lock held past the timeout: "holder" is its record) or 1.
SWITCH = r"""
import errno, fcntl, json, os, re, shutil, socket, stat, sys, time
w, new, timeout, keep = sys.argv[1], sys.argv[2], float(sys.argv[3]), set(sys.argv[4:])
venv, venvs, wheels = os.path.join(w, "venv"), os.path.join(w, "venvs"), os.path.join(w, "wheels")
def done(doc, rc=0):
    print(json.dumps(doc))
    sys.exit(rc)
target = os.path.join(venvs, new)
if not re.match(r"^[0-9a-f]{12}$", new) or os.path.islink(target) or not os.path.isdir(target):
    done({"error": "no new venv at " + target}, 1)
fd = os.open(os.path.join(w, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
deadline = time.time() + timeout
while True:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        if time.time() >= deadline:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "{}")
            except ValueError:
                holder = {}
            done({"error": "locked", "holder": holder if isinstance(holder, dict) else {}}, 6)
        time.sleep(0.2)
try:
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
except (OSError, ValueError, IndexError):
    ticks = None
note = {"pid": os.getpid(), "start_ticks": ticks, "hostname": socket.gethostname(),
        "command": "devices setup (switching W/venv to venvs/" + new + ")",
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
os.ftruncate(fd, 0)
os.pwrite(fd, (json.dumps(note) + "\n").encode(), 0)
pruned, old = [], None
try:
    try:
        st = os.lstat(venv)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        old = os.readlink(venv)
        if not re.match(r"^venvs/[0-9a-f]{12}$", old):
            done({"error": venv + " is a symbolic link to " + repr(old) + " that edgeq did not make"}, 1)
    elif st is not None and stat.S_ISDIR(st.st_mode):
        old = "venvs/old-" + new
        os.rename(venv, os.path.join(w, old))
    elif st is not None:
        done({"error": venv + " is not a directory"}, 1)
    tmp = os.path.join(w, ".venv-" + new + ".tmp")
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink("venvs/" + new, tmp)
    os.rename(tmp, venv)
    dfd = os.open(w, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    for name in sorted(os.listdir(venvs)):
        p = os.path.join(venvs, name)
        if name != new:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.remove(p)
            pruned.append("venvs/" + name)
    for name in sorted(os.listdir(wheels)) if os.path.isdir(wheels) else []:
        p = os.path.join(wheels, name)
        if name not in keep and (os.path.islink(p) or not os.path.isdir(p)):
            os.remove(p)
            pruned.append("wheels/" + name)
finally:
    os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
done({"switched": "venvs/" + new, "old": old, "pruned": pruned})
"""

# argv: W ID: remove W/venvs/ID, a venv whose set-up failed before it was switched in (never W/venv's target:
# the switch is the last step, and a set-up that got that far succeeded)
DISCARD = r"""
import os, re, shutil, sys
w, venv_id = sys.argv[1], sys.argv[2]
p = os.path.join(w, "venvs", venv_id)
if re.match(r"^[0-9a-f]{12}$", venv_id) and not os.path.islink(p) and os.path.isdir(p):
    shutil.rmtree(p, ignore_errors=True)
"""
