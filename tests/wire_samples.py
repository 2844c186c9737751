"""Valid sample messages for tests: one or more of every message type of the contract."""

from __future__ import annotations

from typing import Any

from mps_wire.errors import ErrorCode
from mps_wire.fields import WireMessage
from mps_wire.identifiers import make_eid, make_iccid, make_imei
from mps_wire.messages import (
    ConsentAnswerRequest,
    ConsentListRequest,
    ConsentWithdrawRequest,
    Decision,
    DeviceInfo,
    DevicesRequest,
    EventKind,
    EventsSinceRequest,
    InstallationOutcome,
    InstallationResult,
    ModelInfo,
    OperatorOp,
    OperatorRequest,
    PairRequest,
    ProfileChange,
    ProfileOutcome,
    Reply,
    Status,
    UnpairRequest,
)
from mps_wire.records import DeviceRecord, Event


def sample_device(n: int = 1, **overrides: Any) -> DeviceInfo:
    """A valid DeviceInfo whose identifiers are derived from ``n``."""
    fields: dict[str, Any] = {
        "eid": make_eid(f"89049032{n:022d}"),
        "imei": make_imei("35209900", f"{n:06d}"),
        "iccid": make_iccid(f"894900{n:012d}"),
        "imsi": f"26201{n:010d}",
        "ip": ("10.0.0.1",),
        "capabilities": ("lte", "gps"),
        "model": ModelInfo("Quectel", "EC25", "EC25EFAR06A06M4G"),
        "profile": "emulated-emu",
        "seq": 1,
        "ts": 1_700_000_000_000,
    }
    fields.update(overrides)
    return DeviceInfo(**fields)


def sample_record(n: int = 1, *, partner: bool = True) -> DeviceRecord:
    """A device record as an app sees it: with identifiers for a partner app."""
    info = sample_device(n)
    identifiers = ({"eid": info.eid, "imei": info.imei, "iccid": info.iccid,
                    "imsi": info.imsi, "msisdn": "+4915112345678"} if partner else {})
    return DeviceRecord(device_id=f"dev-{n}", ip=info.ip, capabilities=info.capabilities,
                        model=info.model, registered_at=1_700_000_000_000,
                        updated_at=1_700_000_000_500, **identifiers)


def sample_event(kind: EventKind, seq: int = 1) -> Event:
    """A valid event of ``kind``, with the fields the CDDL asks of that kind."""
    head: dict[str, Any] = {"seq": seq, "kind": kind, "ts": 1_700_000_001_000,
                            "pairing": "pair-1", "contract": "contract-1"}
    extra: dict[EventKind, dict[str, Any]] = {
        EventKind.DEVICE_ADDED: {"device": sample_record(1)},
        EventKind.DEVICE_UPDATED: {"device": sample_record(1, partner=False),
                                   "changes": ("ip", "sim-swap")},
        EventKind.DEVICE_REMOVED: {"device": sample_record(2), "reason": "left-contract"},
        EventKind.PAIRING_GRANTED: {"purpose": "fitness", "consent": "user",
                                    "devices": (sample_record(1), sample_record(2))},
        EventKind.PAIRING_DENIED: {"purpose": "fitness", "reason": "expired"},
        EventKind.PAIRING_ENDED: {"purpose": "fitness", "reason": "consent-withdrawn"},
    }
    return Event(**head, **extra[kind])


def sample_installation(**overrides: Any) -> InstallationResult:
    """An SM-DP+ installation report (the blobs are placeholders, not real DER)."""
    info = sample_device()
    fields: dict[str, Any] = {
        "seq": 7, "eid": info.eid, "iccid": info.iccid, "imsi": info.imsi,
        "result": InstallationOutcome.INSTALLED, "transaction": "tx-1",
        "matching_id": "MATCH-1", "smdp": "smdp.operator.example", "ts": 1_700_000_000_000,
        "pir": b"\x30\x03\x02\x01\x00", "euicc_certificate": b"\x30\x00",
        "eum_certificate": b"\x30\x00", "msisdn": "+4915112345678",
    }
    fields.update(overrides)
    return InstallationResult(**fields)


def sample_profile_change(**overrides: Any) -> ProfileChange:
    """An eIM profile state change report (the result is a placeholder, not real DER)."""
    info = sample_device()
    fields: dict[str, Any] = {
        "seq": 3, "eid": info.eid, "iccid": info.iccid, "result": ProfileOutcome.DELETED,
        "transaction": "0123456789ABCDEF0123456789ABCDEF", "eim": "eim.operator.example",
        "ts": 1_700_000_000_000, "epr": b"\xbf\x51\x00",
    }
    fields.update(overrides)
    return ProfileChange(**fields)


def sample_messages() -> dict[type[WireMessage], list[WireMessage]]:
    """Representative instances of every message type, each valid against its CDDL rule."""
    iccid = sample_device().iccid
    return {
        ModelInfo: [ModelInfo("Quectel", "EC25", "R1"), ModelInfo("", "", "")],
        DeviceInfo: [sample_device(), sample_device(2, imsi=None, ip=(), capabilities=())],
        Reply: [Reply.error(ErrorCode.NOT_FOUND, "no such number"),
                Reply.error(ErrorCode.DENIED, "not paired", status=Status.DENIED),
                Reply.ok(result="registered", device_id="dev-1", contract="contract-1"),
                Reply.ok(contract="contract-1", devices=[sample_record().to_wire()])],
        InstallationResult: [sample_installation(),
                             sample_installation(result=InstallationOutcome.FAILED,
                                                 msisdn=None, reason="8.2.5")],
        ProfileChange: [sample_profile_change(),
                        sample_profile_change(result=ProfileOutcome.DISABLED, seq=4)],
        DevicesRequest: [DevicesRequest("+4915112345678")],
        PairRequest: [PairRequest("+4915112345678", "fitness")],
        UnpairRequest: [UnpairRequest(msisdn="+4915112345678"), UnpairRequest(pairing="p-1")],
        EventsSinceRequest: [EventsSinceRequest(0), EventsSinceRequest(41, limit=500)],
        ConsentListRequest: [ConsentListRequest()],
        ConsentAnswerRequest: [ConsentAnswerRequest("prompt-1", d) for d in Decision],
        ConsentWithdrawRequest: [ConsentWithdrawRequest(pairing="p-1"),
                                 ConsentWithdrawRequest(app="health")],
        OperatorRequest: [
            OperatorRequest(OperatorOp.ADD_CONTRACT, contract="c-1", holder="Paul",
                            msisdns=("+4915112345678",)),
            OperatorRequest(OperatorOp.ADD_CONTRACT, contract="c-2", holder="Ann"),
            OperatorRequest(OperatorOp.ADD_NUMBER, msisdn="+4915112345678", contract="c-1"),
            OperatorRequest(OperatorOp.PORT_IN, msisdn="+4915112345678", contract="c-1"),
            OperatorRequest(OperatorOp.REMOVE_NUMBER, msisdn="+4915112345678"),
            OperatorRequest(OperatorOp.ADD_SUBSCRIPTION, iccid=iccid,
                            imsi="262010000000001", contract="c-1", msisdn="+4915112345678"),
            OperatorRequest(OperatorOp.REMOVE_SUBSCRIPTION, iccid=iccid),
            OperatorRequest(OperatorOp.PORT_OUT, msisdn="+4915112345678", operator="op-b"),
        ],
        DeviceRecord: [sample_record(1), sample_record(2, partner=False)],
        Event: [sample_event(kind, seq) for seq, kind in enumerate(EventKind, start=1)],
    }
