"""Input schemas: frozen dataclasses whose field types and limits are written once, and from which the
WebSocket body, the JSON body and the HTML form are parsed alike and the OpenAPI components are generated.

A field's limits sit in its annotation: `name: Annotated[str, Text(1, 200)]`, `limit: Annotated[int,
Range(1, 200)]`, `tasks: Annotated[list[Task], Items(20)]`. Rules across fields go in the class's own
`validate()`, which raises through `require(...)`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from telehealth.errors import ErrorCode, TelehealthError

T = TypeVar("T")
# Integers in bodies (record ids, counts) fit the databases' 32-bit integer columns.
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class Text:
    """A string of `min` to `max` characters; `min` counts what is left once the white space around it is cut."""

    min: int = 0
    max: int = 4000


@dataclass(frozen=True)
class Range:
    """An integer or a number from `min` to `max`, both included."""

    min: int | float | None = None
    max: int | float | None = None


@dataclass(frozen=True)
class Items:
    """A list of at most `max` items."""

    max: int


@dataclass(frozen=True)
class Doc:
    """What the field is, for the OpenAPI document."""

    text: str


class InputError(TelehealthError):
    """A body that does not fit its schema; `field` is the dotted path of the field at fault ("" for the whole)."""

    def __init__(self, field: str, message: str, /, **params: Any) -> None:
        super().__init__(ErrorCode.invalid_message, message, field=f"`{field}`" if field else "", **params)
        self.field = field


def require(condition: bool, message: str, *, field: str = "", **params: Any) -> None:
    """A rule beyond types: `message` may name `{field}` and any of `params`."""
    if not condition:
        raise InputError(field, message, **params)


# -- parsing -----------------------------------------------------------------------------------------

@functools.cache  # hints are few and hashable; looking into them costs more than checking a value
def _limits(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(hint) is Annotated:
        args = typing.get_args(hint)
        return args[0], tuple(args[1:])
    return hint, ()


@functools.cache
def _plain(hint: Any) -> type | None:
    """The type a value of this unlimited hint is as it stands (int, str, bool, an object), else None."""
    if hint in (int, str, bool):
        return typing.cast(type, hint)
    return dict if hint is dict or typing.get_origin(hint) is dict else None


def _check(value: Any, hint: Any, where: str) -> Any:
    hint, limits = _limits(hint)
    if not limits:
        # The common case first, with the same outcome as `_check_type` (which has the error messages).
        plain = _plain(hint)
        if plain is not None and type(value) is plain and (plain is not int or abs(typing.cast(int, value)) <= MAX_INT):
            return value
    checked = _check_type(value, hint, where)
    for limit in limits:
        if isinstance(limit, Text) and isinstance(checked, str):
            if len(checked.strip()) < limit.min or len(checked) > limit.max:
                if limit.min:
                    raise InputError(where, "{field} is required, at most {max} characters", max=limit.max)
                raise InputError(where, "{field} is limited to {max} characters", max=limit.max)
        elif isinstance(limit, Range) and isinstance(checked, int | float):
            if (limit.min is not None and checked < limit.min) or (limit.max is not None and checked > limit.max):
                raise InputError(where, "{field} must be between {min} and {max}", min=limit.min, max=limit.max)
        elif isinstance(limit, Items) and isinstance(checked, list) and len(checked) > limit.max:
            raise InputError(where, "{field} holds at most {max} items", max=limit.max)
    return checked


@functools.cache
def _shape(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    return typing.get_origin(hint), typing.get_args(hint)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin, args = _shape(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        first: InputError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, where)
            except InputError as exc:
                first = first or exc
        raise first or InputError(where, "{field} is invalid")
    if hint is Any:
        return value
    if origin is typing.Literal:
        if value not in args or isinstance(value, bool):
            raise InputError(where, "{field} must be one of: {allowed}", allowed=", ".join(map(str, args)))
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in hint)
            raise InputError(where, "{field} must be one of: {allowed}", allowed=allowed) from None
    if hint is bool:
        if not isinstance(value, bool):
            raise InputError(where, "{field} must be true or false")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_INT:
            raise InputError(where, "{field} must be an integer")
        return value
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value or value in (
                float("inf"), float("-inf")):
            raise InputError(where, "{field} must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise InputError(where, "{field} must be a string")
        return value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise InputError(where, "{field} must be an object")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise InputError(where, "{field} must be a list")
        return [_check(item, args[0], f"{where}[]") for item in value] if args else value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise InputError(where, "{field} must be an object")
        return parse(typing.cast(type[Any], hint), value, prefix=f"{where}.")
    raise TypeError(f"unsupported field type {hint!r}")  # a programming error, not a client error


@functools.cache
def _fields(cls: type[Any]) -> tuple[dict[str, Any], frozenset[str], tuple[dataclasses.Field[Any], ...]]:
    """A schema's field types, computed once per class."""
    fields = dataclasses.fields(cls)
    return typing.get_type_hints(cls, include_extras=True), frozenset(f.name for f in fields), fields


