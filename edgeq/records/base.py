"""The record base class: frozen pydantic models with a JSON form that matches today's documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError


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
    - unknown keys in a document are ignored when reading, so newer documents stay readable;
    - keys named in `omit_if_none` are left out of `to_json()` when None, as today's documents do.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, arbitrary_types_allowed=False)

    omit_if_none: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None and name in self.omit_if_none:
                continue
            out[info.alias or name] = _jsonable(value)
        extra = self.__pydantic_extra__
        if extra:
            for k, v in extra.items():
                out.setdefault(k, _jsonable(v))
        return out

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        """Read a document; a missing or mistyped field raises RecordError naming it."""
        if not isinstance(doc, Mapping):
            raise RecordError(cls.__name__, "", f"expected an object, got {type(doc).__name__}")
        try:
            return cls.model_validate(doc)
        except ValidationError as e:
            first = e.errors()[0]
            path = ".".join(str(p) for p in first.get("loc", ()))
            raise RecordError(cls.__name__, path, str(first.get("msg", "invalid"))) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated like a new record)."""
        return type(self).model_validate({**self.model_dump(by_alias=False), **changes})


def _jsonable(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
