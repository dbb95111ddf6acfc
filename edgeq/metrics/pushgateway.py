"""The Pushgateway sink: PUT a stored run under grouping key {job, pipeline}."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import unquote, urlparse

from pydantic import field_validator

from edgeq.errors import ExportError
from edgeq.metrics.families import DEFAULT_JOB, DEFAULT_TIMEOUT_S, run_registry
from edgeq.records import Record

# everything after scheme:// up to the last @ (a password may hold an unencoded @ / ? or #): what redact() hides
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?.*@", re.DOTALL)
SHOWN_CREDENTIALS = "***"


def redact(url: str) -> str:
    """The URL as edgeq shows it: credentials (`user:password@`) replaced by `***@`, valid URL or not."""
    return _USERINFO.sub(lambda m: (m.group(1) or "") + SHOWN_CREDENTIALS + "@", url.strip(), count=1)


class Gateway(NamedTuple):
    """A checked Pushgateway URL: `url` (no credentials) to send to, `shown` to print, `auth` for basic auth."""

    url: str
    shown: str
    auth: tuple[str, str] | None


class PushSummary(Record):
    """What `edgeq metrics push --json` prints (and `edgeq run --push-gateway` adds as `metrics_push`)."""

    ok: Literal[True] = True
    gateway: str  # as shown: never credentials (redact)
    job: str
    grouping_key: dict[str, str]
    run_id: str
    pipeline: str
    series: int

    @field_validator("gateway")
    @classmethod
    def _no_credentials(cls, v: str) -> str:
        return redact(v)


class PushFailure(Record):
    """`metrics_push` of a run whose push failed: the results are stored, the export can be redone."""

    ok: Literal[False] = False
    gateway: str  # as shown: never credentials (redact)
    error: str

    @field_validator("gateway")
    @classmethod
    def _no_credentials(cls, v: str) -> str:
        return redact(v)


def parse_gateway(url: str) -> Gateway:
    """Validate the Pushgateway URL at the door: http(s)://[user:password@]host[:port][/prefix]. Credentials
    (percent-encoded where needed) are sent as HTTP basic auth, never shown: messages and documents get `shown`."""
    shown = redact(url)
    u = urlparse(url if "://" in url else f"http://{url}")
    try:
        ok = u.scheme in ("http", "https") and bool(u.hostname) and (u.port is None or u.port > 0)
    except ValueError:  # a port that is not a number, or out of range (an unencoded / in a password, too)
        ok = False
    if not ok:
        raise ExportError(
            f"Pushgateway URL {shown!r} is not an http(s) URL",
            "give it like http://pushgateway.lan:9091, with credentials http://USER:PASSWORD@pushgateway.lan:9091 "
            "(any @ : / ? # in them percent-encoded)",
        )
    netloc = u.netloc.rpartition("@")[2]
    auth = (unquote(u.username or ""), unquote(u.password or "")) if "@" in u.netloc else None
    url = u._replace(netloc=netloc).geturl()
    return Gateway(url, u._replace(netloc=f"{SHOWN_CREDENTIALS}@{netloc}").geturl() if auth else url, auth)


def check_gateway(url: str) -> str:
    """Validate the Pushgateway URL at the door; the URL as it may be shown (credentials hidden)."""
    return parse_gateway(url).shown


def _auth_hint(code: int, auth: tuple[str, str] | None) -> str:
    if code not in (401, 403):
        return "the gateway refused the metrics (another job may push the same names with other types or labels); "
    if auth is None:
        return "the gateway wants credentials: give them in the URL (http://USER:PASSWORD@host:9091, percent-encoded); "
    return "the gateway refused the credentials given in the URL: check the user and password (percent-encoded); "


def _handler_for(auth: tuple[str, str] | None) -> Callable[..., Callable[[], None]]:
    """prometheus_client's push handler, sending `auth` as HTTP basic auth (never on a redirect)."""
    import base64

    basic = None if auth is None else "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes) -> Callable[[], None]:
        return _handler(url, method, timeout, headers, data, basic, auth)

    return handler


def _handler(
    url: str,
    method: str,
    timeout: float | None,
    headers: list[tuple[str, str]],
    data: bytes,
    basic: str | None = None,
    auth: tuple[str, str] | None = None,
) -> Callable[[], None]:
    import socket
    import urllib.error
    import urllib.request

    hint = "results are stored in the history; send them later with `edgeq metrics push RUN_ID --gateway URL`"
    url_shown = redact(url)  # `url` has no credentials (parse_gateway): belt and braces

    def handle() -> None:
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked in parse_gateway
        for k, v in headers:
            req.add_header(k, v)
        if basic is not None:
            req.add_unredirected_header("Authorization", basic)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, see parse_gateway
                resp.read()
        except urllib.error.HTTPError as e:
            body = e.read(400).decode("utf-8", "replace").strip().replace("\n", " ")
            raise ExportError(
                f"Pushgateway {url_shown} answered HTTP {e.code} {e.reason}" + (f": {body}" if body else ""),
                hint if e.code >= 500 else _auth_hint(e.code, auth) + hint,
            ) from None
        except urllib.error.URLError as e:
            reason = e.reason
            what = f"timed out after {timeout:g}s" if isinstance(reason, (TimeoutError, socket.timeout)) else str(reason)
            raise ExportError(f"Pushgateway {url_shown} unreachable: {what}", hint) from None
        except TimeoutError:
            raise ExportError(f"Pushgateway {url_shown} timed out after {timeout:g}s", hint) from None
        except OSError as e:
            raise ExportError(f"Pushgateway {url_shown} failed: {e}", hint) from None

    return handle


def push(
    run_ref: str, gateway: str, *, db_path: Path | None = None, job: str = DEFAULT_JOB, timeout: float = DEFAULT_TIMEOUT_S
) -> PushSummary:
    """PUT a stored run to the Pushgateway under grouping key {job, pipeline}: the group is replaced, so a board
    that left the fleet (or a dropped variant) disappears instead of going stale."""
    from prometheus_client import push_to_gateway

    gw = parse_gateway(gateway)
    reg, run = run_registry(run_ref, db_path)
    handler = _handler_for(gw.auth)
    push_to_gateway(gw.url, job=job, registry=reg, grouping_key={"pipeline": run.pipeline}, timeout=timeout, handler=handler)
    return PushSummary(
        gateway=gw.shown,
        job=job,
        grouping_key={"job": job, "pipeline": run.pipeline},
        run_id=run.run_id,
        pipeline=run.pipeline,
        series=sum(len(f.samples) for f in reg.collect()),
    )
