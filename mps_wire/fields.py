"""Messages as data: one field table per message drives encoding, decoding and validation.

A message class lists its fields once, in a :class:`WireTable` of :class:`WireField`
(attribute, wire key, kind, required or optional); :class:`WireMessage` gives the class its
``to_wire`` and ``from_wire`` from that table, and tests hold the same tables against the
CDDL and the AsyncAPI document. A kind (:class:`Kind`) checks and converts one value from
the wire and says how to send it; every failure is a :class:`ValidationError` naming the
field by its wire key.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from mps_wire.errors import ValidationError

E = TypeVar("E", bound=enum.Enum)

MISSING: Any = object()
"""Marks a key the map does not hold (a key may hold None)."""

def expect(value: Any, typ: type, key: str) -> Any:
    """``value`` if it is a ``typ``, else ValidationError; a bool is never an int here."""
    if isinstance(value, typ) and (typ is bool or not isinstance(value, bool)):
        return value
    raise ValidationError(f"field {key!r} must be {typ.__name__}, got {type(value).__name__}",
                          field=key)


class Kind:
    """How one field's value is checked and converted from the wire, and sent back.

    ``encoding`` is the Python expression of ``value`` that the table's compiled encoder
    sends for it (``value`` itself where it goes on the wire as it is).
    """

    __slots__ = ()
    encoding: ClassVar[str] = "value"

    def decode(self, value: Any, key: str) -> Any:
        raise NotImplementedError


class Typed(Kind):
    """Any value of one Python type (``str``, ``int``, ``dict`` ...)."""

    __slots__ = ("typ",)

    def __init__(self, typ: type) -> None:
        self.typ = typ

    def decode(self, value: Any, key: str) -> Any:
        return expect(value, self.typ, key)


class Text(Kind):
    """Printable text of at most ``max_len`` bytes in UTF-8 (as the CDDL's ``.size``)."""

    __slots__ = ("max_len",)

    def __init__(self, max_len: int = 128) -> None:
        self.max_len = max_len

    def decode(self, value: Any, key: str) -> str:
        if value.__class__ is not str:
            expect(value, str, key)
        if (len(value) > self.max_len or not value.isprintable()
                or (not value.isascii() and len(value.encode()) > self.max_len)):
            raise ValidationError(f"field {key!r} must be printable text of at most "
                                  f"{self.max_len} bytes in UTF-8", field=key)
        return value  # type: ignore[no-any-return]


class UInt(Kind):
    """An unsigned integer below 2**63 (sequence numbers, timestamps)."""

    __slots__ = ()

    def decode(self, value: Any, key: str) -> int:
        if value.__class__ is not int:
            expect(value, int, key)
        if not 0 <= value < 2**63:
            raise ValidationError(f"field {key!r} must be an unsigned 63-bit integer",
                                  field=key)
        return value  # type: ignore[no-any-return]


class Version(UInt):
    """The message version ``v``: this contract's only."""

    __slots__ = ("version", "what")

    def __init__(self, version: int, what: str) -> None:
        self.version = version
        self.what = what

    def decode(self, value: Any, key: str) -> int:
        if super().decode(value, key) != self.version:
            raise ValidationError(f"unsupported {self.what} version {value}", field=key)
        return self.version


class Identifier(Kind):
    """Text checked (and normalised) by one of :mod:`mps_wire.identifiers`' validators."""

    __slots__ = ("validate",)

    def __init__(self, validate: Callable[..., str]) -> None:
        self.validate = validate

    def decode(self, value: Any, key: str) -> str:
        if value.__class__ is not str:
            expect(value, str, key)
        return self.validate(value, field=key)


class Pattern(Kind):
    """Text matching ``regex`` in full; ``complaint`` finishes "field 'key' ..."."""

    __slots__ = ("complaint", "regex")

    def __init__(self, regex: re.Pattern[str], complaint: str) -> None:
        self.regex = regex
        self.complaint = complaint

    def decode(self, value: Any, key: str) -> str:
        if value.__class__ is not str:
            expect(value, str, key)
        if not self.regex.fullmatch(value):
            raise ValidationError(f"field {key!r} {self.complaint}", field=key)
        return value  # type: ignore[no-any-return]


class Choice(Kind, Generic[E]):
    """One value of a text enum.

    ``unknown`` is the message for a value outside it (``{value!r}`` is the value); by
    default it names the choices. With ``fallback``, unknown values become that member
    instead: a newer peer may send values this one does not know yet.
    """

    __slots__ = ("base", "enum", "fallback", "members", "unknown")
    encoding: ClassVar[str] = "value.value"

    def __init__(self, enum_type: type[E], unknown: str | None = None, *,
                 fallback: E | None = None, base: Kind | None = None) -> None:
        self.enum = enum_type
        self.members: dict[object, E] = {m.value: m for m in enum_type}
        self.unknown = unknown
        self.fallback = fallback
        self.base = base or Typed(str)

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(str(m.value) for m in self.enum)

    def decode(self, value: Any, key: str) -> E:
        member = self.members.get(self.base.decode(value, key))
        if member is not None:
            return member
        if self.fallback is not None:
            return self.fallback
        if self.unknown is not None:
            raise ValidationError(self.unknown.format(value=value), field=key)
        names = " or ".join(repr(c) for c in self.choices)
        raise ValidationError(f"field {key!r} must be {names}", field=key)


class Nested(Kind):
    """A map holding another message (``cls`` is a :class:`WireMessage`)."""

    __slots__ = ("message",)

    def __init__(self, message: type[WireMessage]) -> None:
        self.message = message

    encoding: ClassVar[str] = "value.to_wire()"

    def decode(self, value: Any, key: str) -> Any:
        return self.message.from_wire(expect(value, dict, key))


class Listing(Kind):
    """A list of at most ``max_items`` items, each checked by ``item``; a tuple in Python.

    ``noun`` names the items in the too-many message ("at most 16 addresses").
    """

    __slots__ = ("item", "max_items", "noun")
    encoding: ClassVar[str] = "list(value)"

    def __init__(self, item: Callable[[Any, str], Any], max_items: int, noun: str) -> None:
        self.item = item
        self.max_items = max_items
        self.noun = noun

    def decode(self, value: Any, key: str) -> tuple[Any, ...]:
        if value.__class__ is not list:
            expect(value, list, key)
        if len(value) > self.max_items:
            raise ValidationError(f"at most {self.max_items} {self.noun}", field=key)
        item = self.item
        return tuple([item(v, key) for v in value])


class Blob(Kind):
    """A byte string of 1 to ``max_len`` bytes."""

    __slots__ = ("max_len",)

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len

    def decode(self, value: Any, key: str) -> bytes:
        value = expect(value, bytes, key)
        if not value or len(value) > self.max_len:
            raise ValidationError(f"field {key!r} must be 1 to {self.max_len} bytes",
                                  field=key)
        return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class WireField:
    """One field of a message: attribute ``name``, wire ``key`` (the name unless given).

    An absent optional field takes ``default``; ``stored=False`` checks a key without
    keeping it (a message version). ``when`` limits encoding to the objects it accepts;
    None values are never sent.
    """

    name: str
    kind: Kind
    required: bool = True
    key: str = ""
    default: Any = None
    stored: bool = True
    when: Callable[[Any], bool] | None = None

    @property
    def wire_key(self) -> str:
        return self.key or self.name


def optional(name: str, kind: Kind, default: Any = None, **options: Any) -> WireField:
    """An optional field (shorthand)."""
    return WireField(name, kind, required=False, default=default, **options)


class WireTable:
    """The field table of one message and the codec it drives.

    ``consts`` are written by ``encode`` and allowed by ``decode`` (a request's ``op``:
    the parser chose the class by it). A ``closed`` table refuses keys it does not name;
    ``rest`` names a dict attribute that takes every other key (an open reply body).
    ``missing`` says what an absent required key is: "named" raises "missing field",
    "as-none" hands None to the kind (which then names what it expected).
    ``init=False`` builds instances without ``__init__`` where the kinds check everything
    ``__post_init__`` would check again. ``rule`` is the message's CDDL rule.
    """

    def __init__(self, *fields: WireField, rule: str, consts: Mapping[str, Any] | None = None,
                 closed: bool = False, rest: str | None = None,
                 missing: Literal["named", "as-none"] = "named", init: bool = True) -> None:
        self.fields = fields
        self.rule = rule
        self.consts = dict(consts or {})
        self.closed = closed
        self.rest = rest
        self.missing = missing
        self.init = init
        self.keys = frozenset(self.consts) | {f.wire_key for f in fields}
        self._decode_plan = tuple((f.name if f.stored else "", f.wire_key, f.kind.decode,
                                   f.required, f.default) for f in fields)
        self.encode: Callable[[Any], dict[str, Any]] = self._compile_encoder()

    def field(self, name: str) -> WireField:
        """The field for attribute ``name``."""
        return next(f for f in self.fields if f.name == name)

    @property
    def required_keys(self) -> frozenset[str]:
        return frozenset(self.consts) | {f.wire_key for f in self.fields if f.required}

    def select(self, required: Iterable[str], optional: Iterable[str] = (),
               consts: Mapping[str, Any] | None = None) -> WireTable:
        """A table of some of these fields, in the order given (a variant of the message)."""
        chosen = [replace(self.field(n), required=True) for n in required]
        chosen += [replace(self.field(n), required=False) for n in optional]
        return WireTable(*chosen, rule=self.rule, consts=consts, closed=self.closed,
                         rest=self.rest, missing=self.missing, init=self.init)

    def values(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """The checked attribute values of ``msg``; ValidationError naming the bad field."""
        if self.closed:
            extra = msg.keys() - self.keys
            if extra:
                first = min(extra)
                raise ValidationError(f"unknown field {first!r}", field=first)
        values: dict[str, Any] = {}
        for name, key, decode, required, default in self._decode_plan:
            raw = msg.get(key, MISSING)
            if raw is MISSING:
                if not required:
                    value = default
                elif self.missing == "named":
                    raise ValidationError(f"missing field {key!r}", field=key)
                else:
                    value = decode(None, key)
            else:
                value = decode(raw, key)
            if name:
                values[name] = value
        if self.rest is not None:
            values[self.rest] = {k: v for k, v in msg.items() if k not in self.keys}
        return values

    def decode(self, cls: type[Any], msg: Mapping[str, Any]) -> Any:
        """An instance of ``cls`` from ``msg``."""
        values = self.values(msg)
        if self.init:
            return cls(**values)
        obj = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(obj, name, value)
        return obj

    def _compile_encoder(self) -> Callable[[Any], dict[str, Any]]:
        # Replies and events are encoded on every request: like dataclasses' __init__, the
        # table becomes straight-line code, one statement per field, once per class.
        scope: dict[str, Any] = {"consts": self.consts}
        lines = [f"    msg = dict(obj.{self.rest})" if self.rest else "    msg = {}"]
        if self.consts:
            lines.append("    msg.update(consts)")
        for n, f in enumerate(fld for fld in self.fields if fld.stored):
            if not f.name.isidentifier():
                raise ValueError(f"field name {f.name!r} is not an identifier")
            scope[f"when{n}"] = f.when
            when = "" if f.when is None else f" and when{n}(obj)"
            lines += [f"    value = obj.{f.name}",
                      f"    if value is not None{when}:",
                      f"        msg[{f.wire_key!r}] = {f.kind.encoding}"]
        source = "def encode(obj):\n" + "\n".join([*lines, "    return msg"])
        exec(compile(source, f"<wire encoder of {self.rule}>", "exec"), scope)  # noqa: S102
        encode: Callable[[Any], dict[str, Any]] = scope["encode"]
        encode.__doc__ = "The wire map of ``obj``."
        return encode


class WireMessage:
    """A message whose wire form its class's field table (``wire``) defines."""

    __slots__ = ()
    wire: ClassVar[WireTable]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The compiled encoder is the method itself: no call through the table.
        if "wire" in cls.__dict__ and "to_wire" not in cls.__dict__:
            cls.to_wire = cls.wire.encode  # type: ignore[method-assign, assignment]

    def to_wire(self) -> dict[str, Any]:
        """The CBOR map to send (see :func:`mps_wire.codec.encode`)."""
        return self.wire.encode(self)

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> Self:
        """Validate a decoded map; ValidationError names the bad field."""
        return cls.wire.decode(cls, msg)  # type: ignore[no-any-return]
