"""Users' choices, presence, binding history and eSIM requests (schema version 8)."""

from __future__ import annotations

from collections.abc import Sequence

from broker_bridge.choices import (
    Binding,
    BindingSource,
    EsimAction,
    EsimRequest,
    EsimState,
    PairingChoice,
    Presence,
)
from broker_bridge.storage.core import Row, SqlCore, dump_list, in_list, load_list

_CHOICE_SELECT = ("SELECT pairing_id, contract_id, devices, fields, updated_at, updated_by "
                  "FROM pairing_views")
_BINDING_SELECT = ("SELECT eid, seq, contract_id, at, source, imei, iccid, previous_imei, "
                   "previous_iccid FROM device_bindings")
_REQUEST_COLUMNS = ("id, eid, contract_id, action, iccid, state, requested_by, requested_at, "
                    "expires_at, decided_at, decided_by, counter, order_expires, sent_at, "
                    "finished_at, result, cleared_at")


def _choice(row: Row) -> PairingChoice:
    return PairingChoice(row[0], row[1], None if row[2] is None else load_list(row[2]),
                         frozenset(load_list(row[3])), row[4], row[5])


def _binding(row: Row) -> Binding:
    return Binding(row[0], row[1], row[2], row[3], BindingSource(row[4]), row[5], row[6],
                   row[7], row[8])


def _request(row: Row) -> EsimRequest:
    return EsimRequest(row[0], row[1], row[2], EsimAction(row[3]), row[4], EsimState(row[5]),
                       *row[6:])


