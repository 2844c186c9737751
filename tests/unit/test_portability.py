"""Number portability: the operator's list (number -> operator, with validity times) is
imported whole or not at all, and the registry answers by it. A number ported out leaves
its contract and ends the pairings made with it (``pairing-ended``, ``number-ported``); a
number ported in with a contract is filed under it; apps that need consent still get the
decoy for a number served elsewhere (no enumeration before consent)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker_bridge.cli import main as bridge_main
from broker_bridge.errors import OperatorDataError
from broker_bridge.model import OtherOperator, PairingState
from broker_bridge.portability import PortEntry, parse_time, read_portability
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from mps_wire.messages import DevicesRequest, EventKind, PairRequest
from tests.helpers import LENA, PAUL, PAUL_MSISDN, paul_and_apps
from tests.postgres_support import BACKENDS, open_store
from tests.unit.test_no_enumeration import STRANGER, Clock, shape

IN_RANGE = "+4917012340000"  # in other's prefix range
NOW = 1_800_000_000_000
HEADER = "msisdn,operator,valid_from,valid_until,contract\n"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path, clock: Clock) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db", clock=clock) as s:
        paul_and_apps(s)
        s.upsert_operator(OtherOperator("other", "Other Mobile", "mqtts://other.example:8883",
                                        number_prefixes=("+49170",)))
        yield s


@pytest.fixture
def registry(db: SqliteStore, clock: Clock) -> Registry:
    return Registry(db, clock=clock)


def write(tmp_path: Path, text: str, name: str = "ports.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_times_are_iso_8601_with_a_zone_or_milliseconds() -> None:
    assert parse_time("2027-01-15T08:00:00Z") == 1_799_999_200_000 + 800_000
    assert parse_time("2027-01-15T09:00:00+01:00") == parse_time("2027-01-15T08:00:00Z")
    assert parse_time("1800000000000") == parse_time(1_800_000_000_000) == NOW
    assert parse_time("") is None
    for bad in ("2027-01-15T08:00:00", "yesterday", -1, 1.5):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_a_bad_file_names_every_problem_and_stores_nothing(
        tmp_path: Path, registry: Registry, db: SqliteStore) -> None:
    good = write(tmp_path, HEADER + f"{STRANGER},other,{NOW - 1},,\n", "good.csv")
    registry.import_portability(good)
    bad = write(tmp_path, HEADER + "\n".join([
        "+49151 111,other,0,,",                       # line 2: fine (normalised)
        "0151111,other,0,,",                          # line 3: not E.164
        "+4915122,other,,,",                          # line 4: no start
        "+4915133,other,10,5,",                       # line 5: ends before it starts
        "+4915144,other,0,,C-1",                      # line 6: a contract for a port-out
        "+49151111,other,5,,",                        # overlaps line 2's open period
    ]) + "\n")
    with pytest.raises(OperatorDataError) as caught:
        registry.import_portability(bad)
    where = [p.where for p in caught.value.problems]
    assert where == ["line 3", "line 4", "line 5", "line 6", "+49151111"]
    unknown = write(tmp_path, HEADER + f"{STRANGER},nobody,0,,\n{IN_RANGE},home,0,,C-NONE\n",
                    "unknown.csv")
    with pytest.raises(OperatorDataError, match="unknown operator 'nobody'") as caught:
        registry.import_portability(unknown)
    assert "unknown contract 'C-NONE'" in str(caught.value)
    # Nothing of either file was stored: the good list is still in place.
    assert db.portability_count() == 1 and db.port_entry(STRANGER, NOW) is not None


def test_json_lists_read_like_csv(tmp_path: Path) -> None:
    rows = [{"msisdn": PAUL_MSISDN, "operator": "other", "valid_from": "2027-01-01T00:00:00Z"},
            {"msisdn": IN_RANGE, "operator": "mine", "valid_from": 0, "contract": LENA}]
    path = write(tmp_path, json.dumps({"numbers": rows}), "ports.json")
    assert read_portability(path, home="mine") == [
        PortEntry(PAUL_MSISDN, 1_798_761_600_000, None, "other", None),
        PortEntry(IN_RANGE, 0, None, None, LENA)]
    with pytest.raises(OperatorDataError, match=r"numbers\[0\]: unknown field 'when'"):
        read_portability(write(tmp_path, '[{"msisdn": "+491511", "when": 1}]', "x.json"))


def test_porting_out_redirects_and_ends_the_pairings_made_with_the_number(
        tmp_path: Path, registry: Registry, db: SqliteStore) -> None:
    paired = registry.app_request("care", PairRequest(PAUL_MSISDN, "support")).reply
    assert paired.body["state"] == "active"
    report, effects = registry.import_portability(
        write(tmp_path, HEADER + f"{PAUL_MSISDN},other,{NOW - 1000},,\n"))
    assert (report.ported_out, report.pairings_ended) == ((PAUL_MSISDN,), 1)
    assert db.contract_by_msisdn(PAUL_MSISDN) is None
    (pairing,) = db.pairings(app_id="care")
    assert (pairing.state, pairing.end_reason) == (PairingState.ENDED, "number-ported")
    ended = [e for e in db.events_since("care", 0) if e.kind is EventKind.PAIRING_ENDED]
    assert [e.payload["reason"] for e in ended] == ["number-ported"]
    assert len(effects.events) >= 1
    # A partner is sent to the other operator's registry ...
    redirect = registry.app_request("care", DevicesRequest(PAUL_MSISDN)).reply.to_wire()
    assert (redirect["status"], redirect["operator"], redirect["registry"]) == (
        "redirect", "other", "mqtts://other.example:8883")
    # ... an app that needs consent gets the same answer as for a stranger's number.
    health = [registry.app_request("health", PairRequest(n, "health-monitoring")
                                   ).reply.to_wire() for n in (PAUL_MSISDN, STRANGER)]
    assert shape(health[0]) == shape(health[1])


def test_porting_in_files_the_number_and_outranks_the_prefix_range(
        tmp_path: Path, registry: Registry, db: SqliteStore) -> None:
    assert registry.route(IN_RANGE).status.value == "redirect"  # type: ignore[union-attr]
    report, _ = registry.import_portability(
        write(tmp_path, HEADER + f"{IN_RANGE},home,0,,{LENA}\n"))
    assert report.ported_in == (IN_RANGE,)
    contract = registry.route(IN_RANGE)
    assert getattr(contract, "id", None) == LENA


def test_a_port_that_comes_due_later_is_applied_by_housekeeping(
        tmp_path: Path, registry: Registry, db: SqliteStore, clock: Clock) -> None:
    registry.import_portability(
        write(tmp_path, HEADER + f"{PAUL_MSISDN},other,{clock.now + 60_000},,\n"))
    assert getattr(registry.route(PAUL_MSISDN), "id", None) == PAUL
    registry.expire_prompts()
    clock.now += 61_000
    # The list answers at once; housekeeping unfiles the number on its next round.
    assert registry.route(PAUL_MSISDN).status.value == "redirect"  # type: ignore[union-attr]
    assert db.contract_by_msisdn(PAUL_MSISDN) == db.contract(PAUL)
    registry.expire_prompts()
    assert db.contract_by_msisdn(PAUL_MSISDN) is None


def test_the_command_imports_and_shows(tmp_path: Path, db: SqliteStore,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    dbpath = str(tmp_path / "registry.db")
    path = write(tmp_path, HEADER + f"{STRANGER},other,0,,\n")
    assert bridge_main(["portability", "import", str(path), "--db", dbpath]) == 0
    assert "imported 1 entries" in capsys.readouterr().out
    assert bridge_main(["portability", "show", STRANGER, "--db", dbpath]) == 0
    assert "operator other, from 1970-01-01 00:00:00 UTC until open end" in (
        capsys.readouterr().out)
    bad = write(tmp_path, HEADER + "0049,other,0,,\n", "bad.csv")
    assert bridge_main(["portability", "import", str(bad), "--db", dbpath]) == 1
    assert "nothing imported" in capsys.readouterr().err


def test_the_bench_entry_imports_and_routes_by_the_list(tmp_path: Path) -> None:
    # Structure only (the 1,000,000-number figures come from mps-bench portability).
    from mps_bench.portability import run

    figures = run(3000, 40, 7, tmp_path)
    assert figures["numbers"] == 3000
    assert set(figures["route_listed"]) == {"p50_us", "p99_us", "mean_us"}


def test_lookups_use_the_index(db: SqliteStore) -> None:
    plan = db._read("EXPLAIN QUERY PLAN SELECT msisdn, valid_from, valid_until, operator_id, "
                    "contract_id FROM portability WHERE msisdn = ? AND valid_from <= ? "
                    "AND (valid_until IS NULL OR valid_until > ?) ORDER BY valid_from DESC "
                    "LIMIT 1", (PAUL_MSISDN, NOW, NOW))
    assert any("USING INDEX" in str(row[-1]) or "PRIMARY KEY" in str(row[-1])
               for row in plan), plan


@pytest.mark.parametrize("kind", BACKENDS)
def test_both_stores_keep_and_apply_the_list(kind: str, tmp_path: Path) -> None:
    with open_store(kind, tmp_path) as store:
        paul_and_apps(store)
        store.upsert_operator(OtherOperator("other", "Other Mobile", "mqtt://other:1883"))
        registry = Registry(store)
        assert registry.app_request("care", PairRequest(PAUL_MSISDN, "support")).reply.is_ok
        report, _ = registry.import_portability(
            write(tmp_path, HEADER + f"{PAUL_MSISDN},other,0,,\n{IN_RANGE},home,0,,{LENA}\n"))
        assert (report.ported_out, report.ported_in, report.pairings_ended) == (
            (PAUL_MSISDN,), (IN_RANGE,), 1)
        assert store.port_entry(PAUL_MSISDN, NOW) == PortEntry(PAUL_MSISDN, 0, None, "other",
                                                               None)
        store.put_user_ref("care", "c-x", PAUL)
        store.put_user_ref("care", "c-x", PAUL)  # again: no error
        assert store.user_ref_contract("care", "c-x") == PAUL
