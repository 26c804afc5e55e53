"""Typed, validating access to the fields of a decoded msgpack map, for `shared.protocol`.

Owns the one error type of the wire (`ProtocolError`) and the field getters that raise it naming
the field: strings, integers, finite numbers, maps, packed little-endian arrays, unknown fields.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class ProtocolError(ValueError):
    """Bytes that are not a valid message of a known kind and schema version."""


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
