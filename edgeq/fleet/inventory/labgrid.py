"""Boards from a labgrid coordinator: reserve places by tag filter, acquire them, read each place's
NetworkService (address, port, username) into DeviceSpecs, and release them afterwards, whatever happens.

labgrid's client is asyncio + gRPC. Its event loop runs in one daemon thread for the whole lease; the
main thread waits on each call with a wall-clock bound, so Ctrl-C and SIGTERM (edgeq.errors.Terminated)
land in the main thread as usual and the `finally` of `leased()` releases the places.

A killed edgeq (SIGKILL) cannot release. Its session name says which process it is:
`host/user.edgeq-PID-bootBOOT-pidnsNS-startTICKS`, the kernel's boot id (12 hex digits), the inode of its PID
namespace and the process's start time (clock ticks since boot). An edgeq under the same kernel and in the same
PID namespace, where that pid means the same process, releases the place of a holder whose pid is gone or
now a different process (a reused pid), and cancels its reservations. A pid from another PID namespace
(containers share the host name, not their pids), another kernel or an older edgeq's name (`.edgeq-PID`) says
nothing here: such a holder is never kicked. Its waiting reservation expires by itself (labgrid: 60 s
without a poll), an acquired place stays until someone runs the `labgrid-client ... release --kick` the
timeout names.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edgeq.errors import ConfigError, FleetError
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory, resolve_device
from edgeq.fleet.inventory.labgridspec import LabgridSpec

T = TypeVar("T")
Log = Callable[[str], None]
RELEASE_TIMEOUT_S = 10.0  # the whole release on the way out: a dead coordinator must not hang Ctrl-C
_OWNER_RE = re.compile(
    r"^(?P<host>[^/]+)/.*\.edgeq-(?P<pid>\d+)(?:-boot(?P<boot>[0-9a-f]{12})-pidns(?P<ns>\d+)-start(?P<start>\d+))?$"
)


@dataclass(frozen=True)
class Holder:
    """Which process an edgeq session is: a pid means one process only under one kernel in one PID namespace."""

    boot: str  # the first 12 hex digits of /proc/sys/kernel/random/boot_id
    pidns: int  # inode of /proc/self/ns/pid
    pid: int
    start: int  # /proc/PID/stat field 22: start time in clock ticks since boot (a reused pid has another)

    @property
    def tag(self) -> str:
        return f"{self.pid}-boot{self.boot}-pidns{self.pidns}-start{self.start}"


def me() -> Holder | None:
    """This process, or None without procfs (its session name is then the bare pid: never reaped by others)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    start = proc_start(os.getpid())
    if len(boot) != 12 or start is None:
        return None
    return Holder(boot, ns, os.getpid(), start)


