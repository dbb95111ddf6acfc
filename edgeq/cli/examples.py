"""One example per command and group, shown at the end of its --help (the epilog).

Kept in one table so a new command without an example is easy to spot: tests/func/test_cli_conventions.py walks
every command's --help and fails on one without "Example". Keys are the command path after `edgeq`.
"""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("edgeq run pipelines/quickstart.yaml", "edgeq bench .edgeq/artifacts/model-int8.tflite -t pi5 -q"),
    "run": ("edgeq run pipelines/quickstart.yaml", "edgeq run nightly-a.yaml nightly-b.yaml --push-gateway http://pgw:9091"),
    "inspect": ("edgeq inspect model-int8.tflite --channels",),
    "numerics": ("edgeq numerics model-int8.tflite -t pi5 --inputs golden.npy",),
    "devices": ("edgeq devices check all",),
    "devices list": ("edgeq devices list --json",),
    "devices check": ("edgeq devices check pi5 lab-a",),
    "devices trust": ("edgeq devices trust pi5",),
    "devices setup": ("edgeq devices setup pi5 --write",),
    "deploy": ("edgeq deploy model-int8.tflite -t lab-a --batch 1,25%,100% --dry-run",),
    "rollback": ("edgeq rollback -t lab-a --name model-int8",),
    "bench": ("edgeq bench model-int8.tflite -t pi5 --threads 1 --threads 4 --sessions 3",),
    "history": ("edgeq history --pipeline quickstart --adhoc -n 5",),
    "compare": ("edgeq compare --pipeline quickstart --fail-on-regression",),
    "report": ("edgeq report latest -o report.html",),
    "metrics": ("edgeq metrics textfile /var/lib/prometheus/node-exporter/edgeq.prom",),
    "metrics push": ("edgeq metrics push latest --gateway http://pushgateway.lan:9091",),
    "metrics textfile": ("edgeq metrics textfile /var/lib/prometheus/node-exporter/edgeq.prom",),
    "metrics backfill": ("edgeq metrics backfill --prometheus-data /var/lib/prometheus/metrics2 --since 2026-01-01",),
    "metrics serve": ("edgeq metrics serve --port 9108",),
    "doctor": ("edgeq doctor --json",),
    # commands of other branches (init, dashboards export): their examples live here too
    "init": ("edgeq init my-lab",),
    "dashboards": ("edgeq dashboards export ./grafana",),
    "dashboards export": ("edgeq dashboards export ./grafana",),
}


def epilog(path: str) -> str | None:
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    # one paragraph per line: Typer's rich help joins the lines of a paragraph into one
    return ("Example:" if len(lines) == 1 else "Examples:") + "\n\n" + "\n\n".join(f"  $ {x}" for x in lines)


def _unset(value: Any) -> bool:
    from typer.models import DefaultPlaceholder

    return value is None or (isinstance(value, DefaultPlaceholder) and value.value is None)


def attach(app: Any, prefix: str = "") -> None:
    """Give every registered command and group its example, unless it set an epilog of its own."""
    if not prefix and _unset(app.info.epilog):
        app.info.epilog = epilog("")
    for cmd in app.registered_commands:
        name = cmd.name or (cmd.callback.__name__ if cmd.callback else "")
        if _unset(cmd.epilog):
            cmd.epilog = epilog(f"{prefix} {name}".strip())
    for grp in app.registered_groups:
        path = f"{prefix} {grp.name}".strip()
        sub = grp.typer_instance
        if sub is not None and _unset(grp.epilog) and _unset(sub.info.epilog):
            sub.info.epilog = epilog(path)
        if sub is not None:
            attach(sub, path)
