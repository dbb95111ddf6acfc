"""Board state through a bench's timed window: temperature, CPU frequency, throttling, load; flags and trend.

A snapshot is taken before and after the window; during it a daemon thread wakes every `interval_s` and
reads sysfs files it opened once (os.pread: no open/close, no allocation beyond a few bytes). Why a thread
and not readings between invokes: between invokes the timed loop would pay a clock check on every
iteration and the readings would land right next to a timed region; the thread sleeps in the kernel
(Event.wait) and a wake costs tens of microseconds per second, and TFLite runtimes release the GIL inside
invoke(), so the wake overlaps the model's work instead of preceding it (bench/sampler_bench.py measures
it). vcgencmd forks a process, so it runs only before and after the window, never during it.

Missing files (no thermal zones, no cpufreq, no vcgencmd) leave fields out: never an error.
The flag logic (`flags`, `trend`) is pure: it takes plain dicts and lists.

Runs on boards: stdlib only, Python 3.7+.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import threading
import time

VCGENCMD_TIMEOUT_S = 2.0
FREQ_DROP_RATIO = 0.95  # a window whose slowest clock is 5 % under its fastest one ran at a different speed
FOREIGN_LOAD = 0.5  # runnable tasks beyond our own (1-min loadavg): half a core busy with something else
HOT_TEMP_C = 80.0  # a Raspberry Pi 4/5 starts to throttle at 80 °C (devices.yaml hot_temp_c overrides)
THROTTLE_NOW = 0xF  # under-voltage, arm frequency capped, throttled, soft temperature limit: now
THROTTLE_SINCE = 0xF0000  # the same four "has occurred" bits (sticky since boot)
TREND_FRACTION = 0.1  # burst vs sustained: the first 10 % of the samples against the last 10 %
# cpu_starved: the invoking thread runs back to back, so the agent's process CPU time over the window is at
# least ~1 x wall (more with runtime worker threads); under 0.85 x wall something took the CPU away
CPU_STARVED_RATIO = 0.85
CPU_THROTTLED_FRACTION = 0.05  # or the cgroup's CFS quota held the group off the CPU for 5 % of the window
CPU_STEAL_FRACTION = 0.05  # or the hypervisor stole 5 % of the cpus used (/proc/stat steal)
CPU_OFFLOADED = ("edgetpu",)  # delegates that leave the CPU waiting: the CPU/wall rule does not apply


def _read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _int_or_none(text):
    try:
        return int(text) if text else None
    except ValueError:
        return None


def thermal_paths() -> list:
    return sorted(glob.glob("/sys/class/thermal/thermal_zone*/temp"))


def freq_paths(cpus) -> list:
    out = []
    for cpu in cpus:
        path = "/sys/devices/system/cpu/cpu" + str(cpu) + "/cpufreq/scaling_cur_freq"
        if os.path.exists(path):
            out.append(path)
    return out


def cpus_used() -> list:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _millideg(value):
    return value / 1000.0 if abs(value) > 1000 else float(value)


def _vcgencmd(exe, *argv):
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [exe] + list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # noqa: S603 - fixed argv
            text=True,
            timeout=VCGENCMD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip().partition("=")[2].strip() or None


def snapshot(cpus=None, vcgencmd=True) -> dict:
    """One reading of everything (before/after the window). Fields a board lacks are absent."""
    out = {}
    temps = [_int_or_none(_read_text(p)) for p in thermal_paths()]
    temps = [_millideg(t) for t in temps if t is not None]
    if temps:
        out["temp_c"] = max(temps)
    freqs = [_int_or_none(_read_text(p)) for p in freq_paths(cpus_used() if cpus is None else cpus)]
    freqs = [f for f in freqs if f is not None]
    if freqs:
        out["freq_khz"] = min(freqs)
    max_freq = _int_or_none(_read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))
    if max_freq is not None:
        out["cpuinfo_max_khz"] = max_freq
    load = (_read_text("/proc/loadavg") or "").split()
    try:
        out["loadavg"] = [float(x) for x in load[:3]]
    except ValueError:
        pass
    exe = shutil.which("vcgencmd") if vcgencmd else None
    if exe is not None:
        raw = _vcgencmd(exe, "get_throttled")
        try:
            flags = int(raw, 16) if raw else None
        except ValueError:
            flags = None
        out["throttled"] = {"raw": raw, "flags": flags}
        temp = _vcgencmd(exe, "measure_temp")  # "49.1'C"
        try:
            out["vc_temp_c"] = float(temp.split("'")[0]) if temp else None
        except ValueError:
            pass
    return out


class Sampler:
    """Max temperature and min/max CPU frequency through the window, from files opened once."""

    def __init__(self, interval_s, cpus=None):
        self.interval_s = float(interval_s)
        self._fds: dict = {"temp": [], "freq": []}
        for kind, paths in (("temp", thermal_paths()), ("freq", freq_paths(cpus_used() if cpus is None else cpus))):
            for path in paths:
                try:
                    self._fds[kind].append(os.open(path, os.O_RDONLY))
                except OSError:
                    pass
        self._stop = threading.Event()
        self._thread = None
        self.samples = 0
        self.temp_max = None
        self.freq_min = None
        self.freq_max = None

    def _values(self, kind):
        out = []
        for fd in self._fds[kind]:
            try:
                value = _int_or_none(os.pread(fd, 32, 0).strip())
            except OSError:
                value = None
            if value is not None:
                out.append(value)
        return out

    def sample(self):
        temps, freqs = self._values("temp"), self._values("freq")
        if temps:
            t = _millideg(max(temps))
            self.temp_max = t if self.temp_max is None else max(self.temp_max, t)
        if freqs:
            self.freq_min = min(freqs) if self.freq_min is None else min(self.freq_min, min(freqs))
            self.freq_max = max(freqs) if self.freq_max is None else max(self.freq_max, max(freqs))
        self.samples += 1

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self):
        if self.interval_s > 0 and (self._fds["temp"] or self._fds["freq"]):
            self._thread = threading.Thread(target=self._run, name="edgeq-agent-state", daemon=True)
            self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()  # the window's last instant, also where no thread ran (a sub-interval window)
        for fd in self._fds["temp"] + self._fds["freq"]:
            os.close(fd)
        out = {"samples": self.samples, "interval_s": self.interval_s}
        for key, value in (("temp_max_c", self.temp_max), ("freq_min_khz", self.freq_min), ("freq_max_khz", self.freq_max)):
            if value is not None:
                out[key] = value
        return out


def _cgroup_mounts() -> list:
    """[(version 1 or 2, mount root, mount point)] of the cgroup hierarchies with the cpu controller."""
    out = []
    for line in (_read_text("/proc/self/mountinfo") or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2":
            out.append((2, fields[3], fields[4]))
        elif tail[0] == "cgroup" and "cpu" in tail[2].split(","):
            out.append((1, fields[3], fields[4]))
    return out


def _cgroup_dirs() -> list:
    """[(version, directory)] of this process's cpu cgroup and its ancestors (own first): a quota set on a
    parent group throttles its children too, and only the parent's cpu.stat counts it."""
    groups = {}
    for line in (_read_text("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            groups[2] = parts[2]
        elif "cpu" in parts[1].split(","):
            groups[1] = parts[2]
    out = []
    for version, root, mount in _cgroup_mounts():
        path = groups.get(version)
        if path is None or (version == 2 and not os.path.exists(os.path.join(mount, "cpu.stat"))):
            continue
        rel = path[len(root) :] if root != "/" and path.startswith(root) else path
        rel = rel.strip("/")
        while True:
            out.append((version, os.path.join(mount, rel) if rel else mount))
            if not rel:
                break
            rel = os.path.dirname(rel)
    return out


def _cgroup_stat(directory, version):
    """(nr_throttled, throttled seconds) from a cgroup's cpu.stat, or None."""
    stat = {}
    for line in (_read_text(os.path.join(directory, "cpu.stat")) or "").splitlines():
        key, _, value = line.partition(" ")
        stat[key] = _int_or_none(value.strip())
    nr = stat.get("nr_throttled")
    t = stat.get("throttled_time") if version == 1 else stat.get("throttled_usec")
    if nr is None or t is None:
        return None
    return nr, t / (1e9 if version == 1 else 1e6)


def _steal_s(cpus) -> float | None:
    """Steal seconds (/proc/stat, the 8th counter) summed over `cpus`; None without the column."""
    tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    want = {"cpu" + str(c) for c in cpus}
    total = None
    for line in (_read_text("/proc/stat") or "").splitlines():
        parts = line.split()
        if parts and parts[0] in want and len(parts) > 8:
            value = _int_or_none(parts[8])
            if value is not None:
                total = (total or 0) + value / tick
    return total


def cpu_counters(cpus=None) -> dict:
    """The counters cpu_window() compares: this process's CPU seconds (time.process_time: user + system of
    every thread, ns resolution where os.times has 10 ms ticks), the steal of the cpus used, the cgroup's
    throttling (v1 and v2, own group and ancestors)."""
    used = cpus_used() if cpus is None else cpus
    groups = {}
    for version, directory in _cgroup_dirs():
        stat = _cgroup_stat(directory, version)
        if stat is not None:
            groups[directory] = (version, stat[0], stat[1])
    return {"cpu_s": time.process_time(), "steal_s": _steal_s(used), "ncpus": len(used), "cgroups": groups}


def cpu_window(start, end, wall_s, cpu_bound=True) -> dict:
    """What the window's CPU counters say: CPU/wall, steal, the most throttled cgroup. Pure."""
    wall = max(float(wall_s), 1e-9)
    cpu = end["cpu_s"] - start["cpu_s"]
    out = {
        "cpu_s": round(cpu, 6),
        "wall_s": round(wall, 6),
        "ratio": round(cpu / wall, 4),
        "expected": 1.0 if cpu_bound else None,
    }
    if start.get("steal_s") is not None and end.get("steal_s") is not None:
        out["steal_s"] = round(end["steal_s"] - start["steal_s"], 4)
        out["steal_fraction"] = round(out["steal_s"] / (wall * max(1, end.get("ncpus") or 1)), 4)
    best = None
    for directory, (version, nr, t) in (end.get("cgroups") or {}).items():
        before = (start.get("cgroups") or {}).get(directory)
        if before is None:
            continue
        d_nr, d_t = nr - before[1], t - before[2]
        if best is None or d_t > best["throttled_s"]:
            best = {"cgroup": directory, "cgroup_version": version, "nr_throttled": d_nr, "throttled_s": round(d_t, 6)}
    if best is not None:
        out.update(best)
        out["throttled_fraction"] = round(best["throttled_s"] / wall, 4)
    out["starved"] = starved(out)
    return out


def starved(cpu) -> bool:
    """The cpu_starved rule (docs/measurement.md): CPU/wall under CPU_STARVED_RATIO x expected (CPU-bound
    runs only), or the cgroup throttled over CPU_THROTTLED_FRACTION of the window, or steal over
    CPU_STEAL_FRACTION of the cpus used."""
    if not cpu:
        return False
    expected = cpu.get("expected")
    if expected and cpu.get("ratio") is not None and cpu["ratio"] < CPU_STARVED_RATIO * expected:
        return True
    if (cpu.get("throttled_fraction") or 0.0) > CPU_THROTTLED_FRACTION:
        return True
    return (cpu.get("steal_fraction") or 0.0) > CPU_STEAL_FRACTION


def flags(before, during, after, own_threads, hot_temp_c=HOT_TEMP_C, foreign_load=FOREIGN_LOAD, cpu=None) -> list:
    """The flags of one session from plain readings (see the module doc); sorted, possibly empty."""
    out = set()
    for snap in (before, after):
        bits = (snap.get("throttled") or {}).get("flags")
        if bits is not None and bits & THROTTLE_NOW:
            out.add("throttled")
    b_bits = (before.get("throttled") or {}).get("flags")
    a_bits = (after.get("throttled") or {}).get("flags")
    if b_bits is not None and a_bits is not None and (a_bits & ~b_bits) & THROTTLE_SINCE:
        out.add("throttled")  # a throttle event happened inside the window (its sticky bit appeared)
    # the reference is the fastest clock seen: taken after warm-up, an on-demand governor is already up there
    fastest = max([f for f in (before.get("freq_khz"), during.get("freq_max_khz"), after.get("freq_khz")) if f] or [0])
    slowest = during.get("freq_min_khz")
    if fastest and slowest is not None and slowest < FREQ_DROP_RATIO * fastest:
        out.add("freq_drop")
    load = foreign(before, own_threads), foreign(after, own_threads)
    if any(x is not None and x > foreign_load for x in load):
        out.add("foreign_load")
    temps = [
        t for t in (before.get("temp_c"), during.get("temp_max_c"), after.get("temp_c"), after.get("vc_temp_c")) if t is not None
    ]
    if temps and max(temps) > hot_temp_c:
        out.add("hot")
    if starved(cpu):
        out.add("cpu_starved")
    return sorted(out)


def foreign(snap, own_threads):
    """1-min load average beyond what this agent's own threads put there (main thread + runtime workers)."""
    load = snap.get("loadavg")
    return None if not load else round(load[0] - own_threads, 3)


def _median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def trend(samples, fraction=TREND_FRACTION):
    """Burst vs sustained: median of the last `fraction` of the samples over the median of the first; None
    under 10 samples. Above 1: the model slowed down as the board ran (heat, clock); below 1: it warmed up."""
    n = len(samples)
    if n < 10:
        return None
    k = max(1, int(n * fraction))
    first, last = _median(samples[:k]), _median(samples[-k:])
    if first <= 0:
        return None
    return {"ratio": round(last / first, 6), "first_p50_s": first, "last_p50_s": last, "fraction": fraction, "n": k}


def trajectory(edges, samples, window_s):
    """Median latency per window of `window_s` seconds; `edges` are the indices where windows start (an
    invoke that spans several windows leaves the ones it skipped out; windows are numbered in order)."""
    bounds = [e for e in edges if e < len(samples)] + [len(samples)]
    out = []
    for i in range(len(bounds) - 1):
        chunk = samples[bounds[i] : bounds[i + 1]]
        if chunk:
            out.append({"window": i, "p50_s": _median(chunk), "count": len(chunk)})
    return out
