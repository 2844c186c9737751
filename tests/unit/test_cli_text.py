"""The shared text output of every command: tables and times as a person reads them."""

from __future__ import annotations

from mps_common.cli import table, utc_time, width


def test_columns_line_up_on_screen_whatever_the_cells_hold() -> None:
    # East Asian wide characters take two columns, combining marks none (UAX #11).
    rows = [["日本語", "x"], ["e\u0301te\u0301", "y"], ["a-much-longer-name", "z"]]
    lines = table(["NAME", "V"], rows).splitlines()
    where = {width(line[: line.index(mark)]) for line, mark in
             zip(lines, ["V", "x", "y", "z"], strict=True)}
    assert where == {len("a-much-longer-name") + 2}
    assert all(line == line.rstrip() for line in lines)


def test_times_read_as_utc() -> None:
    assert utc_time(0) == "1970-01-01 00:00:00"
    assert utc_time(1_700_000_000_123) == "2023-11-14 22:13:20"
