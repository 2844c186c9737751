"""mps_common.record: immutable value classes, compared, hashed and shown by their fields."""

from __future__ import annotations

from typing import ClassVar

import pytest

from mps_common.record import FrozenRecordError, record, replace


@record
class Point:
    x: int
    y: int = 0
    LIMIT: ClassVar[int] = 10

    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


@record
class Point3(Point):
    z: int = 0


def test_fields_defaults_equality_hash_and_repr() -> None:
    p = Point(1, y=-2)
    assert (p.x, p.y, p.norm(), Point(5).y, Point.LIMIT) == (1, -2, 3, 0, 10)
    assert p == Point(1, -2) and p != Point(1, 2) and hash(p) == hash(Point(1, -2))
    assert repr(p) == "Point(x=1, y=-2)"
    assert Point3(1, 2, 3) != Point(1, 2)  # another class is never equal
    assert Point3(1, 2, 3).__match_args__ == ("x", "y", "z")
    match Point(4, 5):
        case Point(a, b):
            assert (a, b) == (4, 5)


def test_records_are_frozen_and_replace_makes_a_copy() -> None:
    p = Point(1, 2)
    with pytest.raises(FrozenRecordError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(FrozenRecordError):
        del p.y
    assert replace(p, y=7) == Point(1, 7) and p == Point(1, 2)
    with pytest.raises(TypeError, match="no field 'w'"):
        replace(p, w=1)
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default"):
        @record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]
