"""The Typer app: parse, call one core function, render (rich table or --json).

No TensorFlow and no paramiko at import time: `edgeq --help` must stay fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from edgeq import __version__
from edgeq.console import log, print_json, progress_bars, progress_enabled
from edgeq.errors import EdgeqError, ExitCode

app = typer.Typer(
    name="edgeq",
    help="Quantize models to TFLite, validate them, and benchmark them on ARM edge boards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"debug": False, "json": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeq {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    _state["debug"] = debug


def set_json(json_mode: bool) -> None:
    """Commands with --json call this so errors are reported as JSON too."""
    _state["json"] = json_mode


@app.command()
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file.", metavar="PIPELINE.yaml"),
    force: bool = typer.Option(False, "--force", help="Rerun every stage, ignoring the cache."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    push_gateway: str | None = typer.Option(
        None,
        "--push-gateway",
        envvar="EDGEQ_PUSHGATEWAY",
        show_envvar=True,
        help="Push the run's metrics to this Pushgateway after storing them.",
    ),
    fail_on_regression: bool = typer.Option(
        False, "--fail-on-regression", help="Compare with the previous run of the pipeline; exit 9 on a regression."
    ),
) -> None:
    """Run a pipeline: train -> quantize -> validate (cached by input hash)."""
    set_json(json_out)
    from edgeq import pipeline as pl
    from edgeq import render

    with progress_bars(progress_enabled(json_out)):
        result = pl.run_pipeline(pipeline, force=force, log=log)
    post = _cli_results.after_run(result, push_gateway=push_gateway, fail_on_regression=fail_on_regression)
    if json_out:
        print_json(result)
    else:
        render.run_summary(result)
    pl.raise_for_failures(result, already_reported=json_out)
    _cli_results.raise_after_run(post, json_printed=json_out)


# Fleet commands (devices, deploy, rollback, bench) live in edgeq.cli_fleet.
from edgeq import cli_fleet as _cli_fleet  # noqa: E402 - after `app` exists

_cli_fleet.register(app)

# Results commands (history, compare, report, metrics) live in edgeq.cli_results.
from edgeq import cli_results as _cli_results  # noqa: E402 - after `app` exists

_cli_results.register(app)

# `edgeq inspect MODEL.tflite` lives in edgeq.cli_inspect.
from edgeq import cli_inspect as _cli_inspect  # noqa: E402 - after `app` exists

_cli_inspect.register(app)


def _report(e: EdgeqError) -> None:
    if _state["json"]:
        doc = {"ok": False, **e.to_dict()}
        if getattr(e, "result", None):
            doc["result"] = e.result
        if not getattr(e, "_json_printed", False):
            print_json(doc)
    log(f"error: {e.message}")
    if e.hint:
        log(f"hint: {e.hint}")


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        app()
    except EdgeqError as e:
        if _state["debug"]:
            raise
        _report(e)
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except SystemExit:
        raise
    except Exception as e:  # a bug: say so plainly, traceback only with --debug
        if _state["debug"]:
            raise
        log(f"internal error: {type(e).__name__}: {e}")
        log("hint: rerun with --debug for the traceback and report it")
        sys.exit(int(ExitCode.INTERNAL))


if __name__ == "__main__":
    main()
