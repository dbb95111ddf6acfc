"""Per-op statistics from LiteRT's profiler events (the profile command's pure part, no runtime needed).

Events arrive as (tag, type, elapsed_us, metadata1, metadata2), in the profiler's buffer order. Per run:
- a DEFAULT event tagged "Invoke": the interpreter's whole Invoke (it precedes its ops in the buffer);
- one DELEGATE_PROFILED_OPERATOR event per XNNPACK operator, added after each delegate kernel ran: tag = the
  XNNPACK operator and kernel ("Convolution (NHWC, F32) IGEMM"), metadata1 = its position inside that
  delegated section, restarting at 0 in every section; elapsed in whole µs (truncated); no TFLite op index,
  so its model op can only be guessed (guess_mapping);
- one OPERATOR event per op the interpreter runs itself: tag = the TFLite op, metadata1 = its op index in
  the model (exact), metadata2 = the subgraph;
- other DEFAULT events (LiteRT::Run[buffer registration], LiteRT::Run[Buffer sync]) kept by tag, and a
  TELEMETRY event also tagged "Invoke" whose "elapsed" is a status code (ignored).

Runs on boards: stdlib only, Python 3.7+.
"""

from __future__ import annotations

import math

DEFAULT, OPERATOR, DELEGATE_OPERATOR, DELEGATE_PROFILED_OPERATOR = 1, 2, 4, 8
SAMPLES_CAP = 500  # raw samples kept per row (every k-th past that); the statistics use every sample


class EventError(ValueError):
    """The events do not have the shape a run of one subgraph gives (control flow, a full buffer)."""


