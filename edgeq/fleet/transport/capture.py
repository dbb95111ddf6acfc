"""A bounded capture of a board command's output: the last N bytes of a stream, and how many came before them.

A board command's stdout and stderr are held in memory until it ends. A chatty login shell, a runaway
wrapper or a hostile board can print without end; keeping the tail bounds the memory per board (times
--parallel) and keeps what edgeq reads: the agent's result is its last stdout line, a file operation's
marker is its last line, a crash's traceback is the end of stderr.
"""

from __future__ import annotations

from collections import deque

from edgeq.agent import MAX_OUTPUT_CHARS

# stdout carries the agent's one JSON document; the host's parser refuses more than MAX_OUTPUT_CHARS (64 MiB)
# anyway. The largest document is a numeric-check trace, up to edgeq.agent.numeric.MAX_TRACE_BYTES (32 MiB) of
# tensors as base64 (4/3: ~43 MiB); a bench's 20,000 raw samples are ~0.3 MB, an op profile ~35 KB.
STDOUT_CAP = MAX_OUTPUT_CHARS
# stderr is only ever shown as its tail (an error's last lines, a crash's traceback)
STDERR_CAP = 1 << 20


class TailBuffer:
    """The last `cap` bytes of a stream (chunks kept whole until they are entirely older than the tail)."""

    def __init__(self, cap: int, stream: str):
        self.cap = cap
        self.stream = stream
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._dropped = 0

    def add(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        while self._chunks and self._size - len(self._chunks[0]) >= self.cap:
            old = self._chunks.popleft()
            self._size -= len(old)
            self._dropped += len(old)

    def value(self) -> bytes:
        """The tail, at most `cap` bytes; when bytes were dropped, a marker line in front (within the cap)."""
        if self._size <= self.cap and not self._dropped:
            return b"".join(self._chunks)
        total = self._dropped + self._size
        note = f"[edgeq: the board's {self.stream} was cut to its last {{}} of {total} bytes]\n"
        keep = max(0, min(self._size, self.cap - len(note.format(self.cap).encode())))  # (a cap below the note: none)
        skip = self._size - keep
        parts = [note.format(keep).encode()]
        for chunk in self._chunks:  # one copy of the tail: a 64 MiB join, not three
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            parts.append(chunk[skip:] if skip else chunk)
            skip = 0
        return b"".join(parts)
