"""Devices, the SM-DP+'s installations, device keys and the replay state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from broker_bridge.errors import UnknownSubscriptionError
from broker_bridge.model import (
    Change,
    Device,
    DeviceKey,
    Installation,
    RegistrationFacts,
    RegistrationOutcome,
    Subscription,
    device_changes,
)
from broker_bridge.storage.core import Row, SqlCore, dump_list, in_list, load_list
from mps_wire.messages import DeviceInfo, ModelInfo, RegistrationResult

_DEVICE_SELECT = (
    "SELECT d.eid, d.contract_id, d.iccid, d.imei, d.imsi, s.msisdn, d.ip, d.capabilities, "
    "d.manufacturer, d.model, d.revision, d.profile, d.last_seq, d.device_ts, "
    "d.registered_at, d.updated_at FROM devices d LEFT JOIN subscriptions s "
    "ON s.iccid = d.iccid"
)


# The one-row query behind registration_facts: each table joined on the device's EID or the
# profile's ICCID, both given as parameters (typed, for PostgreSQL).
_FACTS_SELECT = (
    "SELECT k.public_key, k.kid, k.enrolled_at, k.enrolled_by, q.last_seq, q.digest, "
    "s.iccid, s.imsi, s.msisdn, s.contract_id, i.iccid, i.eid, i.txn, i.smdp, i.ts, "
    "(SELECT MIN(d.eid) FROM devices d WHERE d.iccid = x.iccid AND d.eid <> x.eid) "
    "FROM (SELECT CAST(? AS TEXT) AS eid, CAST(? AS TEXT) AS iccid) x "
    "LEFT JOIN device_keys k ON k.eid = x.eid "
    "LEFT JOIN device_sequences q ON q.eid = x.eid "
    "LEFT JOIN subscriptions s ON s.iccid = x.iccid "
    "LEFT JOIN installations i ON i.iccid = x.iccid"
)


def _device(row: Row) -> Device:
    return Device(
        eid=row[0], contract_id=row[1], iccid=row[2], imei=row[3], imsi=row[4], msisdn=row[5],
        ip=load_list(row[6]), capabilities=load_list(row[7]),
        model=ModelInfo(row[8], row[9], row[10]), profile=row[11], last_seq=row[12],
        device_ts=row[13], registered_at=row[14], updated_at=row[15],
    )


def _device_key(row: Row) -> DeviceKey:
    return DeviceKey(eid=row[0], public_key=bytes.fromhex(row[1]), kid=bytes.fromhex(row[2]),
                     enrolled_at=row[3], enrolled_by=row[4])


class DeviceQueries(SqlCore):
    """Devices, the SM-DP+'s installations, device keys and the replay state."""

    def register_device(self, info: DeviceInfo, *, now: int | None = None,
                        subscription: Subscription | None = None) -> RegistrationOutcome:
        if subscription is not None and subscription.iccid != info.iccid:
            raise ValueError(f"subscription {subscription.iccid} is not the device's "
                             f"{info.iccid}")
        with self.transaction():
            sub = subscription or self.subscription_by_iccid(info.iccid)
            if sub is None:
                raise UnknownSubscriptionError(info.iccid)
            # The IMSI is the operator's, whatever the device sent.
            if info.imsi != sub.imsi:
                info = replace(info, imsi=sub.imsi)
            rows = self._execute(self._locking(
                "SELECT eid, contract_id, iccid, imei, imsi, NULL, ip, capabilities, "
                "manufacturer, model, revision, profile, last_seq, device_ts, registered_at, "
                "updated_at FROM devices WHERE eid = ?"), (info.device_id,))
            stamp = self._clock() if now is None else now
            if not rows:
                device = self._new_device(info, sub, stamp, stamp)
                self._execute(
                    "INSERT INTO devices (eid, contract_id, iccid, imei, imsi, ip, capabilities,"
                    " manufacturer, model, revision, profile, last_seq, device_ts, "
                    "registered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?)", self._device_params(device))
                return RegistrationOutcome(RegistrationResult.REGISTERED, sub.contract_id, device)
            stored = _device(rows[0])
            if (stored.contract_id == sub.contract_id
                    and stored.as_info().identity_key() == info.identity_key()):
                # A repeat (QoS 1 redelivery, agent restart): only the freshest sequence
                # number and device clock are kept, for replay checks.
                if info.seq > stored.last_seq:
                    self._execute("UPDATE devices SET last_seq = ?, device_ts = ? WHERE eid = ?",
                                  (info.seq, info.ts, info.device_id))
                    stored = replace(stored, last_seq=info.seq, device_ts=info.ts)
                stored = replace(stored, msisdn=sub.msisdn)
                return RegistrationOutcome(RegistrationResult.UNCHANGED, sub.contract_id, stored)
            old_sub = self.subscription_by_iccid(stored.iccid)
            previous = replace(stored, msisdn=old_sub.msisdn if old_sub else None)
            device = self._new_device(info, sub, stored.registered_at, stamp)
            self._execute(
                "UPDATE devices SET contract_id = ?, iccid = ?, imei = ?, imsi = ?, ip = ?, "
                "capabilities = ?, manufacturer = ?, model = ?, revision = ?, profile = ?, "
                "last_seq = ?, device_ts = ?, registered_at = ?, updated_at = ? WHERE eid = ?",
                (*self._device_params(device)[1:], device.eid))
            return RegistrationOutcome(RegistrationResult.UPDATED, sub.contract_id, device,
                                       previous=previous,
                                       changes=device_changes(previous, device))

    @staticmethod
    def _new_device(info: DeviceInfo, sub: Subscription, registered_at: int, updated_at: int
                    ) -> Device:
        return Device(
            eid=info.device_id, contract_id=sub.contract_id, iccid=info.iccid, imei=info.imei,
            imsi=sub.imsi, msisdn=sub.msisdn, ip=info.ip, capabilities=info.capabilities,
            model=info.model, profile=info.profile, last_seq=info.seq, device_ts=info.ts,
            registered_at=registered_at, updated_at=updated_at,
        )

    @staticmethod
    def _device_params(d: Device) -> tuple[object, ...]:
        return (d.eid, d.contract_id, d.iccid, d.imei, d.imsi, dump_list(d.ip),
                dump_list(d.capabilities), d.model.manufacturer, d.model.model,
                d.model.revision, d.profile, d.last_seq, d.device_ts, d.registered_at,
                d.updated_at)

    def device(self, eid: str) -> Device | None:
        rows = self._read(_DEVICE_SELECT + " WHERE d.eid = ?", (eid,))
        return _device(rows[0]) if rows else None

    def devices_of_contract(self, contract_id: str) -> list[Device]:
        rows = self._read(_DEVICE_SELECT + " WHERE d.contract_id = ? "
                          "ORDER BY d.registered_at, d.eid", (contract_id,))
        return [_device(row) for row in rows]

    def devices_by_contract(self, contracts: Sequence[str] | None = None
                            ) -> dict[str, list[Device]]:
        where, params = in_list("d.contract_id", contracts)
        found: dict[str, list[Device]] = {}
        for row in self._read(_DEVICE_SELECT + where + " ORDER BY d.contract_id, "
                              "d.registered_at, d.eid", params):
            device = _device(row)
            found.setdefault(device.contract_id, []).append(device)
        return found

    def device_count(self) -> int:
        rows = self._read("SELECT COUNT(*) FROM devices")
        return int(rows[0][0])

    def devices_by_iccid(self, iccid: str) -> list[Device]:
        rows = self._read(_DEVICE_SELECT + " WHERE d.iccid = ? ORDER BY d.eid", (iccid,))
        return [_device(row) for row in rows]

    def remove_device(self, eid: str) -> bool:
        with self.transaction():
            rows = self._execute("SELECT 1 FROM devices WHERE eid = ?", (eid,))
            if rows:
                self._execute("DELETE FROM devices WHERE eid = ?", (eid,))
            return bool(rows)

    def record_installation(self, installation: Installation, *, rebind: bool = False
                            ) -> Change:
        i = installation
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT eid, txn, ts FROM installations WHERE iccid = ?"), (i.iccid,))
            now = self._clock()
            if not rows:
                self._execute("INSERT INTO installations (iccid, eid, txn, smdp, ts, "
                              "recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
                              (i.iccid, i.eid, i.transaction, i.smdp, i.ts, now))
                return Change.ADDED
            eid, txn, ts = rows[0]
            if not rebind and (txn == i.transaction or ts > i.ts):
                return Change.UNCHANGED  # a repeat, or older than what is known
            self._execute("UPDATE installations SET eid = ?, txn = ?, smdp = ?, ts = ?, "
                          "recorded_at = ? WHERE iccid = ?",
                          (i.eid, i.transaction, i.smdp, i.ts, now, i.iccid))
            return Change.UPDATED if eid != i.eid or rebind else Change.UNCHANGED

    def installation(self, iccid: str) -> Installation | None:
        rows = self._read("SELECT iccid, eid, txn, smdp, ts FROM installations "
                          "WHERE iccid = ?", (iccid,))
        return Installation(*rows[0]) if rows else None

    def installations_on(self, eid: str) -> list[Installation]:
        rows = self._read("SELECT iccid, eid, txn, smdp, ts FROM installations "
                          "WHERE eid = ? ORDER BY iccid", (eid,))
        return [Installation(*row) for row in rows]

    def remove_installation(self, iccid: str, eid: str, *, ts: int) -> bool:
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT eid, ts FROM installations WHERE iccid = ?"), (iccid,))
            if not rows or rows[0][0] != eid or rows[0][1] > ts:
                return False
            self._execute("DELETE FROM installations WHERE iccid = ?", (iccid,))
            return True

    def put_device_key(self, key: DeviceKey) -> Change:
        with self.transaction():
            rows = self._execute(self._locking(
                "SELECT public_key FROM device_keys WHERE eid = ?"), (key.eid,))
            if not rows:
                self._execute("INSERT INTO device_keys (eid, public_key, kid, enrolled_at, "
                              "enrolled_by) VALUES (?, ?, ?, ?, ?)",
                              (key.eid, key.public_key.hex(), key.kid.hex(), key.enrolled_at,
                               key.enrolled_by))
                return Change.ADDED
            if rows[0][0] == key.public_key.hex():
                return Change.UNCHANGED
            self._execute("UPDATE device_keys SET public_key = ?, kid = ?, enrolled_at = ?, "
                          "enrolled_by = ? WHERE eid = ?",
                          (key.public_key.hex(), key.kid.hex(), key.enrolled_at,
                           key.enrolled_by, key.eid))
            return Change.UPDATED

    def device_key(self, eid: str) -> DeviceKey | None:
        rows = self._read("SELECT eid, public_key, kid, enrolled_at, enrolled_by "
                          "FROM device_keys WHERE eid = ?", (eid,))
        return _device_key(rows[0]) if rows else None

    def remove_device_key(self, eid: str) -> bool:
        with self.transaction():
            rows = self._execute("SELECT 1 FROM device_keys WHERE eid = ?", (eid,))
            if rows:
                self._execute("DELETE FROM device_keys WHERE eid = ?", (eid,))
            return bool(rows)

    def device_keys(self) -> list[DeviceKey]:
        rows = self._read("SELECT eid, public_key, kid, enrolled_at, enrolled_by "
                          "FROM device_keys ORDER BY eid")
        return [_device_key(row) for row in rows]

    def registration_facts(self, eid: str, iccid: str) -> RegistrationFacts:
        # One statement instead of five: a registration's checks read all of it.
        rows = self._read(_FACTS_SELECT, (eid, iccid))
        row = rows[0]
        key, last_seq = row[0], row[4]
        return RegistrationFacts(
            key=None if key is None else DeviceKey(eid, bytes.fromhex(key),
                                                   bytes.fromhex(row[1]), row[2], row[3]),
            last=None if last_seq is None else (int(last_seq), str(row[5])),
            subscription=None if row[6] is None else Subscription(*row[6:10]),
            installation=None if row[10] is None else Installation(*row[10:15]),
            other_holder=row[15])

    def last_registration(self, eid: str) -> tuple[int, str] | None:
        rows = self._read("SELECT last_seq, digest FROM device_sequences WHERE eid = ?",
                          (eid,))
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def note_registration(self, eid: str, seq: int, digest: str, *, now: int | None = None
                          ) -> None:
        stamp = self._clock() if now is None else now
        with self.transaction():
            self._execute("INSERT INTO device_sequences (eid, last_seq, digest, updated_at) "
                          "VALUES (?, ?, ?, ?) ON CONFLICT (eid) DO UPDATE SET "
                          "last_seq = excluded.last_seq, digest = excluded.digest, "
                          "updated_at = excluded.updated_at", (eid, seq, digest, stamp))
