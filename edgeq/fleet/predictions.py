"""Predictions on a board (`predict`): the accuracy check runs a whole test split through a deployed model."""

from __future__ import annotations

from pathlib import Path

from edgeq.errors import DataError
from edgeq.fleet.benchmarks import pinned
from edgeq.fleet.board import AgentBundle, runtime_args
from edgeq.fleet.inventory.devices import Inventory
from edgeq.fleet.operation import FleetOp
from edgeq.fleet.transport.base import TransportFactory
from edgeq.records.fleet import AgentPredict


def predict(
    inventory: Inventory,
    device_name: str,
    model_name: str,
    inputs: Path,
    *,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
    sha256: str | None = None,
) -> list[int]:
    """Class predictions (argmax) of the board's current `model_name` for each row of an .npy file.

    With `sha256`, the predictions count only if the board ran that very model (else BoardError
    kind "sha_mismatch").
    """
    if not Path(inputs).is_file():
        raise DataError(f"{inputs}: inputs file not found", "pass a .npy file of model inputs")
    d = inventory.get(device_name)
    with FleetOp([d], transport_factory=transport_factory, agent=agent).board(d) as board:
        remote = board.upload_tmp(Path(inputs), ".npy")
        try:
            args = ["--name", model_name, "--inputs", remote, *(["--sha256", sha256] if sha256 else [])]
            doc = board.call("predict", *args, *runtime_args(d))
        finally:
            board.t.remove(remote)
    assert isinstance(doc, AgentPredict)  # noqa: S101 - read_agent_doc's contract for "predict"
    if sha256:
        pinned(d.name, "predict", doc.model, sha256)
    return list(doc.predictions)
