"""The `VectorIndex` port: vectors with metadata, nearest neighbours under a metadata filter.

Filters use Pinecone's operators, so one filter means the same on both backends: `{"type": "playbook"}`,
`{"tags": {"$in": ["pricing"]}}`, `{"date": {"$gte": 20260101}}`; several keys are ANDed. Supported: `$eq`,
`$ne`, `$in`, `$nin`, `$gt`, `$gte`, `$lt`, `$lte`, `$exists`. A list-valued metadata field matches when any
element does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    pass


Metadata = dict[str, str | int | float | bool | list[str]]


Filter = Mapping[str, Any]


OPERATORS = {"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"}


class VectorMatch(NamedTuple):
    """One neighbour: a plain tuple, since a search makes dozens of them and reads three fields."""

    id: str
    score: float
    metadata: Metadata


def _test(value: Any, op: str, operand: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if op == "$eq":
        return operand in values
    if op == "$ne":
        return operand not in values
    if op == "$in":
        return any(v in operand for v in values)
    if op == "$nin":
        return not any(v in operand for v in values)
    try:
        return any(
            (op == "$gt" and v > operand) or (op == "$gte" and v >= operand)
            or (op == "$lt" and v < operand) or (op == "$lte" and v <= operand)
            for v in values if v is not None
        )  # fmt: skip
    except TypeError:
        return False


def matches(metadata: Mapping[str, Any], filter: Filter | None) -> bool:
    """Whether `metadata` passes a Pinecone-style `filter`."""
    for key, condition in (filter or {}).items():
        if key == "$and":
            if not all(matches(metadata, part) for part in condition):
                return False
            continue
        if key == "$or":
            if not any(matches(metadata, part) for part in condition):
                return False
            continue
        conditions = condition if isinstance(condition, Mapping) else {"$eq": condition}
        for op, operand in conditions.items():
            if op not in OPERATORS:
                raise ValueError(f"unknown filter operator {op!r}; use one of {', '.join(sorted(OPERATORS))}")
            if op == "$exists":
                if (key in metadata) != bool(operand):
                    return False
                continue
            if key not in metadata:  # a record without the field is "not equal" to anything, and in nothing
                if op in ("$ne", "$nin"):
                    continue
                return False
            if not _test(metadata[key], op, operand):
                return False
    return True
