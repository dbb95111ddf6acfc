"""The node_exporter textfile sink: the latest results of every pipeline, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from edgeq.errors import ExportError
from edgeq.metrics.families import exposition, latest_families, registry_for
from edgeq.records import Record


class TextfileSummary(Record):
    ok: Literal[True] = True
    path: str
    series: int
    bytes: int


def write_textfile(path: Path, db_path: Path | None = None) -> TextfileSummary:
    import logging

    from edgeq import paths

    fams = latest_families(db_path)
    data = exposition(registry_for(fams))
    logging.getLogger("edgeq.metrics").info("textfile: %d families, %d bytes, from %s", len(fams), len(data), db_path)
    try:
        paths.atomic_write_bytes(Path(path), data)  # node_exporter must never read half a file
    except OSError as e:
        raise ExportError(
            f"cannot write the metrics textfile {path}: {e}",
            "check the folder exists and is writable (node_exporter's --collector.textfile.directory)",
        ) from None
    return TextfileSummary(path=str(path), series=sum(len(f.samples) for f in fams), bytes=len(data))
