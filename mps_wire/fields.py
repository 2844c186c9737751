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
from typing import Any, ClassVar, Generic, Literal, NoReturn, Self, TypeVar

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

    ``encoding`` is the Python expression the table's compiled encoder sends for a value,
    with ``{}`` standing for the value (just ``{}`` where it goes on the wire as it is).
    """

    __slots__ = ()
    encoding: ClassVar[str] = "{}"

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
    encoding: ClassVar[str] = "{}.value"

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

    encoding: ClassVar[str] = "{}.to_wire()"

    def decode(self, value: Any, key: str) -> Any:
        return self.message.from_wire(expect(value, dict, key))


class Listing(Kind):
    """A list of at most ``max_items`` items, each checked by ``item``; a tuple in Python.

    ``noun`` names the items in the too-many message ("at most 16 addresses").
    """

    __slots__ = ("item", "max_items", "noun")
    encoding: ClassVar[str] = "list({})"

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
        pairs = ", ".join(f"{n!r}: v_{n}" for n in self._stored())
        self.values: Callable[[Mapping[str, Any]], dict[str, Any]] = self._compile(
            "values", f"    return {{{pairs}}}")
        """The checked attribute values of a map; ValidationError naming the bad field."""
        self.build: Callable[[type[Any], Mapping[str, Any]], Any] = self._compile(
            "build", *self._construct())
        """An instance of a class (the first argument) from a map."""
        self.encode: Callable[[Any], dict[str, Any]] = self._compile_encoder()
        """The wire map of an instance."""

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

    def decode(self, cls: type[Any], msg: Mapping[str, Any]) -> Any:
        """An instance of ``cls`` from ``msg``; ValidationError naming the bad field."""
        return self.build(cls, msg)

    # Messages are decoded and encoded on every request: like dataclasses' __init__, the
    # table becomes straight-line code once per class, one statement per field, the kinds
    # and defaults bound by name. Field names are identifiers and keys go in as literals.

    def _stored(self) -> list[str]:
        names = [f.name for f in self.fields if f.stored]
        if self.rest is not None:
            names.append(self.rest)
        for name in names:
            if not name.isidentifier():
                raise ValueError(f"field name {name!r} is not an identifier")
        return names

    def _construct(self) -> list[str]:
        names = self._stored()
        if self.init:
            arguments = ", ".join(f"{n}=v_{n}" for n in names)
            return [f"    return cls({arguments})"]
        return ["    obj = new(cls)", *(f"    setattr(obj, {n!r}, v_{n})" for n in names),
                "    return obj"]

    def _decode_lines(self, scope: dict[str, Any]) -> list[str]:
        lines = []
        if self.closed:
            lines.append("    if msg.keys() - keys: unknown(msg.keys() - keys)")
        for n, f in enumerate(self.fields):
            key = f.wire_key
            scope[f"decode{n}"], scope[f"default{n}"] = f.kind.decode, f.default
            if not f.required:
                absent = f"default{n}"
            elif self.missing == "named":
                absent = f"missing({key!r})"
            else:
                absent = f"decode{n}(None, {key!r})"
            target = f"v_{f.name}" if f.stored else "_"
            lines += [f"    raw = msg.get({key!r}, MISSING)",
                      f"    {target} = {absent} if raw is MISSING else decode{n}(raw, {key!r})"]
        if self.rest is not None:
            lines.append(f"    v_{self.rest} = {{k: v for k, v in msg.items() if k not in keys}}")
        return lines

    def _compile(self, name: str, *ending: str) -> Any:
        scope: dict[str, Any] = {"MISSING": MISSING, "keys": self.keys, "new": object.__new__,
                                 "setattr": object.__setattr__, "missing": _missing,
                                 "unknown": _unknown}
        head = f"def {name}(cls, msg):" if name == "build" else f"def {name}(msg):"
        source = "\n".join([head, *self._decode_lines(scope), *ending])
        exec(compile(source, f"<wire {name} of {self.rule}>", "exec"), scope)  # noqa: S102
        return scope[name]

    def _compile_encoder(self) -> Callable[[Any], dict[str, Any]]:
        # Fields always sent go into one dict display, or onto a copy of the open body; the
        # others are added when set.
        self._stored()
        scope: dict[str, Any] = {"consts": self.consts}
        always: list[tuple[str, str]] = []
        later: list[str] = []
        for n, f in enumerate(fld for fld in self.fields if fld.stored):
            if f.required and f.when is None:
                always.append((repr(f.wire_key), f.kind.encoding.format(f"obj.{f.name}")))
                continue
            scope[f"when{n}"] = f.when
            when = "" if f.when is None else f" and when{n}(obj)"
            later += [f"    value = obj.{f.name}",
                      f"    if value is not None{when}:",
                      f"        msg[{f.wire_key!r}] = {f.kind.encoding.format('value')}"]
        if self.rest:
            start = [f"    msg = dict(obj.{self.rest})"]
            start += ["    msg.update(consts)"] if self.consts else []
            start += [f"    msg[{key}] = {value}" for key, value in always]
        else:
            items = ["**consts"] if self.consts else []
            items += [f"{key}: {value}" for key, value in always]
            start = [f"    msg = {{{', '.join(items)}}}"]
        source = "\n".join(["def encode(obj):", *start, *later, "    return msg"])
        exec(compile(source, f"<wire encoder of {self.rule}>", "exec"), scope)  # noqa: S102
        encode: Callable[[Any], dict[str, Any]] = scope["encode"]
        return encode


def _missing(key: str) -> NoReturn:
    raise ValidationError(f"missing field {key!r}", field=key)


def _unknown(extra: set[str]) -> NoReturn:
    first = min(extra)
    raise ValidationError(f"unknown field {first!r}", field=first)


class WireMessage:
    """A message whose wire form its class's field table (``wire``) defines."""

    __slots__ = ()
    wire: ClassVar[WireTable]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The compiled codec is the methods themselves: no call through the table.
        if "wire" in cls.__dict__:
            if "to_wire" not in cls.__dict__:
                cls.to_wire = cls.wire.encode  # type: ignore[method-assign, assignment]
            if "from_wire" not in cls.__dict__:
                cls.from_wire = classmethod(cls.wire.build)  # type: ignore[assignment]

    def to_wire(self) -> dict[str, Any]:
        """The CBOR map to send (see :func:`mps_wire.codec.encode`)."""
        return self.wire.encode(self)

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> Self:
        """Validate a decoded map; ValidationError names the bad field."""
        return cls.wire.decode(cls, msg)  # type: ignore[no-any-return]
