"""Parameter schemas: what a layer's fields are, their defaults, ranges and help text.

The inspector renders a form from these; loading a project validates against them, so a
bad value is caught with a sentence naming the node and field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from studio.errors import clip, shown

# The most a shape's entry may be: far beyond any real input (2**24 = 16,777,216), yet a
# 400-digit one is refused here rather than by torch.
MAX_DIMENSION = 2**24


@dataclass(frozen=True)
class Param:
    """One field of a layer (or of an initializer / normalization option).

    kind is one of: int, float, bool, str, choice, int_or_choice, int_list, shape.
    """

    name: str
    kind: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def coerce(self, value: Any) -> Any:
        """Return value in canonical form, or raise ValueError saying what is allowed."""
        checker = getattr(self, f"_coerce_{self.kind}")
        return checker(value)

    def _range_text(self) -> str:
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f" from {_num(lo)} to {_num(hi)}"
        if lo is not None:
            return f" of at least {_num(lo)}"
        if hi is not None:
            return f" of at most {_num(hi)}"
        return ""

    def _in_range(self, value: float) -> bool:
        if self.minimum is not None and value < self.minimum:
            return False
        return not (self.maximum is not None and value > self.maximum)

    def _coerce_int(self, value: Any) -> int:
        # float.is_integer is False for NaN and infinity, which int() cannot convert.
        whole = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
        if not whole or not self._in_range(value):
            raise ValueError(f"must be a whole number{self._range_text()}, got {shown(value)}")
        return int(value)

    def _coerce_float(self, value: Any) -> float:
        number = _finite(value)
        if number is None or not self._in_range(number):
            raise ValueError(f"must be a number{self._range_text()}, got {shown(value)}")
        return number

    def _coerce_bool(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {shown(value)}")
        return value

    def _coerce_choice(self, value: Any) -> str:
        if value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}; got {shown(value)}")
        return value

    def _coerce_int_or_choice(self, value: Any) -> int | str:
        if isinstance(value, str) and value in self.choices:
            return value
        try:
            return self._coerce_int(value)
        except ValueError:
            raise ValueError(
                f"must be {' or '.join(repr(c) for c in self.choices)} or a whole number"
                f"{self._range_text()}, got {shown(value)}"
            ) from None

    def _coerce_str(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {shown(value)}")
        return value

    def _coerce_int_list(self, value: Any) -> list[int]:
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
        )
        if not ok:
            raise ValueError(
                f"must be a list of whole numbers (e.g. [0, 1, 2]), got {shown(value)}"
            )
        return list(value)

    def _coerce_shape(self, value: Any) -> list[int]:
        ok = (
            isinstance(value, (list, tuple))
            and 1 <= len(value) <= 3
            and all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_DIMENSION
                for v in value
            )
        )
        if not ok:
            raise ValueError(
                f"must be a list of 1 to 3 whole numbers from 1 to {MAX_DIMENSION:,}: [features], "
                f"[steps, features] or [channels, height, width]; got {shown(value)}"
            )
        return list(value)

    def to_dict(self) -> dict:
        """The schema as plain data (for the inspector, docs and `--json`)."""
        out = {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices:
            out["choices"] = list(self.choices)
        return out


def _finite(value: Any) -> float | None:
    """value as a finite float, or None (text, true/false, NaN, infinity, a 400-digit number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def fill_params(params: tuple[Param, ...], given: dict, where: str) -> dict:
    """Validate given values against a schema and fill in defaults.

    Raises ValueError with a sentence that names `where` and the field.
    """
    known = {p.name: p for p in params}
    for key in given:
        if key not in known:
            names = ", ".join(known) or "none"
            raise ValueError(f"{where} has no field '{clip(str(key))}' (its fields: {names}).")
    out = {}
    for p in params:
        value = given.get(p.name, p.default)
        try:
            out[p.name] = p.coerce(value)
        except ValueError as err:
            raise ValueError(f"{where}, field '{p.name}': {err}.") from None
    return out
