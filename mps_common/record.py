"""Frozen value classes that cost little to define.

``@record`` turns a class with annotated fields into an immutable value, as
``@dataclass(frozen=True)`` does: an ``__init__`` taking the fields in order (defaults
allowed), equality and hashing by field values, a readable ``repr`` and ``__match_args__``.
A dataclass generates and compiles six methods per class and ``slots=True`` builds the class
twice, about half a millisecond each; a command line that defines fifty of them spends
its start-up doing that. A record compiles one ``__init__`` and shares everything else.

Fields are the class's own annotations after those of a record it derives from;
``ClassVar`` annotations are not fields. A class may define its own ``__eq__`` (with
its ``__hash__``) or ``__repr__``. A default must be immutable (there is no
``default_factory``).
"""

from __future__ import annotations

from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")
_NONE = object()


class FrozenRecordError(AttributeError):
    """Raised on an attempt to change or delete a field of a record."""


def _fields(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in self.__record_fields__)


def _eq(self: Any, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _fields(self) == _fields(other)


def _hash(self: Any) -> int:
    return hash(_fields(self))


def _repr(self: Any) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_fields__)
    return f"{type(self).__qualname__}({inner})"


def _setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r} of a {type(self).__name__}")


def _delattr(self: Any, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r} of a {type(self).__name__}")


def _own_fields(cls: type) -> list[str]:
    # Not inspect.get_annotations: importing inspect costs more than a record saves.
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    return [name for name, kind in annotations.items()
            if not str(kind).startswith(("ClassVar", "typing.ClassVar"))]


def _init(cls: type, names: tuple[str, ...], defaults: dict[str, Any]) -> Any:
    params, body = [], []
    for name in names:
        params.append(f"{name}=_d_{name}" if name in defaults else name)
        body.append(f"  _set(self, {name!r}, {name})")
    if any(n in defaults for n in names):
        seen_default = False
        for name in names:
            if name in defaults:
                seen_default = True
            elif seen_default:
                raise TypeError(f"{cls.__name__}: field {name!r} without a default follows "
                                "one with a default")
    source = (f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["  pass"])
              + "\n")
    namespace: dict[str, Any] = {"_set": object.__setattr__,
                                 **{f"_d_{n}": v for n, v in defaults.items()}}
    exec(source, namespace)  # noqa: S102 - our own source text, field names only
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


@dataclass_transform(frozen_default=True)
def record(cls: type[_T]) -> type[_T]:
    """Make ``cls`` an immutable value class (see the module documentation)."""
    inherited: tuple[str, ...] = getattr(cls, "__record_fields__", ())
    own = [n for n in _own_fields(cls) if n not in inherited]
    names = (*inherited, *own)
    defaults = dict(getattr(cls, "__record_defaults__", {}))
    for name in own:
        value = cls.__dict__.get(name, _NONE)
        if value is not _NONE:
            defaults[name] = value
            delattr(cls, name)  # the instance's value, never the class's, is read
    namespace = {"__init__": _init(cls, names, defaults), "__setattr__": _setattr,
                 "__delattr__": _delattr, "__record_fields__": names,
                 "__record_defaults__": defaults, "__match_args__": names}
    # A class may define its own equality (and so hashing) or repr.
    for key, shared in (("__eq__", _eq), ("__hash__", _hash), ("__repr__", _repr)):
        if key == "__hash__" and "__eq__" in cls.__dict__:
            continue
        if key not in cls.__dict__:
            namespace[key] = shared
    for key, value in namespace.items():
        setattr(cls, key, value)
    return cls


def replace(value: _T, **changes: Any) -> _T:
    """A copy of record ``value`` with some fields changed."""
    current = {name: getattr(value, name) for name in value.__record_fields__}  # type: ignore[attr-defined]
    unknown = set(changes) - set(current)
    if unknown:
        raise TypeError(f"{type(value).__name__} has no field {sorted(unknown)[0]!r}")
    return type(value)(**{**current, **changes})
