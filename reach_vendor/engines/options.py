"""Engine options as pydantic models: one per engine type, validated by the registry.

Options come from hand-edited YAML, so a typo or a wrong type must stop the daemon at
start-up with one line naming the engine and the key, never fall back to a default.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

__all__ = ["EngineOptions", "NonNegative", "Positive", "Text", "parse_options"]


class EngineOptions(BaseModel):
    # Strict: YAML `vad_filter: "yes"` or `beam: "1e-40"` is a mistake, not a value to coerce.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _number_as_text(value: object) -> object:
    # YAML reads `profile_id: 123` as a number; such ids are still text to the service.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_number_as_text), Field(min_length=1)]
"""A non-empty string (whole numbers are accepted as their digits)."""
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]

OptionsT = TypeVar("OptionsT", bound=EngineOptions)


def parse_options(engine: str, model: type[OptionsT], options: dict[str, object]) -> OptionsT:
    """Validate `options`; a mistake becomes a ValueError naming the engine and the key."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        raise ValueError(_describe(engine, model, exc.errors()[0])) from None


_PHRASES = {
    "missing": "is required",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "int_type": "must be a whole number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _describe(engine: str, model: type[EngineOptions], error: ErrorDetails) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    kind = error["type"]
    if not key:  # a check across several keys
        return f"{engine} options: {_own_message(error)}"
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        known = ", ".join(sorted(owner.model_fields)) if owner else ""
        return f"unknown {engine} option {key!r}" + (f" (known: {known})" if known else "")
    if kind == "value_error":
        text = _own_message(error)
        return f"{engine} option {key!r}{' ' if text.startswith('must') else ': '}{text}"
    if kind in _BOUNDS and (span := _span(model, loc)):
        return f"{engine} option {key!r} must be {span}"
    phrase = _PHRASES.get(kind) or error["msg"].replace("Input should be", "must be")
    return f"{engine} option {key!r} {phrase}"


def _own_message(error: ErrorDetails) -> str:
    """What our validators said: a rule ("must ...") or a finding about the value."""
    return str(error.get("ctx", {}).get("error", error["msg"]))


def _model_at(model: type[EngineOptions], path: list[str]) -> type[BaseModel] | None:
    """The (nested) options model that the key at `path` belongs to."""
    current: type[BaseModel] = model
    for part in path:
        info = current.model_fields.get(part)
        if info is None or not isinstance(info.annotation, type):
            return None
        if not issubclass(info.annotation, BaseModel):
            return None
        current = info.annotation
    return current


def _span(model: type[EngineOptions], loc: list[str]) -> str:
    """The range of a field bounded on both sides ("5..120"), to name it whole."""
    owner = _model_at(model, loc[:-1])
    info: FieldInfo | None = owner.model_fields.get(loc[-1]) if owner else None
    if info is None:
        return ""
    bounds = {
        name: value
        for item in info.metadata
        for name in ("ge", "le")
        if (value := getattr(item, name, None)) is not None
    }
    if "ge" not in bounds or "le" not in bounds:
        return ""
    return f"{bounds['ge']:g}..{bounds['le']:g}"
