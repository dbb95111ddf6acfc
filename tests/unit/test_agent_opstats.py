"""The profile command's pure parts: LiteRT profiler events into per-op rows (edgeq.agent.opstats), and the
checks litert_capi makes before it trusts libLiteRt.so. The event sequences below are the shape LiteRT 2.3.0
records (tests/func/test_agent_profile.py runs the real profiler); the libraries loaded here are real ones."""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path

import numpy as np
import pytest

from edgeq.agent import opstats
from edgeq.agent.runtimes import litert_capi

D, OP, XNN, TELEMETRY = opstats.DEFAULT, opstats.OPERATOR, opstats.DELEGATE_PROFILED_OPERATOR, 32


def run_events(invoke, convs, softmax, conv2):
    """One run of conv -> softmax (interpreter, op 1) -> conv: two XNNPACK sections around a builtin op."""
    return [
        ("LiteRT::Run[buffer registration]", D, 9, 0, 0),
        ("Invoke", D, invoke, 0, 0),
        ("Convolution (NHWC, QC8) IGEMM", XNN, convs[0], 0, 0),
        ("Static Reshape (NC)", XNN, convs[1], 1, 0),
        ("SOFTMAX", OP, softmax, 1, 0),
        ("Convolution (NHWC, QC8) IGEMM", XNN, conv2, 0, 0),
        ("Invoke", TELEMETRY, 1 << 32, (1 << 64) - 1, 0),  # its "elapsed" is a status code
        ("LiteRT::Run[Buffer sync]", D, 7, 0, 0),
    ]


def test_runs_split_at_invoke_and_sections_restart():
    runs, other = opstats.split_runs(run_events(100, (40, 0), 20, 30) + run_events(110, (42, 1), 21, 31))
    assert [invoke for invoke, _ in runs] == [100, 110]
    assert [key for key, _ in runs[0][1]] == [
        ("xnnpack", 0, 0, "Convolution (NHWC, QC8) IGEMM"),
        ("xnnpack", 0, 1, "Static Reshape (NC)"),
        ("tflite", 0, 1, "SOFTMAX"),
        ("xnnpack", 1, 0, "Convolution (NHWC, QC8) IGEMM"),
    ]
    assert [us for _, us in runs[1][1]] == [42, 1, 21, 31]
    assert other == {"LiteRT::Run[buffer registration]": [9, 9], "LiteRT::Run[Buffer sync]": [7, 7]}


def test_a_section_of_one_op_after_another():
    events = [("Invoke", D, 50, 0, 0), ("Add (ND)", XNN, 5, 0, 0), ("Add (ND)", XNN, 6, 0, 0), ("Add (ND)", XNN, 7, 1, 0)]
    ((_, ops),), _ = opstats.split_runs(events)
    assert [(key[1], key[2]) for key, _ in ops] == [(0, 0), (1, 0), (1, 1)]


def test_chunks_drop_their_warmup_runs_and_check_the_run_count():
    samples = opstats.Samples()
    chunk = run_events(999, (99, 9), 99, 99) + run_events(100, (40, 0), 20, 30) + run_events(110, (42, 1), 21, 31)
    samples.add_chunk(chunk, runs=3, dropped=1)
    samples.add_chunk(run_events(120, (44, 0), 22, 32), runs=1)
    assert samples.invoke_us == [100, 110, 120] and samples.op_events_per_run == {4}
    assert samples.other["LiteRT::Run[buffer registration]"] == [9, 9, 9]
    assert list(samples.rows.values())[0] == [40, 42, 44]
    with pytest.raises(opstats.EventError, match="2 runs gave 1 Invoke events"):
        samples.add_chunk(run_events(100, (40, 0), 20, 30), runs=2)
    with pytest.raises(opstats.EventError, match="before the first Invoke"):
        opstats.split_runs([("SOFTMAX", OP, 3, 1, 0)])


def test_rows_statistics_mapping_and_coverage():
    samples = opstats.Samples()
    samples.add_chunk(run_events(100, (40, 0), 20, 30) + run_events(110, (42, 1), 21, 31) + run_events(90, (38, 0), 19, 29), 3)
    rows = opstats.op_rows(samples, ["CONV_2D", "SOFTMAX", "CONV_2D"])
    conv, reshape, softmax, conv2 = rows
    assert (conv["source"], conv["section"], conv["node"], conv["op"]) == ("xnnpack", 0, 0, "Convolution")
    assert (conv["p50_us"], conv["p90_us"], conv["count"], conv["samples_us"]) == (40.0, 41.6, 3, [40, 42, 38])
    assert conv["maps_to"] == {"index": 0, "op": "CONV_2D"} and conv["mapping"] == "guess"
    assert reshape["maps_to"] is None and reshape["mapping"] == "none"  # XNNPACK inserted it: no model op
    assert softmax["maps_to"] == {"index": 1, "op": "SOFTMAX"} and softmax["mapping"] == "exact"
    assert (softmax["section"], softmax["subgraph"], softmax["kernel"]) == (None, 0, "SOFTMAX")
    assert conv2["maps_to"] == {"index": 2, "op": "CONV_2D"} and conv2["section"] == 1
    assert opstats.coverage(rows, 100.0) == pytest.approx((40 + 0 + 20 + 30) / 100)
    assert opstats.coverage(rows, None) is None


