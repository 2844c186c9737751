"""Operator data import: validation with exact locations, all-or-nothing, idempotence."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.cli import main as bridge_main
from broker_bridge.errors import OperatorDataError, StoreError
from broker_bridge.model import App, Change, Contract, TrustLevel
from broker_bridge.operator import import_operator_file, read_operator_file
from broker_bridge.storage import SqliteStore
from broker_bridge.storage.sql import SqlStore
from tests.helpers import iccid_for, imsi_for
from tests.postgres_support import BACKENDS, open_store

EXAMPLE = Path(__file__).parents[2] / "examples" / "operator-demo.toml"


def document() -> dict[str, Any]:
    """A valid operator document: two contracts, four subscriptions, one app."""
    return {
        "contracts": [
            {"id": "C-1", "holder": "Paul", "msisdns": ["+4915100000001"],
             "subscriptions": [
                 {"iccid": iccid_for(1), "imsi": imsi_for(1), "msisdn": "+4915100000001"},
                 {"iccid": iccid_for(2), "imsi": imsi_for(2)},
             ]},
            {"id": "C-2", "holder": "Lena", "msisdns": ["+4917000000003", "+49 170 00000004"],
             "subscriptions": [
                 {"iccid": iccid_for(3), "imsi": imsi_for(3), "msisdn": "+4917000000003"},
                 {"iccid": iccid_for(4), "imsi": imsi_for(4)},
             ]},
        ],
        "apps": [{"id": "demo-app", "name": "Demo", "trust": "partner",
                  "purposes": ["device-discovery"]}],
    }


def to_toml(doc: dict[str, Any]) -> str:
    """Just enough of a TOML writer for the operator document's shape."""
    def value(v: Any) -> str:
        return "[" + ", ".join(value(x) for x in v) + "]" if isinstance(v, list) else \
            json.dumps(v)

    lines: list[str] = []
    for contract in doc.get("contracts", []):
        lines.append("[[contracts]]")
        lines += [f"{k} = {value(v)}" for k, v in contract.items() if k != "subscriptions"]
        for sub in contract.get("subscriptions", []):
            lines.append("[[contracts.subscriptions]]")
            lines += [f"{k} = {value(v)}" for k, v in sub.items()]
    for app in doc.get("apps", []):
        lines.append("[[apps]]")
        lines += [f"{k} = {value(v)}" for k, v in app.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    with open_store(request.param, tmp_path) as s:
        yield s


def write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if name.endswith(".json") else to_toml(doc))
    return path


def assert_empty(store: SqliteStore) -> None:
    for cid in ("C-1", "C-2"):
        assert store.contract(cid) is None
        assert store.subscriptions_of_contract(cid) == []
    assert store.contract_by_msisdn("+4915100000001") is None
    assert store.apps() == []


@pytest.mark.parametrize("name", ["operator.toml", "operator.json"])
def test_a_good_file_is_imported_and_reimporting_changes_nothing(
        store: SqliteStore, tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, document())
    report = import_operator_file(store, path)
    assert report.changes["contracts"][Change.ADDED] == ["C-1", "C-2"]
    assert sorted(report.changes["numbers"][Change.ADDED]) == [
        "+4915100000001", "+4917000000003", "+4917000000004"]  # separators removed
    assert report.changes["subscriptions"][Change.ADDED] == [iccid_for(n) for n in (1, 2, 3, 4)]
    assert report.changes["apps"][Change.ADDED] == ["demo-app"]
    assert store.contract_by_msisdn("+4917000000004") == Contract("C-2", "Lena")
    sub = store.subscription_by_iccid(iccid_for(3))
    assert sub is not None and (sub.imsi, sub.msisdn, sub.contract_id) == (
        imsi_for(3), "+4917000000003", "C-2")
    assert store.app("demo-app") == App("demo-app", "Demo", TrustLevel.PARTNER,
                                        ("device-discovery",), standing_consent=True)

    again = import_operator_file(store, path)
    assert again.count(Change.ADDED) == again.count(Change.UPDATED) == 0
    assert again.count(Change.UNCHANGED) == report.count(Change.ADDED) == 10


