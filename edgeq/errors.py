"""One error hierarchy, mapped to documented exit codes in one place (edgeq.cli)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes. Documented in README.md and docs/cli.md#exit-codes; never renumber a released code."""

    OK = 0
    INTERNAL = 1  # a bug in edgeq: rerun with --debug and report it
    USAGE = 2  # bad command-line arguments (Typer/Click's own code)
    CONFIG = 3  # pipeline or devices YAML is invalid
    DATA = 4  # dataset missing, truncated or inconsistent
    MODEL = 5  # model cannot be built, imported or loaded
    QUANTIZE = 6  # a variant cannot be converted (e.g. an op with no int8 kernel)
    GATE = 7  # a validate gate failed (accuracy, drop, size)
    FLEET = 8  # one or more boards failed or were unreachable
    REGRESSION = 9  # a performance/accuracy regression with --fail-on-regression
    STORE = 10  # results store or run folder unusable (corrupt, locked, unknown run)
    EXPORT = 11  # metrics export failed (results are still stored)
    MISSING_EXTRA = 12  # the command needs an optional part not installed (pip install 'edgeq[train]')
    HANGUP = 129  # SIGHUP (the terminal or SSH session went away): handled like SIGTERM
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM (systemd stop, CI cancel, `timeout`): handled like Ctrl-C


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so it takes the Ctrl-C path: stage cleanup, manifest
    `terminated`, finished results stored, one line on stderr, exit 143 (SIGHUP: 129)."""


class EdgeqError(Exception):
    """An expected failure: a message saying what failed and where, and a hint saying what to do."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, hint: str | None = None, result: object = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        # what was measured before the failure (a run or fleet summary), so --json still reports it
        self.result = result

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": int(self.exit_code),
        }


class ConfigError(EdgeqError):
    exit_code = ExitCode.CONFIG


class DataError(EdgeqError):
    exit_code = ExitCode.DATA


class ModelError(EdgeqError):
    exit_code = ExitCode.MODEL


class QuantizeError(EdgeqError):
    exit_code = ExitCode.QUANTIZE


class GateError(EdgeqError):
    exit_code = ExitCode.GATE


class FleetError(EdgeqError):
    exit_code = ExitCode.FLEET


class RegressionError(EdgeqError):
    exit_code = ExitCode.REGRESSION


class StoreError(EdgeqError):
    exit_code = ExitCode.STORE


class NothingToCompare(StoreError):
    """`compare` found only one run where it needs two (a first run): not a failure, `edgeq compare` exits 0."""


class ExportError(EdgeqError):
    exit_code = ExitCode.EXPORT


class MissingExtraError(EdgeqError):
    """A command needs an optional dependency group (an "extra") that is not installed."""

    exit_code = ExitCode.MISSING_EXTRA
