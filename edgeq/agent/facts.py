"""Board facts recorded with every result: CPU, OS, runtime, disk, temperature, frequency, throttling.

Every reading is best effort: unreadable values are null, never an error. Stdlib only, Python 3.9+.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import socket
import subprocess

VCGENCMD_TIMEOUT_S = 2.0  # vcgencmd talks to the VideoCore firmware; if it hangs we skip throttling, not fail


def _read(path: str):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def cpu_model():
    text = _read("/proc/cpuinfo") or ""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields and value.strip():
            fields[key.strip()] = value.strip()
    for key in ("model name", "Model", "Hardware"):
        if key in fields:
            return fields[key]
    return platform.processor() or None


def board_model():
    text = _read("/proc/device-tree/model")
    return text.replace("\x00", "").strip() or None if text else None


def os_pretty_name():
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip("\"'")
    return None


def thermal_zones() -> list:
    zones = []
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        raw = _read(os.path.join(zone, "temp"))
        try:
            value = float(raw.strip()) if raw else None
        except ValueError:
            value = None
        if value is None:
            continue
        kind = (_read(os.path.join(zone, "type")) or "").strip() or None
        zones.append({"zone": os.path.basename(zone), "type": kind, "temp_c": value / 1000.0 if abs(value) > 1000 else value})
    return zones


def temperature_c(zones=None):
    zones = thermal_zones() if zones is None else zones
    if not zones:
        return None
    for zone in zones:  # the SoC zone when it is named, else the first one
        if zone["type"] and any(k in zone["type"].lower() for k in ("cpu", "soc")):
            return zone["temp_c"]
    return zones[0]["temp_c"]


def cpu_freq_khz():
    raw = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    try:
        return int(raw.strip()) if raw else None
    except ValueError:
        return None


def cpu_governor():
    raw = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return raw.strip() or None if raw else None


def throttled():
    """`vcgencmd get_throttled` (Raspberry Pi): {"raw": "0x0", "flags": 0}, or None where there is no vcgencmd."""
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=VCGENCMD_TIMEOUT_S, check=False)  # noqa: S603 - fixed argv, no shell
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"raw": None, "flags": None, "error": str(exc)[:200]}
    raw = proc.stdout.strip().partition("=")[2].strip() or None
    try:
        flags = int(raw, 16) if raw else None
    except ValueError:
        flags = None
    return {"raw": raw, "flags": flags}


def vmhwm_bytes():
    """Peak resident set size of this process (VmHWM), or None where /proc is unreadable."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            parts = line.split()
            try:
                return int(parts[1]) * 1024 if parts[2].lower() == "kb" else int(parts[1])
            except (IndexError, ValueError):
                return None
    return None


def thermal_state() -> dict:
    return {"temp_c": temperature_c(), "cpu_freq_khz": cpu_freq_khz(), "throttled": throttled()}


def gather(workdir, runtime_info, numpy_version) -> dict:
    os.makedirs(str(workdir), exist_ok=True)
    zones = thermal_zones()
    try:
        cores_available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores_available = None
    return {
        "hostname": socket.gethostname(),
        "arch": platform.machine(),
        "cpu_model": cpu_model(),
        "board_model": board_model(),
        "cores": os.cpu_count(),
        "cores_available": cores_available,
        "kernel": platform.release(),
        "os": os_pretty_name(),
        "python": platform.python_version(),
        "numpy": numpy_version,
        "runtime": runtime_info,
        "workdir": os.path.abspath(str(workdir)),
        "free_bytes": int(shutil.disk_usage(str(workdir)).free),
        "temp_c": temperature_c(zones),
        "thermal_zones": zones,
        "cpu_freq_khz": cpu_freq_khz(),
        "cpu_governor": cpu_governor(),
        "throttled": throttled(),
    }
