"""The Pushgateway sink: PUT a stored run under grouping key {job, pipeline}."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from edgeq.errors import ExportError
from edgeq.metrics.families import DEFAULT_JOB, DEFAULT_TIMEOUT_S, run_registry
from edgeq.records import Record


class PushSummary(Record):
    """What `edgeq metrics push --json` prints (and `edgeq run --push-gateway` adds as `metrics_push`)."""

    ok: Literal[True] = True
    gateway: str
    job: str
    grouping_key: dict[str, str]
    run_id: str
    pipeline: str
    series: int


class PushFailure(Record):
    """`metrics_push` of a run whose push failed: the results are stored, the export can be redone."""

    ok: Literal[False] = False
    gateway: str
    error: str


def check_gateway(url: str) -> str:
    """Validate the Pushgateway URL at the door: http(s)://host[:port][/prefix]."""
    u = urlparse(url if "://" in url else f"http://{url}")
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ExportError(f"Pushgateway URL {url!r} is not an http(s) URL", "give it like http://pushgateway.lan:9091")
    return u.geturl()


def _handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes) -> Callable[[], None]:
    import socket
    import urllib.error
    import urllib.request

    hint = "results are stored in the history; send them later with `edgeq metrics push RUN_ID --gateway URL`"

    def handle() -> None:
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked in check_gateway
        for k, v in headers:
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, see check_gateway
                resp.read()
        except urllib.error.HTTPError as e:
            body = e.read(400).decode("utf-8", "replace").strip().replace("\n", " ")
            raise ExportError(
                f"Pushgateway {url} answered HTTP {e.code} {e.reason}" + (f": {body}" if body else ""),
                hint
                if e.code >= 500
                else "the gateway refused the metrics (another job may push the same names with other types or labels); " + hint,
            ) from None
        except urllib.error.URLError as e:
            reason = e.reason
            what = f"timed out after {timeout:g}s" if isinstance(reason, (TimeoutError, socket.timeout)) else str(reason)
            raise ExportError(f"Pushgateway {url} unreachable: {what}", hint) from None
        except TimeoutError:
            raise ExportError(f"Pushgateway {url} timed out after {timeout:g}s", hint) from None
        except OSError as e:
            raise ExportError(f"Pushgateway {url} failed: {e}", hint) from None

    return handle


def push(
    run_ref: str, gateway: str, *, db_path: Path | None = None, job: str = DEFAULT_JOB, timeout: float = DEFAULT_TIMEOUT_S
) -> PushSummary:
    """PUT a stored run to the Pushgateway under grouping key {job, pipeline}: the group is replaced, so a board
    that left the fleet (or a dropped variant) disappears instead of going stale."""
    from prometheus_client import push_to_gateway

    gateway = check_gateway(gateway)
    reg, run = run_registry(run_ref, db_path)
    push_to_gateway(gateway, job=job, registry=reg, grouping_key={"pipeline": run.pipeline}, timeout=timeout, handler=_handler)
    return PushSummary(
        gateway=gateway,
        job=job,
        grouping_key={"job": job, "pipeline": run.pipeline},
        run_id=run.run_id,
        pipeline=run.pipeline,
        series=sum(len(f.samples) for f in reg.collect()),
    )
