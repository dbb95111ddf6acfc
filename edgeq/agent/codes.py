"""Failure kinds and exit codes shared by the board agent and the orchestrator.

Runs on boards: stdlib only, Python 3.7+.
"""

from __future__ import annotations

PROTOCOL = 1  # bumped when a JSON field changes meaning; every agent document carries it

# kind -> exit code. Never renumber a released code: orchestrators of other versions read them.
EXIT_CODES = {
    "internal": 1,  # a bug in the agent (traceback on stderr)
    "usage": 2,  # bad arguments (argparse, --power JSON, --blob outside the work dir)
    "invalid_name": 2,  # --name not matching NAME_PATTERN
    "bad_input": 2,  # --inputs file unreadable or not matching the model's input
    "no_runtime": 3,  # no TFLite runtime (or numpy) importable
    "unloadable": 4,  # the runtime cannot load/allocate the model (e.g. an op version it lacks)
    "sha_mismatch": 5,  # blob content does not hash to --sha256
    "locked": 6,  # another agent holds W/lock past --lock-timeout
    "os_error": 7,  # disk full, permission, I/O error...
    "delegate_missing": 8,  # --delegate edgetpu but libedgetpu.so.1 is not loadable
    "not_found": 9,  # nothing installed under --name, blob or --model file missing
    "no_previous": 9,  # rollback with no previous version
    "load_timeout": 4,  # the load check (allocate + one invoke) did not finish in time: killed
    "not_current": 10,  # rollback --from SHA while the board's current is another version
    "rolled_back": 10,  # rollback (no --from) whose current was put there by a rollback, without --undo-rollback
    "deadline": 11,  # the agent's own --deadline passed: it stopped and released W/lock
    "old_python": 12,  # the board's python is older than MIN_PYTHON (checked by the zipapp's __main__)
    "unsupported": 13,  # the runtime lacks what the command needs (e.g. preserved intermediate tensors)
    "interrupted": 130,  # SIGINT, SIGTERM, or the host went away (--watch-stdin)
}

MIN_PYTHON = (3, 7)  # Coral's Mendel Linux ships 3.7; the zipapp's __main__ refuses anything older

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"  # used with re.fullmatch
SHA256_PATTERN = r"[0-9a-f]{64}"


class AgentFailure(Exception):
    """An expected failure: becomes {"ok": false, "kind", "error", **extra} and exit EXIT_CODES[kind]."""

    def __init__(self, kind: str, message: str, **extra):
        super().__init__(message)
        if kind not in EXIT_CODES:
            raise ValueError("unknown failure kind " + repr(kind))
        self.kind = kind
        self.message = message
        self.extra = extra

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]

    def to_doc(self) -> dict:
        doc = {"ok": False, "kind": self.kind, "error": self.message, "protocol": PROTOCOL}
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return doc
