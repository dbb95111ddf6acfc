"""The edgeq command line: one module per command group, over one core call each.

    app.py      the Typer app, --version/--debug, errors -> exit codes (the one place)
    run.py      edgeq run                     fleet.py    devices list/check/trust, deploy, rollback, bench
    results.py  history, compare, report, metrics push/textfile/serve
    inspect.py  edgeq inspect
    options.py  shared options (--json, --wide, --devices, --target, --db, --batch, --max-fail, --threads)
    output.py   stdout/stderr, the --json document and whether it was printed
    format.py   units: latency, bytes, percentages        tables.py  records -> table rows (pure)
    layout.py   a table fitted to the terminal: columns give way by priority, nothing whole is broken

No TensorFlow, paramiko, numpy or pydantic models at import time: `edgeq --help` and `edgeq devices list`
must stay fast (tests/func/test_startup_imports.py; bench/startup_bench.py times them).
"""

from edgeq.cli.app import app, main

__all__ = ["app", "main"]
