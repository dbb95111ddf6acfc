"""`edgeq bench` control flags (cool-down, affinity, governor, sustained mode, flag thresholds) -> BenchControlsSpec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from edgeq.errors import ConfigError

if TYPE_CHECKING:  # building the pydantic specs costs ~90 ms: only `edgeq bench` with a flag pays it
    from edgeq.config.benchcontrols import BenchControlsSpec

CooldownTempOpt = Annotated[
    float | None, typer.Option("--cooldown-temp", min=1, help="Before each session wait until the board is at most this hot (C).")
]
CooldownWaitOpt = Annotated[
    float | None, typer.Option("--cooldown-max-wait", min=1, help="Give up cooling after this many seconds (default 120).")
]
CooldownSecondsOpt = Annotated[
    float | None, typer.Option("--cooldown-seconds", min=0, help="Before each session wait this long.")
]
AffinityOpt = Annotated[str | None, typer.Option("--cpu-affinity", help="Pin the agent to these cpus, e.g. 2,3.")]
GovernorOpt = Annotated[
    str | None, typer.Option("--governor", help="Set this cpufreq governor for the bench (performance; needs root on the board).")
]
SustainedOpt = Annotated[
    float | None, typer.Option("--sustained", min=0.001, help="Sustained mode: run this many seconds at full load per session.")
]
WindowOpt = Annotated[
    float | None, typer.Option("--window", min=0.001, help="Sustained mode: seconds per trajectory window (1).")
]
HotOpt = Annotated[float | None, typer.Option("--hot-temp", min=1, help="Flag a session `hot` above this temperature (C).")]


def controls(
    cooldown_temp: float | None,
    cooldown_max_wait: float | None,
    cooldown_seconds: float | None,
    cpu_affinity: str | None,
    governor: str | None,
    sustained: float | None,
    window: float | None,
    hot_temp: float | None,
) -> BenchControlsSpec | None:
    """The flags given, as controls that win over devices.yaml; None when no flag was given."""
    doc: dict[str, object] = {}
    if cooldown_temp is not None or cooldown_seconds is not None or cooldown_max_wait is not None:
        cool = {"temp_c": cooldown_temp, "seconds": cooldown_seconds, "max_wait_s": cooldown_max_wait}
        doc["cooldown"] = {k: v for k, v in cool.items() if v is not None}
    if cpu_affinity is not None:
        try:
            doc["cpu_affinity"] = [int(c) for c in cpu_affinity.replace(" ", "").split(",") if c]
        except ValueError:
            raise ConfigError(
                f"--cpu-affinity {cpu_affinity!r}: expected cpu numbers such as 2,3", "pass e.g. --cpu-affinity 0,1"
            ) from None
    if governor is not None:
        doc["governor"] = governor
    if sustained is not None or window is not None:
        if sustained is None:
            raise ConfigError("--window needs --sustained SECONDS", "pass --sustained 10 --window 1")
        doc["sustained"] = {"seconds": sustained, **({"window_s": window} if window is not None else {})}
    if hot_temp is not None:
        doc["hot_temp_c"] = hot_temp
    if not doc:
        return None
    from pydantic import ValidationError

    from edgeq.config.benchcontrols import BenchControlsSpec

    try:
        return BenchControlsSpec.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ConfigError(f"bench controls: {where}: {first.get('msg')}", "see `edgeq bench --help`") from None
