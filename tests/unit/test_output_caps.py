"""The tail kept of a board command's output (edgeq.fleet.transport.capture), and its cap against the agent's
largest document."""

from __future__ import annotations

import random

from edgeq.agent import MAX_OUTPUT_CHARS
from edgeq.agent.numeric import MAX_TRACE_BYTES
from edgeq.fleet.transport.capture import STDERR_CAP, STDOUT_CAP, TailBuffer


def test_the_stdout_cap_holds_the_largest_agent_document_and_no_more_than_the_parser_reads():
    largest_trace_json = MAX_TRACE_BYTES * 4 // 3 + (1 << 20)  # base64 of the tensors, names and shapes
    assert largest_trace_json < STDOUT_CAP <= MAX_OUTPUT_CHARS
    assert STDERR_CAP == 1 << 20


def test_tail_of_random_chunks_matches_the_stream():
    rng = random.Random(7)
    for cap in (1, 100, 4096):
        buf, stream = TailBuffer(cap, "stdout"), b""
        for _ in range(300):
            chunk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
            buf.add(chunk)
            stream += chunk
        got = buf.value()
        if len(stream) <= cap:
            assert got == stream
            continue
        note, _, tail = got.partition(b"]\n")
        assert len(got) <= max(cap, len(note) + 2), (cap, len(got))
        assert stream.endswith(tail) and note.startswith(b"[edgeq: the board's stdout was cut to its last ")
        assert note.endswith(f"{len(tail)} of {len(stream)} bytes".encode())


def test_under_the_cap_nothing_changes():
    buf = TailBuffer(10, "stderr")
    buf.add(b"0123456789")
    assert buf.value() == b"0123456789"
