"""A real Prometheus and a real Pushgateway on loopback ports, for the metrics and dashboard tests.

Needs the Debian packages tests/run-all.sh installs (Missing names them otherwise); starts both with a generated config
(Prometheus scrapes the Pushgateway with honor_labels and the `edgeq metrics serve` exporter every second,
and loads dashboards/rules/edgeq.rules.yml), and stops them at teardown. No fake HTTP server anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from edgeq.testing import Missing

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "dashboards" / "rules" / "edgeq.rules.yml"
BINARIES = {"prometheus": "prometheus", "prometheus-pushgateway": "prometheus-pushgateway", "promtool": "prometheus"}


def ensure_installed() -> None:
    missing = sorted({pkg for binary, pkg in BINARIES.items() if shutil.which(binary) is None})
    if missing:
        raise Missing(f"needs the Debian packages {missing} (tests/run-all.sh installs them)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback test servers
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            argv = proc.args if isinstance(proc.args, list) else [proc.args]
            raise RuntimeError(f"{argv[0]!s} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if http_get(url, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def start_pushgateway(root: Path, port: int) -> subprocess.Popen:
    """A real Pushgateway on loopback. Debian's build persists to /var/lib/prometheus by default: keep it in memory."""
    log = root / f"pushgateway-{port}.log"
    proc = subprocess.Popen(
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    _wait_http(f"http://127.0.0.1:{port}/-/ready", proc, log)
    return proc


def stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with_suppressed(lambda: os.kill(proc.pid, signal.SIGCONT))  # a test may have paused it
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_prometheus(root: Path, config: str, port: int, tsdb: Path | None = None, retention: str = "1d") -> subprocess.Popen:
    """A real Prometheus on loopback with this config text (its own TSDB under root, or `tsdb`)."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / f"prometheus-{port}.yml"
    cfg.write_text(config)
    log = root / f"prometheus-{port}.log"
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tsdb or root / f'tsdb-{port}'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.retention.time={retention}",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    _wait_http(f"http://127.0.0.1:{port}/-/ready", proc, log)
    return proc


class PromFarm:
    def __init__(self, root: Path):
        self.root = root
        self.prom_port = free_port()
        self.pg_port = free_port()
        self.exporter_port = free_port()
        self.prom: subprocess.Popen | None = None
        self.pg: subprocess.Popen | None = None

    @property
    def prom_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    @property
    def pg_url(self) -> str:
        return f"http://127.0.0.1:{self.pg_port}"

    def config(self) -> str:
        return (
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}\n"
            "scrape_configs:\n"
            "  - job_name: pushgateway\n    honor_labels: true\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{self.pg_port}']\n"
            "  - job_name: edgeq-exporter\n    scrape_timeout: 1s\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{self.exporter_port}']\n"
        )

    def start_pushgateway(self) -> None:
        self.pg = start_pushgateway(self.root, self.pg_port)

    def stop_pushgateway(self) -> None:
        stop(self.pg)
        self.pg = None

    def start(self) -> PromFarm:
        ensure_installed()
        self.start_pushgateway()
        self.prom = start_prometheus(self.root, self.config(), self.prom_port)
        return self

    def close(self) -> None:
        self.stop_pushgateway()
        stop(self.prom, 15.0)

    # ---- Prometheus HTTP API

    def api(self, path: str, **params) -> dict:
        q = urllib.parse.urlencode(params, doseq=True)
        code, body = http_get(f"{self.prom_url}/api/v1/{path}" + (f"?{q}" if q else ""))
        doc = json.loads(body)
        assert code == 200 and doc["status"] == "success", (path, params, code, doc)
        return doc["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def wait_for(self, expr: str, timeout: float = 30.0, predicate=lambda r: bool(r)) -> list:
        deadline = time.monotonic() + timeout
        res: list = []
        while time.monotonic() < deadline:
            res = self.query(expr)
            if predicate(res):
                return res
            time.sleep(0.25)
        raise AssertionError(f"{expr!r} did not hold within {timeout}s; last result {res}")

    def targets(self) -> list[dict]:
        return self.api("targets")["activeTargets"]

    def pushgateway_text(self) -> str:
        code, body = http_get(f"{self.pg_url}/metrics")
        assert code == 200
        return body.decode()


def with_suppressed(fn) -> None:
    try:
        fn()
    except OSError:
        pass


# ---- synthetic runs (pure data) shared by the results tests: realistic manifests with inline raw samples


def synthetic_manifest(
    run_id: str,
    *,
    pipeline: str = "synth",
    started: str = "2026-01-01T02:30:00+00:00",
    devices=("pi5", "pi4"),
    variants=("fp32", "int8"),
    threads=(1,),
    p50_s=None,
    n: int = 400,
    seed: int = 0,
    accuracy=None,
    peak_rss=None,
    power_w=None,
    status: str = "ok",
    failed_devices=(),
    drop_budget: float | None = 0.02,
) -> dict:
    """A run manifest like pipeline.run_pipeline writes, with raw samples inline (benchmark row "raw" as a dict).

    p50_s: {(device, variant): seconds} (default: fp32 1 ms, int8 0.5 ms, pi4 2x slower); samples are lognormal
    around it. accuracy: {variant: value}; peak_rss: {(device, variant): bytes}; power_w: {device: watts}."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = {"fp32": 1e-3, "int8": 0.5e-3, "dynamic": 0.8e-3, "float16": 0.9e-3}
    acc = {"fp32": 0.95, "int8": 0.945, "dynamic": 0.948, "float16": 0.95, **(accuracy or {})}
    size = {"fp32": 400_000, "int8": 110_000, "dynamic": 120_000, "float16": 200_000}
    vdoc = {}
    for v in variants:
        vdoc[v] = {
            "type": v,
            "artifact": f"/tmp/{pipeline}-{v}.tflite",
            "sha256": "0" * 64,
            "size_bytes": size.get(v, 1000),
            "accuracy": acc[v],
            "test_samples": 1000,
            "accuracy_drop": round(acc["fp32"] - acc[v], 6),
            "size_ratio": round(size.get(v, 1000) / size["fp32"], 4),
            "gates": {"passed": True, "failed": []},
        }
    rows = []
    for d in devices:
        for v in variants:
            for t in threads:
                if d in failed_devices:
                    rows.append(
                        {
                            "device": d,
                            "variant": v,
                            "threads": t,
                            "ok": False,
                            "error": f"{d}: unreachable",
                            "kind": "unreachable",
                        }
                    )
                    continue
                p50 = (p50_s or {}).get((d, v), base.get(v, 1e-3) * (2.0 if d == "pi4" else 1.0))
                s = p50 * np.exp(rng.normal(0.0, 0.05, n))
                q = np.percentile(s, [50, 90, 99])
                w = (power_w or {}).get(d, 5.0 if d == "pi5" else 3.0)
                rows.append(
                    {
                        "device": d,
                        "variant": v,
                        "threads": t,
                        "ok": True,
                        "latency_ms": {
                            "p50": q[0] * 1e3,
                            "p90": q[1] * 1e3,
                            "p99": q[2] * 1e3,
                            "mean": float(s.mean()) * 1e3,
                            "std": float(s.std()) * 1e3,
                            "min": float(s.min()) * 1e3,
                            "max": float(s.max()) * 1e3,
                        },
                        "count": n,
                        "init_ms": 12.5,
                        "first_invoke_ms": 3.2,
                        "peak_rss_bytes": (peak_rss or {}).get((d, v), 60_000_000),
                        "runtime": {"name": "tflite-runtime", "version": "2.14.0"},
                        "delegate": {"requested": "xnnpack", "used": "xnnpack"},
                        "power": {
                            "probe": "rpi5-pmic",
                            "mean_w": w,
                            "idle_w": w * 0.7,
                            "joules_per_inference": w * float(s.mean()),
                        },
                        "board": {  # every key the agent reports (edgeq/agent/facts.py), in its order
                            "hostname": d,
                            "arch": "aarch64",
                            "cpu_model": "Cortex-A76",
                            "board_model": "Raspberry Pi 5 Model B Rev 1.0" if d == "pi5" else "Raspberry Pi 4 Model B",
                            "cores": 4,
                            "cores_available": 4,
                            "kernel": "6.6.51",
                            "os": "Debian GNU/Linux 12 (bookworm)",
                            "python": "3.11.2",
                            "numpy": "1.26.4",
                            "runtime": {"name": "tflite-runtime", "version": "2.14.0"},
                            "workdir": "/var/lib/edgeq",
                            "free_bytes": 20_000_000_000,
                            "temp_c": 51.2,
                            "thermal_zones": [{"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 51.2}],
                            "cpu_freq_khz": 2400000,
                            "cpu_governor": "ondemand",
                            "throttled": {"raw": "0x0", "flags": 0},
                        },
                        "raw": {"samples_s": [float(x) for x in s], "samples_stride": 1},
                    }
                )
    return {
        "run_id": run_id,
        "pipeline": pipeline,
        "pipeline_file": f"/srv/pipelines/{pipeline}.yaml",
        "pipeline_sha256": "a" * 64,
        "status": status,
        "started": started,
        "finished": started,
        "wall_seconds": 61.5,
        "params": {
            "validate": {"gates": {"max_accuracy_drop": drop_budget}},
            "quantize": {"variants": [{"type": v} for v in variants]},
        },
        "versions": {"edgeq": "0.1.0", "python": "3.11.7", "tensorflow": "2.21.0", "numpy": "2.4.6"},
        "runtime": {"name": "ai-edge-litert", "version": "2.3.0"},
        "inputs": {"data": {"sklearn-digits": "scikit-learn 1.9.1"}, "model": {"builtin": "mlp"}},
        "stages": {  # the keys pipeline.run_pipeline writes (a RunManifest reads them)
            "train": {"key": "0" * 24, "cached": False, "output": "/tmp/model.keras", "seconds": 40.0},
            "quantize": {
                v: {
                    "key": "1" * 24,
                    "cached": False,
                    "output": f"/tmp/{v}.tflite",
                    "variant": v,
                    "type": v,
                    "size_bytes": size.get(v, 1000),
                    "seconds": 2.0,
                }
                for v in variants
            },
            "validate": {
                v: {
                    "key": "2" * 24,
                    "cached": True,
                    "accuracy": acc[v],
                    "test_samples": 1000,
                    "size_bytes": size.get(v, 1000),
                    "seconds": 0.5,
                }
                for v in variants
            },
        },
        "variants": vdoc,
        "gates_failed": [],
        "fleet_failed": [f"benchmark on {d}" for d in failed_devices],
        "benchmarks": rows,
    }