def test_changed_entries_are_updated(store: SqliteStore, tmp_path: Path) -> None:
    import_operator_file(store, write(tmp_path, "a.toml", document()))
    doc = document()
    doc["contracts"][0]["holder"] = "Paul Becker"
    doc["contracts"][1]["subscriptions"][1]["imsi"] = imsi_for(44)
    report = import_operator_file(store, write(tmp_path, "b.toml", doc))
    assert report.changes["contracts"][Change.UPDATED] == ["C-1"]
    assert report.changes["subscriptions"][Change.UPDATED] == [iccid_for(4)]
    assert report.count(Change.ADDED) == 0


def test_the_example_file_imports(store: SqliteStore) -> None:
    report = import_operator_file(store, EXAMPLE)
    assert report.count(Change.UPDATED) == 0
    assert report.changes["contracts"][Change.ADDED] == ["C-1001", "C-1002"]
    assert store.contract_by_msisdn("+4915112345678") == Contract("C-1001", "Paul Becker")


@pytest.mark.parametrize("content", [
    pytest.param(lambda doc: json.dumps(doc, indent=2), id="json"),
    pytest.param(to_toml, id="toml"),
])
def test_the_format_of_a_file_without_suffix_is_sniffed(
        tmp_path: Path, content: Any) -> None:
    path = tmp_path / "operator-data"
    path.write_text(content(document()))
    data = read_operator_file(path)
    assert [c.contract.id for c in data.contracts] == ["C-1", "C-2"]


def bad_luhn(doc: dict[str, Any]) -> None:
    iccid = iccid_for(2)
    doc["contracts"][0]["subscriptions"][1]["iccid"] = iccid[:-1] + str((int(iccid[-1]) + 1) % 10)


def bad_msisdn(doc: dict[str, Any]) -> None:
    doc["contracts"][1]["msisdns"][0] = "0170 1234567"


def duplicate_iccid(doc: dict[str, Any]) -> None:
    doc["contracts"][1]["subscriptions"][0]["iccid"] = iccid_for(1)


def number_of_two_contracts(doc: dict[str, Any]) -> None:
    doc["contracts"][1]["subscriptions"][1]["msisdn"] = "+4915100000001"


def unknown_trust(doc: dict[str, Any]) -> None:
    doc["apps"][0]["trust"] = "root"


def bad_imsi(doc: dict[str, Any]) -> None:
    doc["contracts"][0]["subscriptions"][0]["imsi"] = "26201x"


def typo_key(doc: dict[str, Any]) -> None:
    doc["contracts"][0]["subscriptions"][1]["icc_id"] = iccid_for(9)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
@pytest.mark.parametrize(("mutate", "where", "what"), [
    (bad_luhn, "contracts[0].subscriptions[1].iccid", "fails its Luhn check digit"),
    (bad_msisdn, "contracts[1].msisdns[0]", "E.164"),
    (duplicate_iccid, "contracts[1].subscriptions[0].iccid",
     "is already listed at contracts[0].subscriptions[0].iccid"),
    (number_of_two_contracts, "contracts[1].subscriptions[1].msisdn",
     "already listed for contract C-1"),
    (unknown_trust, "apps[0].trust", "unknown trust level 'root'"),
    (bad_imsi, "contracts[0].subscriptions[0].imsi", "6 to 15 digits"),
    (typo_key, "contracts[0].subscriptions[1].icc_id", "is not a known setting"),
])
def test_a_bad_entry_is_named_exactly_and_nothing_is_stored(
        store: SqliteStore, tmp_path: Path, suffix: str, mutate: Any, where: str,
        what: str) -> None:
    doc = document()
    mutate(doc)
    path = write(tmp_path, "operator" + suffix, doc)
    with pytest.raises(OperatorDataError) as caught:
        import_operator_file(store, path)
    assert [p.where for p in caught.value.problems] == [where]
    assert what in caught.value.problems[0].what
    assert f"{path}: {where}: " in str(caught.value)
    assert_empty(store)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    doc = document()
    for mutate in (bad_luhn, bad_msisdn, unknown_trust):
        mutate(doc)
    doc["contracts"][1]["id"] = "C 2"
    del doc["contracts"][0]["holder"]
    with pytest.raises(OperatorDataError) as caught:
        read_operator_file(write(tmp_path, "x.json", doc))
    assert {p.where for p in caught.value.problems} == {
        "contracts[0].holder", "contracts[0].subscriptions[1].iccid", "contracts[1].id",
        "contracts[1].msisdns[0]", "apps[0].trust"}


