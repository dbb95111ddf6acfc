"""Bench controls: devices.yaml (per board, under `defaults:` or a device) and a pipeline's `benchmark:`.

A pipeline's or the CLI's setting wins over the device's key by key (`BenchControlsSpec.over`). The agent
gets them as one `--controls` JSON (edgeq.agent.benchctl).
"""

from __future__ import annotations

import json
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from edgeq.config.reader import Spec


class CooldownSpec(Spec):
    """Before each session: wait `seconds`, or until the hottest thermal zone is <= temp_c (at most max_wait_s)."""

    temp_c: float | None = Field(None, gt=0, le=150)
    max_wait_s: float = Field(120.0, gt=0, le=3600)
    seconds: float | None = Field(None, ge=0, le=3600)

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.temp_c is None) == (self.seconds is None):
            raise ValueError("cooldown takes either temp_c (with optional max_wait_s) or seconds, not both and not neither")
        return self


class SustainedSpec(Spec):
    """Run `seconds` at full load per session and report the latency per `window_s` window."""

    seconds: float = Field(gt=0, le=3600)
    window_s: float = Field(1.0, gt=0, le=600)


class BenchControlsSpec(Spec):
    cooldown: CooldownSpec | None = None
    cpu_affinity: list[int] | None = Field(None, min_length=1)
    governor: Literal["performance"] | None = None  # set for the bench, the old one restored after; needs root
    sustained: SustainedSpec | None = None
    hot_temp_c: float | None = Field(None, gt=0, le=150)  # flag `hot` over this (agent default 80)
    foreign_load: float | None = Field(None, ge=0, le=1000)  # flag `foreign_load` over this (agent default 0.5)
    state_interval_s: float | None = Field(None, ge=0, le=60)  # board-state sampler period; 0: before/after only

    @field_validator("cpu_affinity")
    @classmethod
    def _cpus(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(c < 0 for c in v):
            raise ValueError("cpu numbers are >= 0")
        return v

    def over(self, base: BenchControlsSpec | None) -> BenchControlsSpec:
        """These settings over `base`: every key set here wins."""
        if base is None:
            return self
        return BenchControlsSpec.model_validate({**base.model_dump(exclude_unset=True), **self.model_dump(exclude_unset=True)})

    def agent_json(self) -> str | None:
        """The agent's --controls value; None when nothing is set (the agent's defaults apply)."""
        doc: dict = {}
        if self.cooldown is not None:
            doc["cooldown"] = self.cooldown.model_dump(exclude_none=True)
        if self.sustained is not None:
            doc.update(sustained_s=self.sustained.seconds, window_s=self.sustained.window_s)
        for key in ("cpu_affinity", "governor", "hot_temp_c", "foreign_load", "state_interval_s"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        return json.dumps(doc, separators=(",", ":")) if doc else None
