"""`edgeq init [DIR]` and `edgeq dashboards export DIR`: write the files shipped in the package (edgeq.skel)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from edgeq.cli import output
from edgeq.cli.options import JsonOpt

ForceOpt = Annotated[bool, typer.Option("--force", help="Replace files that exist (default: refuse, write nothing).")]
DocsUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--docs-url",
        metavar="URL",
        help="Base of the alert rules' runbook links and the dashboard's links into edgeq's docs/ folder "
        "(default: the upstream docs, https://github.com/edgeq/edgeq/blob/main/docs/); give your own copy's URL.",
    ),
]


def _report(dest: Path, written: list[Path], docs_url: str, json_out: bool, next_steps: list[str]) -> None:
    rels = [str(p.relative_to(dest)) for p in written]
    if json_out:
        output.emit({"ok": True, "dir": str(dest), "written": rels, "docs_url": docs_url})
        return
    for r in rels:
        output.echo(f"wrote {dest / r}")
    for line in next_steps:
        output.log(line)


def init_cmd(
    directory: Annotated[Path, typer.Argument(help="Folder to scaffold (created if missing).", metavar="DIR")] = Path("."),
    force: ForceOpt = False,
    docs_url: DocsUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Scaffold a working folder: devices.yaml, a pipeline, dashboards, alert rules and nightly units.

    Writes devices.yaml, pipelines/quickstart.yaml, constraints.txt, dashboards/ (Grafana, Prometheus,
    alert rules) and dashboards/nightly/ (systemd units, a CI example), from files shipped in edgeq, and a
    .gitignore keeping edgeq's home (.edgeq/) out of git (an existing .gitignore gets the line added).

    edgeq finds the folder from any subfolder, as git does: the nearest folder up holding .edgeq/ or devices.yaml.

    The alert rules' runbook links point at edgeq's upstream docs unless --docs-url names your copy.

    Refuses to overwrite an existing file (exit 2, nothing written) unless --force; lists what it wrote.

    Example: edgeq init lab && cd lab && edgeq devices check
    """
    output.use_json(json_out)
    from edgeq import skel
    from edgeq.extras import installed

    base = skel.docs_base(docs_url)
    written = skel.write(directory, skel.files(), force=force, docs_url=base)
    ignore = skel.write_gitignore(directory)  # .edgeq/ kept out of git; an existing .gitignore gets the line
    if ignore is not None:
        written.append(ignore)
    run = f"`edgeq run {Path('pipelines') / 'quickstart.yaml'}`"
    if not installed("tensorflow"):
        run += " (needs the train extra: pip install 'edgeq[train]')"
    here = directory.resolve() == Path.cwd().resolve()
    cd = "" if here else f"`cd {shlex.quote(str(directory))}`, "
    _report(
        directory,
        written,
        base,
        json_out,
        [f"next: {cd}edit devices.yaml (your boards), `edgeq devices check`, {run}"],
    )


def export_cmd(
    directory: Annotated[Path, typer.Argument(help="Folder to write the dashboards to (created if missing).", metavar="DIR")],
    force: ForceOpt = False,
    docs_url: DocsUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the Grafana dashboard, Prometheus configs and alert rules to DIR (no nightly units).

    Writes grafana/edgeq.json, provisioning/ (Grafana), prometheus.yml, federation/ and rules/ (the alert
    rules and their promtool unit tests); the nightly units come with `edgeq init`.

    The alert rules' runbook links point at edgeq's upstream docs unless --docs-url names your copy.

    Refuses to overwrite an existing file (exit 2, nothing written) unless --force; lists what it wrote.

    Example: edgeq dashboards export /etc/grafana/edgeq && promtool check rules /etc/grafana/edgeq/rules/edgeq.rules.yml
    """
    output.use_json(json_out)
    from edgeq import skel

    base = skel.docs_base(docs_url)
    written = skel.write(directory, skel.dashboard_files(), src_prefix=skel.DASHBOARDS, force=force, docs_url=base)
    _report(
        directory,
        written,
        base,
        json_out,
        [f"import {directory / 'grafana' / 'edgeq.json'} into Grafana (Dashboards > Import)"],
    )


def register(app: typer.Typer) -> None:
    app.command("init")(init_cmd)
    dashboards = typer.Typer(help="The Grafana dashboard and Prometheus alert rules shipped with edgeq.", no_args_is_help=True)
    dashboards.command("export")(export_cmd)
    app.add_typer(dashboards, name="dashboards")