@pytest.mark.parametrize(("name", "text", "what"), [
    ("a.toml", "[[contracts]\nid = 1", "not valid TOML"),
    ("a.json", '{"contracts": [', "not valid JSON"),
    ("a.json", '{"apps": [], "apps": []}', "appears twice"),
    ("a.json", '[1, 2]', "must be a table"),
    ("a.toml", 'contracts = "C-1"', "must be a list"),
])
def test_unreadable_documents(tmp_path: Path, name: str, text: str, what: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(OperatorDataError, match=what) as caught:
        read_operator_file(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_store_failure_half_way_stores_nothing(
        store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(app: App) -> Change:
        raise StoreError("disk full")

    monkeypatch.setattr(store, "upsert_app", broken)  # the last step of an import
    with pytest.raises(StoreError, match="disk full"):
        import_operator_file(store, write(tmp_path, "a.toml", document()))
    assert_empty(store)


def test_a_bad_file_leaves_earlier_data_alone(store: SqliteStore, tmp_path: Path) -> None:
    import_operator_file(store, write(tmp_path, "good.toml", document()))
    doc = document()
    doc["contracts"][0]["holder"] = "Changed"
    bad_msisdn(doc)
    with pytest.raises(OperatorDataError):
        import_operator_file(store, write(tmp_path, "bad.toml", doc))
    assert store.contract("C-1") == Contract("C-1", "Paul")


def test_the_import_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "sub" / "registry.db"  # created, directory included
    path = write(tmp_path, "operator.toml", document())
    assert bridge_main(["operator", "import", str(path), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "added    contract C-1" in out
    assert "added    subscription " + iccid_for(4) in out

    assert bridge_main(["operator", "import", str(path), "--db", str(db), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["imported"] is True
    assert result["contracts"] == {"added": [], "updated": [], "unchanged": ["C-1", "C-2"]}


def test_the_import_command_refuses_a_bad_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = document()
    duplicate_iccid(doc)
    path = write(tmp_path, "operator.toml", doc)
    db = tmp_path / "registry.db"
    assert bridge_main(["operator", "import", str(path), "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: contracts[1].subscriptions[0].iccid: ICCID" in err
    assert "nothing imported" in err
    with SqliteStore(db) as s:
        assert_empty(s)


def test_the_import_command_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MPS_DB", raising=False)
    monkeypatch.delenv("MPS_CONFIG", raising=False)
    path = write(tmp_path, "operator.toml", document())
    assert bridge_main(["operator", "import", str(path)]) == 2
    assert "--db" in capsys.readouterr().err
    assert bridge_main(["operator", "import", str(tmp_path / "missing.toml"), "--db",
                        str(tmp_path / "r.db")]) == 1
    assert "cannot read" in capsys.readouterr().err
    # the database may come from the environment instead
    monkeypatch.setenv("MPS_DB", str(tmp_path / "env.db"))
    assert bridge_main(["operator", "import", str(path)]) == 0
    assert (tmp_path / "env.db").exists()


def test_toml_writer_matches_the_document() -> None:
    assert tomllib.loads(to_toml(document())) == document()
