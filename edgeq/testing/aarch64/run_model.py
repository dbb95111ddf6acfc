"""Runs on the board (any of its pythons): load a .tflite with one runtime, invoke it on an input.

    python run_model.py RUNTIME MODEL INPUT.npy [REPEATS]
RUNTIME: tflite-runtime | litert. Prints one JSON line: the output (as a list), its dtype, the load,
allocate and first-invoke seconds, and the median of REPEATS further invokes. A model the runtime
cannot load prints {"error": "..."} and exits 3. stdlib + numpy + the runtime only.
"""

import json
import sys
import time

import numpy as np


def main() -> int:
    runtime, model, inp = sys.argv[1:4]
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    if runtime == "tflite-runtime":
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter

        version = tflite_runtime.__version__
    else:
        import importlib.metadata

        from ai_edge_litert.interpreter import Interpreter

        version = importlib.metadata.version("ai-edge-litert")
    x = np.load(inp)
    t0 = time.perf_counter()
    try:
        it = Interpreter(model_path=model, num_threads=1)
        t1 = time.perf_counter()
        it.allocate_tensors()
    except Exception as e:  # noqa: BLE001 - the runtime's own words are what the test checks
        print(json.dumps({"error": f"{type(e).__name__}: {e}", "runtime": runtime, "version": version}))
        return 3
    t2 = time.perf_counter()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    t3 = time.perf_counter()
    samples = []
    for _ in range(repeats):
        s = time.perf_counter()
        it.invoke()
        samples.append(time.perf_counter() - s)
    y = it.get_tensor(it.get_output_details()[0]["index"])
    samples.sort()
    print(
        json.dumps(
            {
                "runtime": runtime,
                "version": version,
                "numpy": np.__version__,
                "output": y.tolist(),
                "dtype": str(y.dtype),
                "load_s": t1 - t0,
                "allocate_s": t2 - t1,
                "first_invoke_s": t3 - t2,
                "invoke_median_s": samples[len(samples) // 2] if samples else None,
                "repeats": repeats,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
