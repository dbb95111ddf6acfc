"""The work-dir check every board session starts with, and the same check fused with the agent call.

Both scripts are stdlib only and parse on any Python 3 (an old one gets a document naming its version).
PREFLIGHT creates W and W/agent 0700 when missing and reports owners, modes and the agent's sha256; the host
judges them (Board._judge_preflight). BOOT does the same and then, only when the agent there is the one the
host expects and W, W/agent and the agent are safe by the host's own rules (no symlink, owned by the login
user, not writable by group or others), runs the agent in that same Python process: one channel and one
interpreter start per call instead of two. Otherwise it prints the check's document and exits BOOT_RC, and
the host takes the usual path (refuse, or upload the agent and call it).
"""

from __future__ import annotations

BOOT_RC = 75  # no agent kind uses it (edgeq.agent.codes.EXIT_CODES); EX_TEMPFAIL in sysexits.h

PREFLIGHT = """
import errno, hashlib, json, os, stat, sys
if sys.version_info < (3, 7):
    print(json.dumps({"error": "old_python", "python": "%d.%d.%d" % tuple(sys.version_info[:3])}))
    sys.exit(__RC__)
w, agent = sys.argv[1], sys.argv[2]
for d in (w, os.path.dirname(agent)):
    if not os.path.lexists(d):
        try:
            os.makedirs(d, 0o700, exist_ok=True)
        except OSError as e:
            print(json.dumps({"error": "cannot create " + d + ": " + str(e.strerror), "errno": errno.errorcode.get(e.errno)}))
            sys.exit(__RC__)
def info(p):
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    try:
        import pwd
        owner = pwd.getpwuid(st.st_uid).pw_name
    except (ImportError, KeyError):
        owner = None
    return {"uid": st.st_uid, "mode": st.st_mode, "owner": owner}
out = {"euid": os.geteuid(), "paths": {p: info(p) for p in (w, os.path.dirname(agent), agent)}, "sha256": None}
st = out["paths"][agent]
if st is not None and stat.S_ISREG(st["mode"]):
    h = hashlib.sha256()
    with open(agent, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    out["sha256"] = h.hexdigest()
"""

_REPORT = """
print(json.dumps(out))
"""

_RUN = """
def safe(i):
    return i is not None and not stat.S_ISLNK(i["mode"]) and i["uid"] == out["euid"] and not i["mode"] & 0o22
if out["sha256"] != sys.argv[3] or not all(safe(i) for i in out["paths"].values()):
    print(json.dumps(out))
    sys.exit(__RC__)
import runpy
sys.argv = [agent] + sys.argv[4:]
runpy.run_path(agent, run_name="__main__")
"""

# `devices setup` runs the same check on the paths it builds in too (argv after W AGENT: W/venv, W/venvs,
# W/wheels): "extra" has their owner and mode, and for a symbolic link what it points to and that path's own
_EXTRA = """
extra = {}
for p in sys.argv[3:]:
    i = info(p)
    if i is not None and stat.S_ISLNK(i["mode"]):
        i["link"] = os.readlink(p)
        i["target"] = info(os.path.join(os.path.dirname(p), i["link"]))
    extra[p] = i
out["extra"] = extra
"""

# the plain check keeps its old exit codes (12 old python, 7 cannot create) and exit 0 with its document
PREFLIGHT_SCRIPT = (PREFLIGHT + _REPORT).replace("sys.exit(__RC__)", "sys.exit(12)", 1).replace("sys.exit(__RC__)", "sys.exit(7)")
SETUP_PREFLIGHT_SCRIPT = (
    (PREFLIGHT + _EXTRA + _REPORT).replace("sys.exit(__RC__)", "sys.exit(12)", 1).replace("sys.exit(__RC__)", "sys.exit(7)")
)
BOOT_SCRIPT = (PREFLIGHT + _RUN).replace("__RC__", str(BOOT_RC))


def boot_argv(python: str, workdir: str, agent_path: str, sha256: str, agent_args: list[str]) -> list[str]:
    """python -c BOOT W AGENT SHA SUB ARGS...: the transports name the step by SUB (the argument after AGENT)."""
    return [python, "-c", BOOT_SCRIPT, workdir, agent_path, sha256, *agent_args]


def step_of(argv: list[str]) -> str:
    """The name a command's step goes by in messages: the agent's subcommand, else the program."""
    if len(argv) > 2 and argv[1].endswith(".pyz"):
        return argv[2]
    if len(argv) > 6 and argv[1] == "-c" and argv[2] == BOOT_SCRIPT:
        return argv[6]
    return " ".join(argv[:2])[:80]
