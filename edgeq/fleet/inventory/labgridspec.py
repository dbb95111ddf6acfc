"""devices.yaml `labgrid:`: take the boards from a labgrid coordinator's places instead of listing hosts.

Only the validated settings live here (no labgrid import): edgeq.fleet.inventory.labgrid does the reserving.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from edgeq.config import Spec

# labgrid's own key rule (labgrid.remote.common.TAG_KEY); values: what its tag filters can express
TAG_KEY = r"^[a-z][a-z0-9_]+$"
TAG_VAL = r"^[A-Za-z0-9_.-]{1,64}$"


def check_tags(v: dict[str, str] | None) -> dict[str, str] | None:
    for k, val in (v or {}).items():
        if not re.fullmatch(TAG_KEY, k):
            raise ValueError(f"tag key {k!r} must match {TAG_KEY} (labgrid's rule)")
        if not re.fullmatch(TAG_VAL, str(val)):
            raise ValueError(f"tag value {val!r} (key {k}) must match {TAG_VAL}")
    return v


class LabgridSpec(Spec):
    """Where the places come from and how edgeq queues for them."""

    coordinator: str = Field(pattern=r"^[A-Za-z0-9.\[\]:_-]+$")  # host[:port], port 20408 by default
    place_tags: dict[str, str] = Field(default_factory=dict)  # reservation filter: every tag must match
    places: int = Field(1, ge=1, le=100)  # how many places one run reserves (one reservation each)
    priority: int = Field(0, ge=-100, le=100)  # labgrid reservation prio: higher is served first
    reserve_timeout: float = Field(600.0, ge=0)  # waiting for free places; then exit 8 naming the holders
    connect_timeout: float = Field(10.0, gt=0, le=120)  # reaching the coordinator, and each call to it

    @field_validator("place_tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        check_tags(v)
        return v

    @property
    def filter_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(self.place_tags.items())) or "(any place)"
