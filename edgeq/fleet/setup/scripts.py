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
