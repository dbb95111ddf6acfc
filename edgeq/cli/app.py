"""The Typer app and the one place where errors become messages and exit codes."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated, Any

import typer

from edgeq import __version__
from edgeq.cli import examples, output
from edgeq.errors import EdgeqError, ExitCode, Terminated

app = typer.Typer(
    name="edgeq",
    help="Quantize models to TFLite, validate them, and benchmark them on ARM edge boards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # edgeq --install-completion [bash|zsh|fish|powershell]
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeq {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors (anywhere on the line).")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors, warnings and results: no progress (anywhere on the line).")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also edgeq's detailed log (SSH, SFTP, retries) (anywhere on the line).")
    ] = False,
) -> None:
    out = output.current()
    out.debug = out.debug or debug
    output.set_verbosity(-1 if quiet else 1 if verbose else out.verbosity)


def _register() -> None:
    from edgeq.cli import doctor, fleet, inspect, numerics, results, run, scaffold

    run.register(app)
    fleet.register(app)
    numerics.register(app)
    results.register(app)
    inspect.register(app)
    scaffold.register(app)
    doctor.register(app)


_register()
examples.attach(app)

# accepted anywhere before a `--` (Click knows root options only before the command): (flags, verbosity)
_ANYWHERE = ((("-q", "--quiet"), -1), (("-v", "--verbose"), 1))


def _jsonable(result: Any) -> Any:
    return result.to_json() if hasattr(result, "to_json") else result


def report_error(e: EdgeqError) -> None:
    """An expected failure: one JSON document (unless the command already printed its own), then stderr lines."""
    out = output.current()
    if out.json and not out.printed:
        doc: dict[str, Any] = {"ok": False, **e.to_dict()}
        if e.result:
            doc["result"] = _jsonable(e.result)
        output.emit(doc)
    output.log(f"error: {e.message}")
    if e.hint:
        output.log(f"hint: {e.hint}")


# SIGHUP (terminal closed, SSH session dropped) stops a run the way SIGTERM does, with its own exit code
_STOP_SIGNALS = {signal.SIGTERM: ExitCode.TERMINATED, signal.SIGHUP: ExitCode.HANGUP}


def _on_stop_signal(signum: int, frame: object) -> None:
    for sig in _STOP_SIGNALS:  # a second stop signal ends the process at once
        if signal.getsignal(sig) is _on_stop_signal:
            signal.signal(sig, signal.SIG_DFL)
    if signum == signal.SIGHUP:
        _drop_hung_up_terminal()
    out = output.current()
    out.terminated = out.terminated or signum  # Typer may re-raise a plain KeyboardInterrupt
    raise Terminated()


def _drop_hung_up_terminal() -> None:
    """stdout/stderr on a terminal that hung up fail every write with EIO, and the cleanup that follows writes (a
    stage's last line, the interrupted table): point them at /dev/null. A `kill -HUP` with the terminal still
    there, or output to a file or pipe, keeps its output."""
    import errno
    import termios

    for fd in (1, 2):
        try:
            termios.tcgetattr(fd)
        except termios.error as e:
            if e.args and e.args[0] == errno.EIO:  # a hung-up tty; a file or pipe says ENOTTY
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, fd)
                os.close(null)
        except OSError:
            pass


def _arm_stop_signals() -> None:
    for sig in _STOP_SIGNALS:
        # started under nohup (SIGHUP ignored), a hangup must not stop the run: leave an ignored signal ignored
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _on_stop_signal)


def _stopped(signum: int) -> None:
    name, code = ("interrupted", ExitCode.INTERRUPTED)
    if signum:
        sig = signal.Signals(signum)
        name, code = f"terminated ({sig.name})", _STOP_SIGNALS.get(sig, ExitCode.TERMINATED)
    try:
        output.log(name)
    except OSError:  # after a hangup the terminal may be gone (EIO): the exit code still says what happened
        pass
    sys.exit(int(code))


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = output.reset()
    _arm_stop_signals()
    args = sys.argv[1:]
    head, sep, tail = (args[: args.index("--")], ["--"], args[args.index("--") + 1 :]) if "--" in args else (args, [], [])
    if "--debug" in head:  # accepted anywhere on the line, not only before the command
        head = [a for a in head if a != "--debug"]
        out.debug = True
    for flags, level in _ANYWHERE:
        if any(a in flags for a in head):
            head = [a for a in head if a not in flags]
            output.set_verbosity(level)
    try:
        app(args=head + sep + tail, prog_name="edgeq")
    except EdgeqError as e:
        if out.debug:
            raise
        report_error(e)
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt as e:
        _stopped(out.terminated or (signal.SIGTERM if isinstance(e, Terminated) else 0))
    except SystemExit as e:
        if e.code == ExitCode.INTERRUPTED:  # Typer turns Ctrl-C (and our SIGTERM/SIGHUP) into a silent exit 130
            _stopped(out.terminated)
        raise
    except Exception as e:  # a bug: say so plainly, traceback only with --debug
        if out.debug:
            raise
        output.log(f"internal error: {type(e).__name__}: {e}")
        output.log("hint: rerun with --debug for the traceback and report it")
        sys.exit(int(ExitCode.INTERNAL))