def proc_start(pid: int) -> int | None:
    """Start time of `pid` in this PID namespace (clock ticks since boot), None if no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def holder_gone(owner: str, here: Holder | None, start_of: Callable[[int], int | None] = proc_start) -> bool:
    """True only when `owner` (a labgrid session name) is an edgeq that certainly no longer runs: same kernel,
    same PID namespace, and its pid is gone or started at another time. Anything else (another namespace or
    kernel, an older edgeq's name without these, not an edgeq) is treated as alive."""
    m = _OWNER_RE.match(owner)
    if m is None or m["boot"] is None or here is None:
        return False
    if m["boot"] != here.boot or int(m["ns"]) != here.pidns:
        return False
    return start_of(int(m["pid"])) != int(m["start"])


@dataclass(frozen=True)
class Place:
    """One acquired place and the SSH endpoint its NetworkService publishes."""

    name: str
    tags: dict[str, str]
    address: str
    port: int
    username: str


@contextmanager
def leased(inv: Inventory, log: Log) -> Iterator[Inventory]:
    """The inventory to run on: `inv` itself for a plain devices.yaml; with `labgrid:`, the places reserved
    and acquired for this run as devices, released (and reservations cancelled) on the way out."""
    if inv.labgrid is None:
        yield inv
        return
    client = Client(inv.labgrid, log)
    try:
        places = client.reserve()
        yield _inventory(inv, places)
    finally:
        client.close()


def _inventory(inv: Inventory, places: list[Place]) -> Inventory:
    devices = tuple(device_for(inv, p) for p in places)
    return Inventory(devices, inv.source)


def device_for(inv: Inventory, place: Place) -> DeviceSpec:
    """The place's endpoint + the devices.yaml entry named like it, else the first whose place_tags it carries,
    else `defaults:`."""
    tmpl = next((t for t in inv.templates if t.name == place.name), None)
    if tmpl is None:
        tmpl = next(
            (t for t in inv.templates if t.place_tags and all(place.tags.get(k) == v for k, v in t.place_tags.items())),
            None,
        )
    fields: dict[str, Any] = dict(inv.defaults)
    if tmpl is not None:
        fields.update(tmpl.model_dump(include=tmpl.model_fields_set - {"name", "place_tags"}))
    fields["tags"] = list(dict.fromkeys([*fields.get("tags", []), "labgrid"]))
    fields.update(name=place.name, host=place.address, port=place.port, user=place.username, transport="ssh")
    try:
        return resolve_device(fields, inv.base or Path.cwd())
    except (ValueError, ConfigError) as e:
        raise FleetError(
            f"labgrid place {place.name}: cannot make a device of it: {e}",
            "check the place name and its NetworkService (address, port, username)",
        ) from None


class Client:
    """One coordinator session (named host/user.edgeq-PID) on a private event loop thread."""

    def __init__(self, spec: LabgridSpec, log: Log) -> None:
        self.spec, self.log = spec, log
        self.tokens: list[str] = []
        self.acquired: list[str] = []
        self.session: Any = None
        self.identity = me()
        # labgrid's client logs its own view of gRPC failures on the root logger (stderr, unformatted);
        # edgeq reports them once, as a FleetError naming the coordinator and what to do
        self._quiet = _DropLabgridRecords()
        logging.getLogger().addFilter(self._quiet)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="edgeq-labgrid", daemon=True)
        self._thread.start()
        try:
            self.session = self._call(self._open(), "connect")
        except BaseException:
            self._stop_loop()
            raise

    # ---- plumbing

    def _call(self, coro: Coroutine[Any, Any, T], what: str, timeout: float | None = None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout if timeout is not None else self.spec.connect_timeout)
        except FutureTimeout:
            fut.cancel()
            raise FleetError(
                f"labgrid coordinator {self.spec.coordinator}: {what} got no answer within "
                f"{timeout or self.spec.connect_timeout:g} s",
                "is labgrid-coordinator running and reachable? (labgrid.connect_timeout)",
            ) from None
        except BaseException:
            fut.cancel()
            raise

    async def _open(self) -> Any:
        try:
            from labgrid.remote.client import ClientSession
            from labgrid.util.proxy import proxymanager
        except ImportError:
            raise FleetError(
                "devices.yaml has a labgrid: section but labgrid is not installed",
                "pip install 'edgeq[labgrid]'",
            ) from None

        tag = self.identity.tag if self.identity is not None else str(os.getpid())

        class Session(ClientSession):
            def getuser(self) -> str:
                return f"{super().getuser()}.edgeq-{tag}"

        address = proxymanager.get_grpc_address(self.spec.coordinator, default_port=20408)
        session = Session(address=address, loop=asyncio.get_running_loop())
        try:
            await session.start()
        except Exception as e:
            await session.close()
            raise FleetError(
                f"labgrid coordinator {self.spec.coordinator}: cannot connect ({e})",
                "start labgrid-coordinator there, or fix labgrid.coordinator in devices.yaml",
            ) from None
        return session

    @property
    def me(self) -> str:
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    # ---- reserve, wait, acquire

    def reserve(self) -> list[Place]:
        """Reserve spec.places places, wait for them (logging who holds them), acquire them."""
        spec, t0 = self.spec, time.monotonic()
        if not self._call(self._matching(), "list places"):
            raise FleetError(
                f"labgrid coordinator {spec.coordinator}: no place matches {spec.filter_text}",
                "labgrid-client places / show: check the place tags, or labgrid.place_tags in devices.yaml",
            )
        for _ in range(spec.places):
            self.tokens.append(self._call(self._create(), "reserve"))
        shown, delay = "", 0.05
        while True:
            allocated = self._call(self._poll(), "poll reservations")
            if all(allocated.get(t) for t in self.tokens):
                break
            holders = self._call(self._holders(), "list holders")
            if self._reap(holders):
                continue
            text = "; ".join(f"{p} {h}" for p, h in sorted(holders.items())) or "(nobody: queued behind other reservations)"
            waited = time.monotonic() - t0
            if waited >= spec.reserve_timeout:
                raise FleetError(
                    f"labgrid: no place matching {spec.filter_text} was free within {spec.reserve_timeout:g} s "
                    f"(labgrid.reserve_timeout) on {spec.coordinator}; held: {text}",
                    "wait and rerun, or raise labgrid.reserve_timeout; if a holder is gone: "
                    f"labgrid-client -x {spec.coordinator} -p PLACE release --kick",
                )
            if text != shown:
                self.log(f"labgrid: waiting for a place matching {spec.filter_text}: {text}")
                shown = text
            time.sleep(min(delay, max(0.0, spec.reserve_timeout - waited)))
            delay = min(delay * 2, 1.0)  # polls also keep our waiting reservations alive (labgrid: 60 s)
        places = [n for t in self.tokens for n in allocated[t]]
        for name in places:
            self._call(self._acquire(name), f"acquire {name}")
            self.acquired.append(name)
        out = [self._endpoint(n) for n in places]
        self.log(f"labgrid: acquired {', '.join(places)} as {self.me} ({time.monotonic() - t0:.1f} s)")
        return out

    def _place_matches(self, place: Any) -> bool:
        tags = {**place.tags, "name": place.name}
        return all(tags.get(k) == v for k, v in self.spec.place_tags.items())

    async def _matching(self) -> list[str]:
        return [p.name for p in self.session.places.values() if self._place_matches(p)]

    async def _create(self) -> str:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        fltr = {"main": pb.Reservation.Filter(filter=dict(self.spec.place_tags))}
        resp = await self.session.stub.CreateReservation(pb.CreateReservationRequest(filters=fltr, prio=self.spec.priority))
        return str(resp.reservation.token)

    async def _poll(self) -> dict[str, list[str]]:
        """token -> allocated place names (empty while waiting)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        out = {}
        for t in self.tokens:
            resp = await self.session.stub.PollReservation(pb.PollReservationRequest(token=t))
            res = resp.reservation
            if res.state in (3, 4):  # expired, invalid: never allocated in time, or its place was deleted
                raise FleetError(f"labgrid reservation {t} is {('expired', 'invalid')[res.state - 3]}", "rerun")
            out[t] = list(res.allocations.values()) if res.state in (1, 2) else []  # {filter group: place name}
        return out

    async def _holders(self) -> dict[str, str]:
        """Matching places that are taken -> 'acquired by X' / 'reserved by X'."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        resp = await self.session.stub.GetReservations(pb.GetReservationsRequest())
        owners = {r.token: r.owner for r in resp.reservations}
        out = {}
        for p in self.session.places.values():
            if not self._place_matches(p):
                continue
            if p.acquired and p.acquired != self.me:
                out[p.name] = f"acquired by {p.acquired}"
            elif p.reservation and p.reservation not in self.tokens:
                out[p.name] = f"reserved by {owners.get(p.reservation, '?')}"
        return out

    def _reap(self, holders: dict[str, str]) -> bool:
        """Release places held by an edgeq whose process is certainly gone (SIGKILL): holder_gone. True if any."""
        dead = {}
        for place, text in holders.items():
            owner = text.split(" by ", 1)[1]
            if holder_gone(owner, self.identity):
                dead[place] = owner
        for place, owner in dead.items():
            why = "an edgeq under this kernel and PID namespace that is no longer running"
            self.log(f"labgrid: {place} is held by {owner}, {why}: releasing it")
            self._call(self._kick(place, owner), f"release {place}")
        return bool(dead)

    async def _kick(self, place: str, owner: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        await self.session.stub.ReleasePlace(pb.ReleasePlaceRequest(placename=place, fromuser=owner))
        resp = await self.session.stub.GetReservations(pb.GetReservationsRequest())
        for r in resp.reservations:
            if r.owner == owner:
                await self.session.stub.CancelReservation(pb.CancelReservationRequest(token=r.token))
        await self.session.sync_with_coordinator()

    async def _acquire(self, name: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        await self.session.stub.AcquirePlace(pb.AcquirePlaceRequest(placename=name))
        await self.session.sync_with_coordinator()

    def _endpoint(self, name: str) -> Place:
        place = self.session.places[name]
        for exporter, groups in sorted(self.session.resources.items()):
            for group, resources in sorted(groups.items()):
                for rname, res in sorted(resources.items()):
                    if res.cls == "NetworkService" and place.hasmatch((exporter, group, res.cls, rname)):
                        p = res.params
                        return Place(name, dict(place.tags), str(p["address"]), int(p.get("port", 22)), str(p["username"]))
        raise FleetError(
            f"labgrid place {name} has no NetworkService resource (address, port, username)",
            f"export one and add-match it: labgrid-client -p {name} add-match EXPORTER/GROUP/NetworkService",
        )

    # ---- release

    def close(self) -> None:
        """Release what this run acquired and cancel its reservations (bounded); then stop the loop."""
        try:
            if self.session is not None and (self.acquired or self.tokens):
                self._call(self._release(), "release", timeout=RELEASE_TIMEOUT_S)
                if self.acquired:
                    self.log(f"labgrid: released {', '.join(self.acquired)}")
        except FleetError as e:
            self.log(f"labgrid: could not release {', '.join(self.acquired) or 'the reservations'}: {e.message}")
        finally:
            self.acquired, self.tokens = [], []
            self._stop_loop()

    async def _release(self) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        for name in self.acquired:
            await self.session.stub.ReleasePlace(pb.ReleasePlaceRequest(placename=name, fromuser=self.me))
        for t in self.tokens:
            try:
                await self.session.stub.CancelReservation(pb.CancelReservationRequest(token=t))
            except Exception:  # noqa: S110 - already expired or cancelled: nothing left to free
                pass

    def _stop_loop(self) -> None:
        async def shutdown() -> None:
            if self.session is not None:
                await self.session.stop()
                await self.session.close()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(2.0)
        except Exception:  # noqa: S110 - best effort on the way out
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(2.0)
        logging.getLogger().removeFilter(self._quiet)


class _DropLabgridRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}labgrid{os.sep}" not in record.pathname
