"""Frozen, typed records passed between layers, and their JSON form.

One style everywhere: a `Record` is a frozen pydantic model. Each field name is written once, on
the record; `to_json()` gives today's JSON documents (`--json`, manifests, history) and
`from_json()` reads them back, raising `RecordError` with the path of the first bad field.

This package imports nothing else from edgeq except `edgeq.errors`, so every layer may use it.
"""

from edgeq.records.base import Record, RecordError

__all__ = ["Record", "RecordError"]
