"""The record base class: frozen pydantic models with a JSON form that matches today's documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, ValidationInfo, model_validator

# The validation context under which a document's unknown keys are kept instead of refused (see Record).
KEEP_UNKNOWN = {"keep_unknown": True}


class RecordError(ValueError):
    """A document does not have the shape of a record. `field` is a dotted path ("latency.p50_ms")."""

    def __init__(self, record: str, field: str, problem: str):
        super().__init__(f"{record}: field {field!r}: {problem}")
        self.record = record
        self.field = field
        self.problem = problem


class Record(BaseModel):
    """Base of every record. Subclasses declare fields; nothing else.

    - frozen: a record handed to the next layer cannot be changed by it (use `replace()`);
    - a field this record does not declare is refused, so a misspelt keyword raises where it was written;
    - the two places where a document from elsewhere comes in tolerate unknown keys and keep them
      (written back by `to_json()`, after the known ones): `from_stored()` for what an edgeq wrote
      earlier or later (manifests, history rows, cache entries, --json documents) and
      edgeq.fleet.agentdoc for what a board's agent prints;
    - keys named in `omit_if_none` are left out of `to_json()` when None, as today's documents do.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, arbitrary_types_allowed=False)

    omit_if_none: ClassVar[frozenset[str]] = frozenset()

    # keys of a stored or foreign document that this version does not know (only ever set by from_stored/agentdoc)
    _unknown: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_unknown(cls, data: Any, handler: Any, info: ValidationInfo) -> Any:
        if not (info.context and info.context.get("keep_unknown")) or not isinstance(data, Mapping):
            return handler(data)
        known = {n for name, f in cls.model_fields.items() for n in (name, f.alias) if n}
        unknown = {k: v for k, v in data.items() if k not in known}
        if not unknown:
            return handler(data)
        rec = handler({k: v for k, v in data.items() if k in known})
        rec._unknown = unknown
        return rec

    @property
    def unknown(self) -> Mapping[str, Any]:
        """The keys a stored or foreign document carried that this version does not declare."""
        return self._unknown

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None and name in self.omit_if_none:
                continue
            out[info.alias or name] = _jsonable(value)
        return self._with_unknown(out)

    def _with_unknown(self, out: dict[str, Any]) -> dict[str, Any]:
        for k, v in self._unknown.items():
            out.setdefault(k, _jsonable(v))
        return out

    @classmethod
    def from_json(cls, doc: Any, *, keep_unknown: bool = False) -> Self:
        """A record from a document: a missing or mistyped field raises RecordError naming it, and so does a
        field this record does not declare, unless `keep_unknown` (only at a boundary that says why)."""
        if not isinstance(doc, Mapping):
            raise RecordError(cls.__name__, "", f"expected an object, got {type(doc).__name__}")
        try:
            return cls.model_validate(doc, context=KEEP_UNKNOWN if keep_unknown else None)
        except ValidationError as e:
            first = e.errors()[0]
            path = ".".join(str(p) for p in first.get("loc", ()))
            problem = str(first.get("msg", "invalid"))
            if first.get("type") == "extra_forbidden":
                problem = "unknown field (misspelt?)"
            raise RecordError(cls.__name__, path, problem) from None

    @classmethod
    def from_stored(cls, doc: Any) -> Self:
        """A record from a document an edgeq stored (a manifest, a history row, a cache entry, a --json document).

        This is a boundary: a document written by another edgeq version may carry keys this one does not
        know. They are tolerated on purpose and kept (`to_json()` writes them back); a missing or mistyped
        field still raises RecordError naming it."""
        return cls.from_json(doc, keep_unknown=True)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated like a new record); unknown keys it kept stay."""
        return self._rebuild({name: getattr(self, name) for name in type(self).model_fields}, changes)

    def _rebuild(self, kept: dict[str, Any], changes: dict[str, Any]) -> Self:
        """A record of the same type from `kept` field values (records stay records) and `changes`."""
        fields = type(self).model_fields
        bad = [k for k in changes if k not in fields]
        if bad:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(sorted(bad))}")
        new = type(self).model_validate({**kept, **changes})
        if self._unknown:
            new._unknown = dict(self._unknown)
        return new


def _jsonable(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