def percentile(sorted_values, q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method, as measure.py)."""
    n = len(sorted_values)
    pos = (n - 1) * q
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def summary(samples) -> dict:
    """{"p50", "p90", "count"} of a list of numbers (p50/p90 None when it is empty)."""
    s = sorted(samples)
    if not s:
        return {"p50": None, "p90": None, "count": 0}
    return {"p50": round(percentile(s, 0.5), 2), "p90": round(percentile(s, 0.9), 2), "count": len(s)}


def thinned(samples, cap: int = SAMPLES_CAP):
    """(every k-th sample in run order, k) with at most `cap` samples."""
    stride = max(1, -(-len(samples) // cap))
    return list(samples[::stride]), stride


def split_runs(events) -> tuple:
    """([(invoke_us, [(row key, elapsed_us), ...]) per run], {other DEFAULT tag: [elapsed_us, ...]}).

    Row keys: ("xnnpack", section, position, tag) or ("tflite", subgraph, op index, tag).
    """
    runs: list = []
    other: dict = {}
    section, previous = -1, None
    for tag, kind, elapsed, meta1, meta2 in events:
        if kind == DEFAULT:
            if tag == "Invoke":
                runs.append((elapsed, []))
                section, previous = -1, None
            else:
                other.setdefault(tag, []).append(elapsed)
            continue
        if kind not in (OPERATOR, DELEGATE_OPERATOR, DELEGATE_PROFILED_OPERATOR):
            continue
        if not runs:
            raise EventError("an op event (" + tag + ") before the first Invoke")
        if kind == OPERATOR:
            runs[-1][1].append((("tflite", meta2, meta1, tag), elapsed))
            continue
        if meta1 == 0 or (previous is not None and meta1 <= previous):
            section += 1  # positions restart at 0 in every delegated section
        previous = meta1
        runs[-1][1].append((("xnnpack", section, meta1, tag), elapsed))
    return runs, other


class Samples:
    """Every run's Invoke and op times, and the other DEFAULT events, gathered chunk by chunk."""

    def __init__(self):
        self.invoke_us: list = []
        self.rows: dict = {}  # row key -> [elapsed_us per run], in first-seen (execution) order
        self.other: dict = {}
        self.op_events_per_run: set = set()

    def add_chunk(self, events, runs: int, dropped: int = 0) -> None:
        """Add the events of `runs` back-to-back runs, the first `dropped` of them warm-up (not counted)."""
        per_run, other = split_runs(events)
        if len(per_run) != runs:
            raise EventError(
                str(runs) + " runs gave " + str(len(per_run)) + " Invoke events (" + str(len(events)) + " events): "
                "a model whose subgraphs invoke others (control flow), or the profiler's buffer was full"
            )
        for invoke_us, ops in per_run[dropped:]:
            self.invoke_us.append(invoke_us)
            self.op_events_per_run.add(len(ops))
            for key, elapsed in ops:
                self.rows.setdefault(key, []).append(elapsed)
        for tag, values in other.items():
            # the other events come one per run too: drop the warm-up runs' share
            self.other.setdefault(tag, []).extend(values[dropped * len(values) // max(runs, 1) :])


def row_doc(key, samples, cap: int = SAMPLES_CAP) -> dict:
    source, section, node, tag = key
    kept, stride = thinned(samples, cap)
    stats = summary(samples)
    return {
        "source": source,
        "section": section if source == "xnnpack" else None,  # the delegated section (XNNPACK runtime) it ran in
        "subgraph": section if source == "tflite" else None,
        "node": node,
        "op": tag.split(" (")[0] if source == "xnnpack" else tag,
        "kernel": tag,
        "p50_us": stats["p50"],
        "p90_us": stats["p90"],
        "count": stats["count"],
        "samples_us": kept,
        "samples_stride": stride,
    }


def op_rows(samples: Samples, model_ops: list, cap: int = SAMPLES_CAP) -> list:
    """One row per op that ran (execution order) with its statistics and the model op it maps to."""
    rows = [row_doc(key, values, cap) for key, values in samples.rows.items()]
    for row in rows:
        row["maps_to"], row["mapping"] = None, "none"
        if row["source"] == "tflite" and row["subgraph"] == 0 and 0 <= row["node"] < len(model_ops):
            row["maps_to"], row["mapping"] = {"index": row["node"], "op": model_ops[row["node"]]}, "exact"
    guess_mapping(rows, model_ops)
    return rows


def coverage(rows, invoke_p50):
    """Sum of the rows' p50 over the Invoke p50 (None without an Invoke time)."""
    if not invoke_p50:
        return None
    return round(sum(r["p50_us"] or 0.0 for r in rows) / invoke_p50, 4)


# Which TFLite ops may lower to which XNNPACK operators (by the XNNPACK operator name's start). A guide for the
# order-based alignment only: XNNPACK rewrites (1x1 convolutions become GEMMs, reshapes appear before a
# fully connected), so a guess can be wrong, and is marked as one.
_LOWERS_TO = {
    "CONV_2D": ("Convolution", "Fully Connected"),
    "DEPTHWISE_CONV_2D": ("Convolution",),
    "TRANSPOSE_CONV": ("Deconvolution",),
    "FULLY_CONNECTED": ("Fully Connected", "Batch Matrix Multiply"),
    "BATCH_MATMUL": ("Batch Matrix Multiply", "Fully Connected"),
    "ADD": ("Add",),
    "SUB": ("Subtract",),
    "MUL": ("Multiply",),
    "DIV": ("Divide",),
    "MEAN": ("Mean", "Global Average Pooling", "Sum"),
    "SUM": ("Sum",),
    "AVERAGE_POOL_2D": ("Average Pooling", "Global Average Pooling"),
    "MAX_POOL_2D": ("Max Pooling", "ArgMax Pooling"),
    "SOFTMAX": ("Softmax",),
    "LOGISTIC": ("Sigmoid",),
    "TANH": ("Tanh",),
    "HARD_SWISH": ("HardSwish",),
    "RELU": ("Clamp",),
    "RELU6": ("Clamp",),
    "RELU_N1_TO_1": ("Clamp",),
    "LEAKY_RELU": ("Leaky ReLU",),
    "PRELU": ("PReLU",),
    "ELU": ("ELU",),
    "GELU": ("GELU",),
    "RESHAPE": ("Static Reshape", "Copy"),
    "SQUEEZE": ("Static Reshape", "Copy"),
    "EXPAND_DIMS": ("Static Reshape", "Copy"),
    "CONCATENATION": ("Concatenate", "Copy"),
    "PAD": ("Constant Pad",),
    "QUANTIZE": ("Convert",),
    "DEQUANTIZE": ("Convert",),
    "TRANSPOSE": ("Transpose",),
    "SLICE": ("Slice",),
    "STRIDED_SLICE": ("Slice",),
    "RESIZE_BILINEAR": ("Resize Bilinear",),
    "SPLIT": ("Copy", "Split"),
    "DEPTH_TO_SPACE": ("Depth To Space",),
    "SPACE_TO_DEPTH": ("Space To Depth",),
}
MAX_ALIGN_CELLS = 4000000  # beyond (XNNPACK rows x model ops), no guess: the alignment is quadratic


def _lowers(row, op) -> bool:
    return any(row["op"].startswith(k) for k in _LOWERS_TO.get(op, ()))


def _align(xnn: list, cand: list) -> list:
    """An order-preserving alignment of XNNPACK rows to candidate (index, op) pairs that matches the most
    pairs whose op lowers to the row's operator (an edit distance: skipping either side costs 1)."""
    a, b = len(xnn), len(cand)
    inf = a + b + 1
    cost = [[inf] * (b + 1) for _ in range(a + 1)]
    move = [[""] * (b + 1) for _ in range(a + 1)]
    cost[0][0] = 0
    for i in range(a + 1):
        for j in range(b + 1):
            c = cost[i][j]
            if c >= inf:
                continue
            if i < a and j < b and c < cost[i + 1][j + 1] and _lowers(xnn[i], cand[j][1]):
                cost[i + 1][j + 1], move[i + 1][j + 1] = c, "match"
            if i < a and c + 1 < cost[i + 1][j]:
                cost[i + 1][j], move[i + 1][j] = c + 1, "skip_row"
            if j < b and c + 1 < cost[i][j + 1]:
                cost[i][j + 1], move[i][j + 1] = c + 1, "skip_op"
    pairs, i, j = [], a, b
    while i or j:
        step = move[i][j]
        if step == "match":
            i, j = i - 1, j - 1
            pairs.append((i, cand[j]))
        elif step == "skip_row":
            i -= 1
        else:
            j -= 1
    return pairs


def guess_mapping(rows: list, model_ops: list) -> None:
    """Give XNNPACK rows the model op an order-based alignment pairs them with, marked mapping "guess".

    Candidates are the model's ops that no exact (TFLite-run) row claims, in index order: XNNPACK runs its
    sections in that order, and nothing in its events names the op.
    """
    xnn = [r for r in rows if r["source"] == "xnnpack"]
    claimed = set(r["maps_to"]["index"] for r in rows if r["mapping"] == "exact")
    cand = [(i, op) for i, op in enumerate(model_ops) if i not in claimed]
    if not xnn or not cand or len(xnn) * len(cand) > MAX_ALIGN_CELLS:
        return
    for i, (index, op) in _align(xnn, cand):
        xnn[i]["maps_to"], xnn[i]["mapping"] = {"index": index, "op": op}, "guess"
