"""Typed, validating access to the fields of a decoded msgpack map, for `shared.protocol`.

Owns the one error type of the wire (`ProtocolError`, with its `ErrorCategory`) and the field
getters that raise it naming the field: strings, integers, finite numbers (optional ones too),
maps, packed little-endian arrays, unknown fields.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import numpy as np


class ErrorCategory(str, Enum):
    """Why bytes were refused; the value is the `reason` label of the dead-letter counters."""

    UNDECODABLE = "undecodable"
    """Not bytes, not msgpack, or not a msgpack map."""
    WRONG_KIND = "wrong_kind"
    """An unknown `kind`, or another kind than the reader expects."""
    SCHEMA_VERSION = "schema_version"
    """A `schema_version` this build does not speak (or none)."""
    INVALID = "invalid"
    """A message of the right kind and version with a bad field: missing, mistyped, out of
    range, of the wrong length, unknown; or a message over the size limit."""
    MISSING_FIELD = "missing_field"
    """A stream entry without the payload field (`shared.keys.PAYLOAD_FIELD`)."""
    DELETED = "deleted"
    """A stream entry whose data was deleted (trimmed) before it was acked."""


class ProtocolError(ValueError):
    """Bytes that are not a valid message of a known kind and schema version; `category` says
    which way (callers branch on it, never on the message text)."""

    def __init__(self, message: str, category: ErrorCategory = ErrorCategory.INVALID) -> None:
        super().__init__(message)
        self.category = category


def pack_array(arr: np.ndarray, dtype: np.dtype) -> bytes:
    return np.ascontiguousarray(arr, dtype=dtype).tobytes()


class Fields:
    """Typed access to a decoded map; every getter raises ProtocolError naming the field."""

    def __init__(self, obj: dict[str, Any], where: str) -> None:
        self.obj, self.where, self.seen = obj, where, set()

    def _get(self, name: str) -> Any:
        if name not in self.obj:
            raise ProtocolError(f"{self.where}.{name}: missing")
        self.seen.add(name)
        return self.obj[name]

    def _bad(self, name: str, what: str) -> ProtocolError:
        return ProtocolError(f"{self.where}.{name}: {what}")

    def str(self, name: str) -> str:
        v = self._get(name)
        if not isinstance(v, str) or len(v) > 4096:
            raise self._bad(name, "expected a string of at most 4096 characters")
        return v

    def int(self, name: str, minimum: int | None = None) -> int:
        v = self._get(name)
        if not isinstance(v, int) or isinstance(v, bool):
            raise self._bad(name, f"expected an integer, got {type(v).__name__}")
        if minimum is not None and v < minimum:
            raise self._bad(name, f"must be >= {minimum}")
        return v

    def float(self, name: str) -> float:
        v = self._get(name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise self._bad(name, "expected a finite number")
        return float(v)

    def map(self, name: str) -> dict[str, Any]:
        v = self._get(name)
        if not isinstance(v, dict):
            raise self._bad(name, "expected a map")
        return v

    def float_map(self, name: str) -> dict[str, float]:
        v = self.map(name)
        if len(v) > 256 or not all(
            isinstance(k, str) and isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for k, x in v.items()
        ):
            raise self._bad(name, "expected at most 256 finite numbers keyed by strings")
        return {k: float(x) for k, x in v.items()}

    def optional_float(self, name: str) -> float | None:
        """A finite number, or nil (the sender has no value yet)."""
        return None if self._get(name) is None else self.float(name)

    def optional_int(self, name: str, minimum: int | None = None) -> int | None:
        return None if self._get(name) is None else self.int(name, minimum)

    def array(self, name: str, dtype: np.dtype, length: int | None = None) -> np.ndarray:
        v = self._get(name)
        if not isinstance(v, bytes):
            raise self._bad(name, f"expected packed {dtype.str} bytes, got {type(v).__name__}")
        if len(v) % dtype.itemsize:
            raise self._bad(name, f"{len(v)} bytes is not a whole number of {dtype.str} items")
        arr = np.frombuffer(v, dtype=dtype)
        if length is not None and arr.shape[0] != length:
            raise self._bad(name, f"expected {length} items, got {arr.shape[0]}")
        return arr

    def reject_unknown(self) -> None:
        extra = sorted(set(self.obj) - self.seen)
        if extra:
            raise ProtocolError(f"{self.where}: unknown fields {extra}")
