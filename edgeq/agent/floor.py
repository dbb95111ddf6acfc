"""The harness floor: the invoke time of a near no-op model on this board, measured once per bench call.

A model whose p50 is a few microseconds is read against it: what remains above the floor is the model's
own work; what is at the floor is the Python call into the runtime. The model is shipped inline (no
TensorFlow on boards): f(x) = x * 2 + 1 on a float32 [1, 4], MUL and ADD at op version 1, the same bytes
as edgeq.fleet.setup.scripts.TINY_MODEL_B64 (which imports it from here).

Runs on boards: stdlib + numpy + one TFLite runtime, Python 3.7+.
"""

from __future__ import annotations

import base64
import time

from . import inputs

NOOP_MODEL_B64 = (
    "HAAAAFRGTDMUACAAHAAYABQAEAAMAAAACAAEABQAAAAcAAAAHAAAAHQAAABUAQAAZAEAAFQDAAADAAAAAAAAAAIAAAA0AAAABAAA"
    "ANz///8HAAAABAAAABMAAABDT05WRVJTSU9OX01FVEFEQVRBAAgADAAIAAQACAAAAAYAAAAEAAAAEwAAAG1pbl9ydW50aW1lX3Zl"
    "cnNpb24ACAAAANwAAADUAAAAwAAAAKQAAACcAAAAlAAAAHQAAAAEAAAAXv///wQAAABgAAAAEAAAAAAAAAAIAA4ACAAEAAgAAAAQ"
    "AAAAJAAAAAAABgAIAAQABgAAAAQAAAAAAAAADAAYABQAEAAMAAQADAAAADdlf7AXNt3tAwAAAAIAAAAEAAAABgAAADIuMjEuMAAA"
    "yv///wQAAAAQAAAAMS41LjAAAAAAAAAAAAAAALT9//+4/f//7v///wQAAAAEAAAAAAAAQAAABgAIAAQABgAAAAQAAAAEAAAAAACA"
    "P+T9///o/f//DwAAAE1MSVIgQ29udmVydGVkLgABAAAAFAAAAAAADgAYABQAEAAMAAgABAAOAAAAFAAAABwAAACgAAAApAAAAKgA"
    "AAAEAAAAbWFpbgAAAAACAAAAWAAAABQAAAAAAA4AGAAUABAADAALAAQADgAAABQAAAAAAAALEAAAABQAAAABAAAAcP7//wEAAAAE"
    "AAAAAgAAAAMAAAABAAAAAAAOABQAAAAQAAwACwAEAA4AAAAQAAAAAAAAFQwAAAAQAAAArP7//wEAAAADAAAAAgAAAAAAAAACAAAA"
    "AQAAAAQAAAABAAAAAAAAAAUAAADsAAAApAAAAHQAAABAAAAABAAAAD7///8AAAABEAAAABAAAAAFAAAAGAAAAAT///8IAAAASWRl"
    "bnRpdHkAAAAAAgAAAAEAAAAEAAAAdv///wAAAAEQAAAAEAAAAAQAAAAQAAAAPP///wMAAABNdWwAAgAAAAEAAAAEAAAApv///wAA"
    "AAEQAAAAEAAAAAMAAAAUAAAAbP///wUAAABNdWwveQAAAAAAAADS////AAAAARAAAAAQAAAAAgAAABQAAACY////BQAAAEFkZC95"
    "AAAAAAAAAAAAFgAYABQAAAAQAAwACAAAAAAAAAAHABYAAAAAAAABEAAAABAAAAABAAAAEAAAANz///8BAAAAeAAAAAIAAAABAAAA"
    "BAAAAAIAAAAcAAAACAAAAAQABAAEAAAADAAMAAsAAAAAAAQADAAAABIAAAAAAAAS"
)

FLOOR_WARMUP = 20
FLOOR_RUNS = 200  # ~1 ms of invokes on a desktop, ~10 ms under qemu: noise next to any real benchmark
FLOOR_MAX_SECONDS = 0.5


def harness_floor(rt, threads: int) -> dict:
    """{"p50_s", "min_s", "runs"} of the no-op model's invoke, or {"error"} when this runtime cannot load it."""
    try:
        model = rt.load_inline(base64.b64decode(NOOP_MODEL_B64), threads)
        detail = model.inputs()[0]
        model.set_input(detail["index"], inputs.zeros(detail))
        run = model.run
        for _ in range(FLOOR_WARMUP):
            run()
        perf = time.perf_counter
        samples: list[float] = []
        deadline = perf() + FLOOR_MAX_SECONDS
        while len(samples) < FLOOR_RUNS and perf() < deadline:
            t = perf()
            run()
            samples.append(perf() - t)
    except Exception as exc:  # a runtime without model_content or MUL/ADD: the bench itself still counts
        return {"error": (type(exc).__name__ + ": " + str(exc))[:300]}
    samples.sort()
    n = len(samples)
    mid = samples[n // 2] if n % 2 else (samples[n // 2 - 1] + samples[n // 2]) / 2.0
    return {"p50_s": mid, "min_s": samples[0], "runs": n}
