"""The pure half of `devices setup`: which TFLite runtime fits a board, and which wheel platforms it takes.

No I/O here, so the decision table is unit-tested directly (tests/unit/test_setup_plan.py). What PyPI
holds (checked with `pip download --only-binary=:all:` for each board kind):
- tflite-runtime, the last release 2.14.0 (2023): cp38-cp311; its aarch64 wheels are manylinux_2_34
  (glibc 2.34+: Bookworm, Ubuntu 22.04+). It needs numpy 1.x ("_ARRAY_API not found" with numpy 2).
- tflite-runtime 2.11.0 is the newest with cp37 wheels (manylinux2014: glibc 2.17+); numpy 1.21.x is
  the newest for cp37. A Coral Dev Board (Mendel, Python 3.7) lands here.
- ai-edge-litert (the maintained runtime): cp39+, no cp37/cp38; brings its own numpy.
"""

from __future__ import annotations

from edgeq.errors import FleetError
from edgeq.records.setup import BoardProbe, RuntimeChoice

ARCH_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64", "armv7l": "armv7l"}
LEGACY_MANYLINUX = ((17, "manylinux2014"), (12, "manylinux2010"), (5, "manylinux1"))  # pip does not alias these
DEFAULT_GLIBC = (2, 17)  # a board whose libc we cannot read: assume the oldest manylinux2014 floor

TFLITE = "tflite_runtime.interpreter"
LITERT = "ai_edge_litert.interpreter"


class UnsupportedBoard(FleetError):
    """No runtime on PyPI fits this board (Python too old, an architecture without wheels)."""


def normalize_arch(arch: str) -> str:
    a = ARCH_ALIASES.get(arch.strip().lower())
    if a is None:
        raise UnsupportedBoard(
            f"architecture {arch!r} has no TFLite runtime wheels on PyPI",
            "boards must be x86_64, aarch64 (arm64) or armv7l",
        )
    return a


def wheel_platforms(arch: str, glibc: tuple[int, int] | None) -> list[str]:
    """Every manylinux tag a board with this glibc accepts, newest first (pip needs each one listed)."""
    a = normalize_arch(arch)
    major, minor = glibc or DEFAULT_GLIBC
    if major != 2:
        raise UnsupportedBoard(f"glibc {major}.{minor} is not a glibc 2.x: no manylinux wheel fits")
    tags = [f"manylinux_2_{m}_{a}" for m in range(minor, 16, -1)]
    for floor, legacy in LEGACY_MANYLINUX:
        if minor >= floor and (a == "x86_64" or floor == 17):  # manylinux1/2010 exist only for x86
            tags.append(f"{legacy}_{a}")
    return tags


def platform_key(arch: str, glibc: tuple[int, int] | None, py: tuple[int, int]) -> str:
    """The host cache folder for a board kind: manylinux_2_36_aarch64-cp311."""
    return f"{wheel_platforms(arch, glibc)[0]}-cp{py[0]}{py[1]}"


def choose_runtime(py: tuple[int, int], arch: str, glibc: tuple[int, int] | None) -> tuple[RuntimeChoice, ...]:
    """Candidate runtimes for a board, best first; the first whose wheels download is installed."""
    a = normalize_arch(arch)
    g = glibc or DEFAULT_GLIBC
    tag = f"cp{py[0]}{py[1]} {a} glibc {g[0]}.{g[1]}"
    if py < (3, 7):
        raise UnsupportedBoard(
            f"Python {py[0]}.{py[1]} is too old: the agent and every TFLite runtime wheel need Python 3.7+",
            "install python3.7 or newer on the board and set python: in devices.yaml to it",
        )
    litert = RuntimeChoice(
        runtime="ai-edge-litert", module=LITERT, requirements=("ai-edge-litert",), reason=f"the maintained runtime ({tag})"
    )
    if py == (3, 7):
        return (
            RuntimeChoice(
                runtime="tflite-runtime",
                module=TFLITE,
                requirements=("tflite-runtime==2.11.0", "numpy>=1.21,<1.22"),
                reason=f"2.11.0 is the newest tflite-runtime with cp37 wheels; numpy 1.21 the newest for cp37 ({tag})",
            ),
        )
    if py <= (3, 11):
        if a != "aarch64" or g >= (2, 34):
            pin, why = "tflite-runtime==2.14.0", "tflite-runtime 2.14.0 (the last release) has wheels for it"
        else:
            pin, why = "tflite-runtime>=2.11,<2.14", "tflite-runtime 2.14 needs glibc 2.34 on aarch64; an older one fits"
        tfl = RuntimeChoice(runtime="tflite-runtime", module=TFLITE, requirements=(pin, "numpy<2"), reason=f"{why} ({tag})")
        return (tfl, litert) if py >= (3, 9) else (tfl,)
    return (litert.replace(reason=f"tflite-runtime has no wheels for Python 3.12+; {litert.reason}"),)


def coral_warning(probe: BoardProbe, tags: list[str] | tuple[str, ...], delegate: str) -> str | None:
    """On a Coral board (an Edge TPU device, tag coral, or delegate edgetpu) the delegate library is needed."""
    coral = probe.apex or "coral" in tags or delegate == "edgetpu"
    if not coral or probe.edgetpu_lib:
        return None
    return (
        "libedgetpu.so.1 (the Edge TPU delegate) is not installed: install libedgetpu1-std from Coral's apt "
        "repository (https://coral.ai/software/#debian-packages); edgeq does not install system libraries"
    )