def test_the_guess_follows_xnnpack_rewrites():
    """MobileNet-like: 1x1 convolutions run as GEMMs, a reshape appears before the dense layer, relu fused."""
    kernels = [
        "Convolution (NHWC, F32) IGEMM",
        "Convolution (NHWC, F32) DWConv",
        "Fully Connected (NC, F32) GEMM",
        "Add (ND)",
        "Mean (ND) Reduce2",
        "Static Reshape (NC)",
        "Fully Connected (NC, F32) GEMM",
        "Softmax (NC, F32)",
    ]
    rows = [{"source": "xnnpack", "op": k.split(" (")[0], "maps_to": None, "mapping": "none"} for k in kernels]
    model = ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]
    opstats.guess_mapping(rows, model)
    assert [r["maps_to"]["index"] if r["maps_to"] else None for r in rows] == [0, 1, 2, 3, 4, None, 5, 6]


def test_percentiles_match_numpy_and_samples_are_capped():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50, 501):
        xs = rng.integers(0, 1000, n).tolist()
        s = opstats.summary(xs)
        assert s["count"] == n
        assert s["p50"] == pytest.approx(round(float(np.percentile(xs, 50)), 2))
        assert s["p90"] == pytest.approx(round(float(np.percentile(xs, 90)), 2))
    assert opstats.summary([]) == {"p50": None, "p90": None, "count": 0}
    kept, stride = opstats.thinned(list(range(1234)))
    assert stride == 3 and len(kept) <= opstats.SAMPLES_CAP and kept[:3] == [0, 3, 6]
    assert opstats.thinned([1, 2]) == ([1, 2], 1)


# ------------------------------------------------------------------------------------------------ libLiteRt.so checks


def test_the_event_struct_matches_the_header():
    assert litert_capi.header_event_size(8) == ctypes.sizeof(litert_capi.ProfiledEventData) == 104
    assert litert_capi.header_event_size(4) == 72  # ILP32 with 8-aligned u64 (armv7): refused, but computed right
    assert ctypes.sizeof(litert_capi.LiteRtLayout) == 68 and ctypes.sizeof(litert_capi.LiteRtRankedTensorType) == 72


def test_glibc_needed_by_the_installed_library_is_met_here():
    import ai_edge_litert

    lib = str(Path(ai_edge_litert.__file__).parent / "libLiteRt.so")
    needed, host = litert_capi.glibc_needed(lib), litert_capi.glibc_version()
    assert needed and host and litert_capi.glibc_too_old(host, needed, platform.machine(), "2.3.0") is None
    old = litert_capi.glibc_too_old("2.31", "2.34", "aarch64", "2.3.0")
    assert old.reason == "glibc 2.31 < 2.34 (aarch64): libLiteRt.so of ai-edge-litert 2.3.0 needs glibc 2.34"
    assert "2.34 or newer" in old.fix
    assert litert_capi.glibc_too_old("2.36", "2.34", "aarch64", "2.3.0") is None
    assert litert_capi.glibc_too_old("2.9", "2.17", "x86_64", "x").reason.startswith("glibc 2.9 < 2.17")  # not by text


def test_a_library_without_the_symbols_or_no_library_is_unsupported(tmp_path):
    import _ctypes  # a real shared library that exports none of LiteRT's C API

    with pytest.raises(litert_capi.Unsupported) as ei:
        litert_capi.load(_ctypes.__file__, "9.9")
    assert ei.value.reason.startswith("ai-edge-litert version 9.9: symbols missing: LiteRtCreateEnvironment, ")
    assert "ai-edge-litert==2.3.0" in ei.value.fix
    with pytest.raises(litert_capi.Unsupported, match="does not exist"):
        litert_capi.load(str(tmp_path / "libLiteRt.so"), "9.9")
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not an ELF file")
    with pytest.raises(litert_capi.Unsupported, match="cannot load .*junk.so"):
        litert_capi.load(str(junk), "9.9")


def test_versions_before_2_2_are_refused_before_their_library_loads():
    from edgeq.agent.runtimes import litert_compiled

    for ok in ("2.2.0", "2.3.0", "2.4.0.dev20260101", "3.0"):
        assert litert_compiled.version_problem(ok) is None, ok
    old = litert_compiled.version_problem("2.1.0")
    assert old.reason.startswith("ai-edge-litert 2.1.0 predates 2.2.0: its C API differs") and old.fix
    assert litert_compiled.version_problem(None).reason.startswith("ai-edge-litert None predates")
