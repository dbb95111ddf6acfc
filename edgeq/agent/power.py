"""Power probes for the board agent, sampled in a background thread inside the timed window only.

--power is a JSON object; "interval_s" (default 0.05) and "idle_s" (default 0.5) apply to every probe:
    {"probe": "none"}
    {"probe": "rpi5-pmic"}                       sum of V*I over the PMIC rails from `vcgencmd pmic_read_adc`
    {"probe": "hwmon", "path": ".../power1_input"}   µW; an energy*_input or *energy_uj file is µJ (power = ΔE/Δt)
    {"probe": "command", "command": ["argv", ...]}   prints watts on stdout; run without a shell

Runs on boards: stdlib only, Python 3.9+.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time

from .codes import AgentFailure

PROBES = ("none", "rpi5-pmic", "hwmon", "command")
COMMAND_TIMEOUT_S = 2.0  # a probe command slower than this is hung; the sample is counted as an error
DEFAULT_INTERVAL_S = 0.05
DEFAULT_IDLE_S = 0.5

_PMIC_LINE = re.compile(r"^\s*(\S+?)_([AV])\s+(current|volt)\(\d+\)=\s*([-+0-9.eE]+)\s*([AV])\s*$")


class ProbeError(Exception):
    pass


def parse_power_spec(text) -> dict:
    """Validate --power at the door (usage error on anything malformed)."""
    if text is None or text == "":
        return {"probe": "none"}
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise AgentFailure("usage", "--power is not JSON: " + str(exc)) from None
    if not isinstance(spec, dict) or spec.get("probe") not in PROBES:
        raise AgentFailure("usage", '--power must be a JSON object with "probe" one of ' + ", ".join(PROBES))
    for key, default, low, high in (("interval_s", DEFAULT_INTERVAL_S, 0.001, 10.0), ("idle_s", DEFAULT_IDLE_S, 0.0, 60.0)):
        value = spec.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise AgentFailure("usage", "--power " + key + " must be a number in [" + str(low) + ", " + str(high) + "]")
        spec[key] = float(value)
    if spec["probe"] == "hwmon":
        if not isinstance(spec.get("path"), str) or not spec["path"]:
            raise AgentFailure("usage", '--power hwmon needs "path": a sysfs power*_input (µW) or energy*_input (µJ) file')
        if spec.get("kind", "auto") not in ("auto", "power", "energy"):
            raise AgentFailure("usage", '--power hwmon "kind" must be auto, power or energy')
    if spec["probe"] == "command":
        argv = spec.get("command")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise AgentFailure("usage", '--power command needs "command": a non-empty list of strings (argv, no shell)')
    return spec


def parse_pmic(text: str):
    """(total watts, {rail: {"a":, "v":, "w":}}) from `vcgencmd pmic_read_adc`; rails without both readings are skipped."""
    currents: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        m = _PMIC_LINE.match(line)
        if not m:
            continue
        rail, _suffix, what, value, _unit = m.groups()
        (currents if what == "current" else volts)[rail] = float(value)
    rails = {}
    for rail in sorted(set(currents) & set(volts)):
        rails[rail] = {"a": currents[rail], "v": volts[rail], "w": currents[rail] * volts[rail]}
    if not rails:
        raise ProbeError("no rail with both current and voltage in `vcgencmd pmic_read_adc` output")
    return sum(r["w"] for r in rails.values()), rails


class Probe:
    name = "none"
    note: str | None = None

    def reset(self) -> None:
        """Forget state carried between readings (energy counters) before a new window."""

    def read(self):
        """Watts now, or None when this reading only primes the probe."""
        raise NotImplementedError


def _run(argv) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)  # noqa: S603 - argv list from the operator's --power, no shell
    except subprocess.TimeoutExpired:
        raise ProbeError(argv[0] + " took longer than " + str(COMMAND_TIMEOUT_S) + " s") from None
    except OSError as exc:
        raise ProbeError("cannot run " + argv[0] + ": " + str(exc)) from None
    if proc.returncode != 0:
        raise ProbeError(argv[0] + " exited " + str(proc.returncode) + ": " + proc.stderr.strip()[:200])
    return proc.stdout


class PmicProbe(Probe):
    name = "rpi5-pmic"
    note = "sum of V*I over the Raspberry Pi 5 PMIC rails (SoC and memory, not the whole board); vcgencmd runs at each sample"

    def __init__(self):
        self.vcgencmd = shutil.which("vcgencmd")

    def read(self):
        if self.vcgencmd is None:
            raise ProbeError("vcgencmd not found on PATH (Raspberry Pi OS package raspi-utils)")
        return parse_pmic(_run([self.vcgencmd, "pmic_read_adc"]))[0]


class HwmonProbe(Probe):
    name = "hwmon"

    def __init__(self, path: str, kind: str = "auto"):
        self.path = path
        base = os.path.basename(path)
        self.energy = kind == "energy" or (kind == "auto" and (base.startswith("energy") or base.endswith("energy_uj")))
        self.note = ("energy counter in µJ, power = ΔE/Δt" if self.energy else "power in µW") + " from " + path
        self._last: tuple[float, float] | None = None

    def reset(self) -> None:
        self._last = None

    def read(self):
        try:
            with open(self.path) as f:
                raw = f.read().strip()
        except OSError as exc:
            raise ProbeError("cannot read " + self.path + ": " + str(exc)) from None
        try:
            value = float(raw.split()[0])
        except (ValueError, IndexError):
            raise ProbeError(self.path + " holds " + repr(raw[:40]) + ", not a number") from None
        if not self.energy:
            return value * 1e-6
        now = time.perf_counter()
        last, self._last = self._last, (now, value)
        if last is None or now <= last[0] or value < last[1]:  # first reading, or the counter wrapped
            return None
        return (value - last[1]) * 1e-6 / (now - last[0])


class CommandProbe(Probe):
    name = "command"

    def __init__(self, argv):
        self.argv = list(argv)
        self.note = "watts printed by " + self.argv[0]

    def read(self):
        out = _run(self.argv).strip()
        try:
            return float(out.split()[0])
        except (ValueError, IndexError):
            raise ProbeError(self.argv[0] + " printed " + repr(out[:40]) + ", not watts") from None


def make_probe(spec: dict):
    probe = spec["probe"]
    if probe == "rpi5-pmic":
        return PmicProbe()
    if probe == "hwmon":
        return HwmonProbe(spec["path"], spec.get("kind", "auto"))
    if probe == "command":
        return CommandProbe(spec["command"])
    return None


class Sampler:
    """Reads a probe every interval_s in a thread, from start() to stop(); one reading at each end at least."""

    def __init__(self, probe: Probe, interval_s: float):
        self.probe = probe
        self.interval_s = interval_s
        self.watts: list[float] = []
        self.errors = 0
        self.first_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        try:
            w = self.probe.read()
        except Exception as exc:  # a probe failure must never break the benchmark
            self.errors += 1
            if self.first_error is None:
                self.first_error = str(exc)[:300]
            return
        if w is not None:
            self.watts.append(float(w))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.interval_s):
            self._sample()
        self._sample()  # closes the window: a window shorter than one interval still gets a ΔE reading

    def start(self) -> None:
        self.probe.reset()
        self._thread = threading.Thread(target=self._run, name="edgeq-power", daemon=True)
        self._thread.start()

    def stop(self) -> list:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(COMMAND_TIMEOUT_S * 3)
        return self.watts


def measure_idle(probe: Probe, spec: dict) -> Sampler:
    sampler = Sampler(probe, spec["interval_s"])
    sampler.start()
    time.sleep(spec["idle_s"])
    sampler.stop()
    return sampler


def summarize(spec: dict, probe: Probe, idle: Sampler, active: Sampler, mean_latency_s) -> dict:
    doc = {"probe": spec["probe"], "interval_s": spec["interval_s"], "idle_s": spec["idle_s"], "note": probe.note}
    watts = active.watts
    if not watts:
        doc["error"] = active.first_error or "the probe gave no reading in the timed window"
        return doc
    mean_w = sum(watts) / len(watts)
    idle_w = sum(idle.watts) / len(idle.watts) if idle is not None and idle.watts else None
    doc.update(
        {
            "mean_w": mean_w,
            "min_w": min(watts),
            "max_w": max(watts),
            "idle_w": idle_w,
            "samples": len(watts),
            "samples_w": [round(w, 6) for w in watts],
            "idle_samples": len(idle.watts) if idle is not None else 0,
            "read_errors": active.errors + (idle.errors if idle is not None else 0),
            "first_error": active.first_error or (idle.first_error if idle is not None else None),
            "joules_per_inference": mean_w * mean_latency_s if mean_latency_s is not None else None,
            "joules_per_inference_above_idle": (mean_w - idle_w) * mean_latency_s
            if idle_w is not None and mean_latency_s is not None
            else None,
        }
    )
    return doc
