"""The base of every wire record: strict validation with errors that name the field.

Faust's own ``validation=True`` coerces rather than rejects (``"1.5"`` becomes ``1``), so records
here check their annotated types strictly and add range checks in ``check()``. Everything on a
topic is a :class:`WireRecord` serialised as plain JSON (no Faust metadata), so producers in any
language can write it.

>>> from models.records import CountingLine
>>> parse(CountingLine, b'{"line_id": "door", "start": [0, 0], "end": [0, "up"]}')
Traceback (most recent call last):
...
models.base.SchemaError: CountingLine.end[1]: expected number, got str ('up')
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any, ClassVar, TypeVar

from faust import Record

SCHEMA_VERSION = 1

R = TypeVar("R", bound="WireRecord")


class SchemaError(ValueError):
    """A message that does not match its record: names the record, the field and the reason."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        self.record, self.field, self.reason = record, field, reason
        super().__init__(f"{record}.{field}: {reason}")


class WireRecord(Record, abstract=True, include_metadata=False, serializer="json"):
    """A versioned JSON record. Subclasses declare fields and may override :meth:`check`."""

    # Oldest and newest schema versions this code reads. Bump SUPPORTED when a field is added with
    # a default (readers of the old version still parse new messages); a breaking change gets a
    # new topic name instead.
    SUPPORTED_VERSIONS: ClassVar[tuple[int, int]] = (1, SCHEMA_VERSION)

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field, default in self._options.defaults.items():
            if isinstance(default, list | dict) and getattr(self, field) is default:
                setattr(self, field, type(default)())  # never share a mutable default
        for field, tp in self._options.fields.items():
            _check_type(name, field, getattr(self, field), tp)
        version = getattr(self, "schema_version", None)
        if version is not None:
            lo, hi = self.SUPPORTED_VERSIONS
            if not lo <= version <= hi:
                raise SchemaError(name, "schema_version", f"unsupported version {version} (reads {lo}..{hi})")
        self.check()

    def check(self) -> None:
        """Range and consistency checks beyond types; raise :class:`SchemaError`."""

    def fail(self, field: str, reason: str) -> typing.NoReturn:
        raise SchemaError(type(self).__name__, field, reason)

    def to_json(self) -> bytes:
        return self.dumps()


def parse(cls: type[R], raw: bytes | str | dict[str, Any]) -> R:
    """Decode ``raw`` into ``cls`` or raise :class:`SchemaError` naming what is wrong."""
    name = cls.__name__
    if isinstance(raw, dict):
        data = raw
    else:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SchemaError(name, "<message>", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SchemaError(name, "<message>", f"expected a JSON object, got {type(data).__name__}")
    return _build(cls, data)


def _build(cls: type[R], data: dict[str, Any]) -> R:
    name = cls.__name__
    fields = cls._options.fields
    unknown = set(data) - set(fields)
    if unknown:
        raise SchemaError(name, sorted(unknown)[0], "unknown field")
    missing = [f for f in fields if f not in data and f not in cls._options.defaults]
    if missing:
        raise SchemaError(name, missing[0], "required field is missing")
    kwargs = {}
    for field, value in data.items():
        kwargs[field] = _decode_nested(name, field, value, fields[field])
    return cls(**kwargs)


def _decode_nested(record: str, field: str, value: Any, tp: Any) -> Any:
    """Build nested records (and lists of them) from plain JSON values."""
    nested = _record_type(tp)
    if nested is not None and isinstance(value, dict):
        return _build_at(record, field, nested, value)
    origin = typing.get_origin(tp)
    if origin in (list, typing.List) and isinstance(value, list):  # noqa: UP006
        (item_tp,) = typing.get_args(tp) or (Any,)
        item_cls = _record_type(item_tp)
        if item_cls is not None:
            return [
                _build_at(record, f"{field}[{i}]", item_cls, v) if isinstance(v, dict) else v
                for i, v in enumerate(value)
            ]
    return value


def _build_at(record: str, path: str, cls: type[R], data: dict[str, Any]) -> R:
    """Build a nested record; errors name the full path (``CameraConfig.lines[0].end``)."""
    try:
        return _build(cls, data)
    except SchemaError as exc:
        raise SchemaError(record, f"{path}.{exc.field}", exc.reason) from None


def _record_type(tp: Any) -> type[WireRecord] | None:
    if isinstance(tp, type) and issubclass(tp, WireRecord):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if isinstance(arg, type) and issubclass(arg, WireRecord):
                return arg
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_type(record: str, field: str, value: Any, tp: Any) -> None:
    """Strict check of ``value`` against a field annotation (str, int, float, bool, list, dict,
    Optional, nested records). Unknown annotations are accepted as they are."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                _check_type(record, field, value, arg)
                return
            except SchemaError as exc:
                errors.append(exc.reason)
        raise SchemaError(record, field, errors[0] if errors else f"unexpected {_describe(value)}")
    if tp is Any or tp is typing.Any:
        return
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(record, field, f"expected number, got {type(value).__name__} ({_describe(value)})")
        if not math.isfinite(value):
            raise SchemaError(record, field, f"expected a finite number, got {value}")
        return
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(record, field, f"expected integer, got {type(value).__name__} ({_describe(value)})")
        return
    if tp in (str, bool, dict):
        if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
            raise SchemaError(record, field, f"expected {tp.__name__}, got {type(value).__name__} ({_describe(value)})")
        return
    if tp is list or origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            raise SchemaError(record, field, f"expected list, got {type(value).__name__} ({_describe(value)})")
        args = typing.get_args(tp)
        if args:
            for i, item in enumerate(value):
                _check_type(record, f"{field}[{i}]", item, args[0])
        return
    if tp is dict or origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            raise SchemaError(record, field, f"expected object, got {type(value).__name__}")
        return
    if isinstance(tp, type) and issubclass(tp, WireRecord):
        if not isinstance(value, tp):
            raise SchemaError(record, field, f"expected {tp.__name__} object, got {type(value).__name__}")
        return