@functools.cache
def _plan(cls: type[Any]) -> tuple[frozenset[str], tuple[tuple[str, bool, type | None, Any], ...]]:
    """How to read each field, worked out once per class (this runs for every message): its name, whether it
    is required, the plain type a value may simply be (no limits to check), and its full hint."""
    hints, names, fields = _fields(typing.cast(Hashable, cls))
    plan = []
    for f in fields:
        base, limits = _limits(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        plan.append((f.name, required, None if limits else _plain(base), hints[f.name]))
    return names, tuple(plan)


def parse(cls: type[T], body: Mapping[str, Any], prefix: str = "") -> T:
    """Build a schema's dataclass from a JSON object: required fields present, types and limits exact, no
    unknown fields, then the class's own `validate()`. The first problem raises `InputError`."""
    names, plan = _plan(typing.cast(Hashable, cls))
    if not names.issuperset(body):
        raise InputError(prefix.rstrip("."), "unknown field(s): {names}",
                         names=", ".join(prefix + u for u in sorted(set(body) - names)))
    kwargs: dict[str, Any] = {}
    for name, required, plain, hint in plan:
        if name not in body:
            if required:
                raise InputError(prefix + name, "{field} is required")
            continue
        value: Any = body[name]
        # The common case inline, with the same outcome as `_check` (which has the error messages).
        if plain is not None and type(value) is plain and (plain is not int or -MAX_INT <= body[name] <= MAX_INT):
            kwargs[name] = value
        else:
            kwargs[name] = _check(value, hint, prefix + name)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def parse_all(cls: type[T], body: Mapping[str, Any]) -> tuple[T | None, dict[str, InputError]]:
    """Like `parse`, but every field's problem at once, by dotted path (for a form that marks each field)."""
    hints, _, fields = _fields(typing.cast(Hashable, cls))
    errors: dict[str, InputError] = {}
    for f in fields:
        if f.name not in body:
            continue
        hint, _ = _limits(hints[f.name])
        if dataclasses.is_dataclass(hint) and isinstance(body[f.name], Mapping):
            _, inner = parse_all(typing.cast(type[Any], hint), body[f.name])
            errors.update({f"{f.name}.{k}": v for k, v in inner.items()})
            continue
        try:
            _check(body[f.name], hints[f.name], f.name)
        except InputError as exc:
            errors[exc.field or f.name] = exc
    if errors:
        return None, errors
    try:
        return parse(cls, body), {}
    except InputError as exc:
        return None, {exc.field: exc}


def _takes_int(hint: Any) -> bool:
    hint, _ = _limits(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return any(_takes_int(a) for a in typing.get_args(hint))
    return hint is int


_SHOWN = 40


def shown(value: str) -> str:
    """A value as an error quotes it: in quotes, and cut when long."""
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "…")


def from_query(cls: type[T], query: Mapping[str, str], names: Mapping[str, str] | None = None) -> T:
    """Build a schema from a query string's values: `names` maps a field to its parameter where they differ;
    an empty or absent parameter leaves the field's default; a number field's text is read as an integer
    (text that is none is refused by the schema, and so is a number past the limits)."""
    hints, _, fields = _fields(typing.cast(Hashable, cls))
    body: dict[str, Any] = {}
    for f in fields:
        param = (names or {}).get(f.name, f.name)
        raw = query.get(param, "").strip()
        if not raw:
            continue
        if _takes_int(hints[f.name]):
            # Query numbers are record ids and page numbers: 1 to the databases' integer limit.
            try:
                number = int(raw) if len(raw) <= 12 else 0
            except ValueError:
                number = 0
            require(0 < number <= MAX_INT, "{value} is not a number from 1 to {max}", field=param,
                    value=shown(raw), max=MAX_INT)
            body[f.name] = number
        else:
            body[f.name] = raw
    try:
        return parse(cls, body)
    except InputError as exc:
        # Name the query parameter, not the schema's field.
        param = (names or {}).get(exc.field, exc.field)
        if param == exc.field:
            raise
        raise InputError(param, exc.template, **{k: v for k, v in exc.params.items() if k != "field"}) from None


# What a form says next to the control in error: the field is named by its label already.
_NEXT_TO_FIELD = {
    "{field} is required": "This field is required.",
    "{field} is required, at most {max} characters": "Required, at most {max} characters.",
    "{field} is limited to {max} characters": "At most {max} characters.",
    "{field} must be between {min} and {max}": "Enter a value from {min} to {max}.",
    "{field} must be one of: {allowed}": "Choose one from the list.",
    "{field} must be an integer": "Enter a whole number.",
    "{field} must be a number": "Enter a number.",
    "{field} holds at most {max} items": "At most {max} items.",
    "{field} is not a plausible year": "Enter a birth year such as 1958.",
    "{field} must be a date (YYYY-MM-DD)": "Enter a date such as 2026-11-03.",
    "{field} is required for a laboratory result": "Enter the value of the laboratory test.",
    "{field} is required for an imaging or ECG report": "Write the findings and conclusion of the report.",
    "{field} is for laboratory values only": "A report has no value: leave this empty.",
}


def beside_field(error: InputError) -> tuple[str, dict[str, Any]]:
    """(English template, values) of an input error worded for the place next to its form control."""
    params = dict(error.params)
    params["field"] = ""
    return _NEXT_TO_FIELD.get(error.template, error.template), params


# -- the OpenAPI components ----------------------------------------------------------------------------

def json_schema(hint: Any, components: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0 schema of a field type or a schema class; named classes land in `components` and are
    referred to by `$ref`."""
    hint, limits = _limits(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    schema: dict[str, Any]
    if origin in (types.UnionType, typing.Union):
        rest = [a for a in args if a is not type(None)]
        schema = dict(json_schema(rest[0], components))
        if type(None) in args:
            if "$ref" in schema:
                schema = {"allOf": [schema], "nullable": True}
            else:
                schema["nullable"] = True
    elif origin is typing.Literal:
        schema = {"type": "string" if all(isinstance(a, str) for a in args) else "integer", "enum": list(args)}
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        schema = {"type": "string", "enum": [m.value for m in hint]}
    elif hint is bool:
        schema = {"type": "boolean"}
    elif hint is int:
        schema = {"type": "integer", "minimum": -MAX_INT, "maximum": MAX_INT}
    elif hint is float:
        schema = {"type": "number"}
    elif hint is str:
        schema = {"type": "string"}
    elif origin is dict or hint is dict or hint is Any:
        schema = {"type": "object"}
    elif origin is list:
        schema = {"type": "array", "items": json_schema(args[0], components) if args else {}}
    elif dataclasses.is_dataclass(hint):
        return _object_schema(typing.cast(type[Any], hint), components)
    else:
        raise TypeError(f"unsupported field type {hint!r}")
    for limit in limits:
        if isinstance(limit, Text):
            schema["maxLength"] = limit.max
            if limit.min:
                schema["minLength"] = limit.min
        elif isinstance(limit, Range):
            if limit.min is not None:
                schema["minimum"] = limit.min
            if limit.max is not None:
                schema["maximum"] = limit.max
        elif isinstance(limit, Items):
            schema["maxItems"] = limit.max
        elif isinstance(limit, Doc):
            schema["description"] = limit.text
    return schema


def _object_schema(cls: type[Any], components: dict[str, Any] | None) -> dict[str, Any]:
    hints, _, fields = _fields(typing.cast(Hashable, cls))
    schema: dict[str, Any] = {
        "type": "object", "additionalProperties": False,
        "properties": {f.name: json_schema(hints[f.name], components) for f in fields},
    }
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        schema["required"] = required
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
        schema["description"] = " ".join(cls.__doc__.split())
    if components is None:
        return schema
    components[cls.__name__] = schema
    return {"$ref": f"#/components/schemas/{cls.__name__}"}