class ChoiceQueries(SqlCore):
    """Users' choices, presence, binding history and eSIM requests."""

    def pairing_choice(self, pairing_id: str) -> PairingChoice | None:
        rows = self._read(_CHOICE_SELECT + " WHERE pairing_id = ?", (pairing_id,))
        return _choice(rows[0]) if rows else None

    def pairing_choices(self, contract_id: str) -> dict[str, PairingChoice]:
        rows = self._read(_CHOICE_SELECT + " WHERE contract_id = ?", (contract_id,))
        return {row[0]: _choice(row) for row in rows}

    def all_pairing_choices(self) -> dict[str, PairingChoice]:
        return {row[0]: _choice(row) for row in self._read(_CHOICE_SELECT)}

    def all_presences(self, contracts: Sequence[str] | None = None) -> dict[str, Presence]:
        where, params = in_list("contract_id", contracts)
        sql = "SELECT eid, contract_id, online, since FROM device_presence" + where  # noqa: S608
        rows = self._read(sql, params)
        return {row[0]: Presence(row[0], row[1], bool(row[2]), row[3]) for row in rows}

    def all_bindings(self, contracts: Sequence[str] | None = None
                     ) -> dict[str, list[Binding]]:
        where, params = in_list("contract_id", contracts)
        if where:  # the history of the devices now on those contracts, wherever it was
            where = " WHERE eid IN (SELECT eid FROM devices" + where + ")"  # noqa: S608
        found: dict[str, list[Binding]] = {}
        for row in self._read(_BINDING_SELECT + where + " ORDER BY eid, seq", params):
            found.setdefault(row[0], []).append(_binding(row))
        return found

    def put_pairing_choice(self, choice: PairingChoice) -> None:
        c = choice
        devices = None if c.devices is None else dump_list(c.devices)
        with self.transaction():
            self._execute(
                "INSERT INTO pairing_views (pairing_id, contract_id, devices, fields, "
                "updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pairing_id) "
                "DO UPDATE SET contract_id = excluded.contract_id, devices = excluded.devices, "
                "fields = excluded.fields, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (c.pairing_id, c.contract_id, devices, dump_list(sorted(c.fields)),
                 c.updated_at, c.updated_by))

    def presence(self, eid: str) -> Presence | None:
        rows = self._read("SELECT eid, contract_id, online, since FROM device_presence "
                          "WHERE eid = ?", (eid,))
        return Presence(rows[0][0], rows[0][1], bool(rows[0][2]), rows[0][3]) if rows else None

    def presences(self, contract_id: str) -> dict[str, Presence]:
        rows = self._read("SELECT p.eid, p.contract_id, p.online, p.since FROM device_presence"
                          " p JOIN devices d ON d.eid = p.eid WHERE d.contract_id = ?",
                          (contract_id,))
        return {row[0]: Presence(row[0], row[1], bool(row[2]), row[3]) for row in rows}

    def put_presence(self, presence: Presence) -> bool:
        p = presence
        with self.transaction():
            held = self._execute(self._locking(
                "SELECT contract_id, online FROM device_presence WHERE eid = ?"), (p.eid,))
            if held and held[0][0] == p.contract_id and bool(held[0][1]) == p.online:
                return False
            self._execute(
                "INSERT INTO device_presence (eid, contract_id, online, since, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (eid) DO UPDATE SET "
                "contract_id = excluded.contract_id, online = excluded.online, "
                "since = excluded.since, updated_at = excluded.updated_at",
                (p.eid, p.contract_id, int(p.online), p.since, self._clock()))
        return True

    def add_binding(self, binding: Binding) -> Binding:
        b = binding
        with self.transaction():
            # Numbered in the one statement; writers of one device's changes are already
            # serialised by the lock its registration takes on the device's row.
            seq = int(self._execute(
                "INSERT INTO device_bindings (eid, seq, contract_id, at, source, imei, iccid, "
                "previous_imei, previous_iccid) SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, "
                "?, ?, ?, ? FROM device_bindings WHERE eid = ? RETURNING seq",
                (b.eid, b.contract_id, b.at, b.source.value, b.imei, b.iccid,
                 b.previous_imei, b.previous_iccid, b.eid))[0][0])
        return Binding(b.eid, seq, b.contract_id, b.at, b.source, b.imei, b.iccid,
                       b.previous_imei, b.previous_iccid)

    def bindings(self, eid: str) -> list[Binding]:
        return [_binding(r) for r in self._read(_BINDING_SELECT + " WHERE eid = ? ORDER BY seq",
                                                (eid,))]

    def bindings_of_contract(self, contract_id: str) -> dict[str, list[Binding]]:
        found: dict[str, list[Binding]] = {}
        sql = (_BINDING_SELECT + " WHERE eid IN (SELECT eid FROM devices WHERE "  # noqa: S608
               "contract_id = ?) ORDER BY eid, seq")
        for row in self._read(sql, (contract_id,)):
            found.setdefault(row[0], []).append(_binding(row))
        return found

    def add_esim_request(self, request: EsimRequest) -> None:
        r = request
        with self.transaction():
            self._execute(
                f"INSERT INTO esim_requests ({_REQUEST_COLUMNS}) VALUES "  # noqa: S608 - fixed
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.id, r.eid, r.contract_id, r.action.value, r.iccid, r.state.value,
                 r.requested_by, r.requested_at, r.expires_at, r.decided_at, r.decided_by,
                 r.counter, r.order_expires, r.sent_at, r.finished_at, r.result,
                 r.cleared_at))

    def esim_request(self, request_id: str) -> EsimRequest | None:
        rows = self._read(f"SELECT {_REQUEST_COLUMNS} FROM esim_requests "  # noqa: S608
                          "WHERE id = ?", (request_id,))
        return _request(rows[0]) if rows else None

    def esim_requests(self, *, contract_id: str | None = None, eid: str | None = None,
                      states: Sequence[EsimState] | None = None) -> list[EsimRequest]:
        where: list[str] = []
        params: list[object] = []
        if contract_id is not None:
            where.append("contract_id = ?")
            params.append(contract_id)
        if eid is not None:
            where.append("eid = ?")
            params.append(eid)
        if states is not None:
            where.append(f"state IN ({', '.join('?' for _ in states) or 'NULL'})")
            params.extend(s.value for s in states)
        sql = f"SELECT {_REQUEST_COLUMNS} FROM esim_requests"  # noqa: S608 - fixed words
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_request(r) for r in self._read(sql + " ORDER BY requested_at, id", params)]

    def update_esim_request(self, request: EsimRequest, *, expect: EsimState) -> bool:
        r = request
        with self.transaction():
            rows = self._execute(
                "UPDATE esim_requests SET state = ?, decided_at = ?, decided_by = ?, "
                "counter = ?, order_expires = ?, sent_at = ?, finished_at = ?, result = ?, "
                "cleared_at = ? WHERE id = ? AND state = ? RETURNING id",
                (r.state.value, r.decided_at, r.decided_by, r.counter, r.order_expires,
                 r.sent_at, r.finished_at, r.result, r.cleared_at, r.id, expect.value))
        return bool(rows)

    def next_esim_counter(self, eid: str) -> int:
        with self.transaction():
            self._execute("INSERT INTO esim_counters (eid, value) VALUES (?, 0) "
                          "ON CONFLICT (eid) DO NOTHING", (eid,))
            rows = self._execute("UPDATE esim_counters SET value = value + 1 WHERE eid = ? "
                                 "RETURNING value", (eid,))
        return int(rows[0][0])
