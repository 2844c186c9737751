import contextlib
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_wire import codec
from mps_wire.codec import RefusedTagError
from mps_wire.errors import DecodeError, ErrorCode, ValidationError
from mps_wire.messages import (
    DeviceInfo,
    InstallationResult,
    ModelInfo,
    Reply,
    Status,
    parse_app_request,
    parse_operator_request,
    parse_user_request,
)
from mps_wire.records import DeviceRecord, Event
from mps_wire.topics import Topics
from tests.wire_samples import sample_device


def test_device_info_cbor_round_trip() -> None:
    info = sample_device()
    raw = codec.encode(info.to_wire())
    assert DeviceInfo.from_wire(codec.decode(raw)) == info
    # Deterministic encoding: the same message always gives the same bytes.
    assert codec.encode(info.to_wire()) == raw


@given(
    ips=st.lists(st.ip_addresses().map(str), max_size=4),
    caps=st.lists(st.from_regex(r"[a-z0-9][a-z0-9._:\-]{0,20}", fullmatch=True), max_size=5),
    seq=st.integers(0, 2**63 - 1),
    manufacturer=st.text(st.characters(categories=["L", "N"]), max_size=20),
)
def test_device_info_round_trip_property(ips: list[str], caps: list[str], seq: int,
                                         manufacturer: str) -> None:
    info = sample_device(ip=tuple(ips), capabilities=tuple(caps), seq=seq,
                         model=ModelInfo(manufacturer, "EC25", "R1"))
    assert DeviceInfo.from_wire(codec.decode(codec.encode(info.to_wire()))) == info


@pytest.mark.parametrize("field", ["imei", "iccid", "ip", "model", "seq", "ts", "v"])
def test_missing_field_named(field: str) -> None:
    msg = sample_device().to_wire()
    del msg[field]
    with pytest.raises(ValidationError) as err:
        DeviceInfo.from_wire(msg)
    assert err.value.field == field
    assert err.value.code == ErrorCode.BAD_REQUEST


def test_a_device_without_eid_goes_by_its_iccid() -> None:
    # A plain SIM has no ISD-R (ETSI TS 102 221: a UICC), so no EID (SGP.22 2.2.1).
    msg = sample_device().to_wire()
    del msg["eid"]
    info = DeviceInfo.from_wire(msg)
    assert info.eid is None and info.device_id == info.iccid == msg["iccid"]


def test_mistyped_fields() -> None:
    for field, value in [("seq", True), ("seq", -1), ("ip", "10.0.0.1"), ("ip", ["999.1.1.1"]),
                         ("capabilities", ["Bad Cap"]), ("model", []), ("profile", "x" * 65)]:
        msg = sample_device().to_wire()
        msg[field] = value
        with pytest.raises(ValidationError) as err:
            DeviceInfo.from_wire(msg)
        assert err.value.field == field, (field, value)


def test_bad_check_digit_is_invalid_identifier() -> None:
    msg = sample_device().to_wire()
    msg["imei"] = msg["imei"][:-1] + str((int(msg["imei"][-1]) + 1) % 10)
    with pytest.raises(ValidationError) as err:
        DeviceInfo.from_wire(msg)
    assert err.value.code == ErrorCode.INVALID_IDENTIFIER


def test_decode_limits() -> None:
    with pytest.raises(DecodeError) as err:
        codec.decode(b"\xa0" + b"\x00" * codec.MAX_PAYLOAD)
    assert err.value.code == ErrorCode.TOO_LARGE
    deep = b"\x81" * 50 + b"\x00"
    with pytest.raises(DecodeError) as err:
        codec.decode(b"\xa1\x61a" + deep)
    assert err.value.code == ErrorCode.TOO_LARGE
    for bad in [b"", b"\xff", b"\x01", b"\xa1\x01\x02", b"\xa2\x61a\x01\x61a\x02",
                b"\xa1\x61a\xd8\x23\x61x"]:
        with pytest.raises(DecodeError) as err:
            codec.decode(bad)
        assert err.value.code == ErrorCode.MALFORMED, bad.hex()


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_decode_fuzz_only_raises_decode_error(data: bytes) -> None:
    try:
        msg = codec.decode(data)
    except DecodeError:
        return
    assert isinstance(msg, dict)
    with contextlib.suppress(ValidationError):
        DeviceInfo.from_wire(msg)


@settings(max_examples=200)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                    | st.binary(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=20))
def test_structured_fuzz_never_escapes(value: object) -> None:
    raw = cbor2.dumps({"op": "devices", "msisdn": value})
    with contextlib.suppress(DecodeError, ValidationError):
        parse_app_request(codec.decode(raw))


def test_reply_round_trip_and_unknown_code() -> None:
    r = Reply.error(ErrorCode.NOT_FOUND, "no such number")
    assert Reply.from_wire(codec.decode(codec.encode(r.to_wire()))) == r
    ok = Reply.ok(result="registered", device_id="x")
    back = Reply.from_wire(codec.decode(codec.encode(ok.to_wire())))
    assert back.is_ok and back.body == {"result": "registered", "device_id": "x"}
    future = Reply.from_wire({"status": "error", "code": "brand-new", "message": "m"})
    assert future.code == ErrorCode.INTERNAL and future.status is Status.ERROR
    with pytest.raises(ValidationError):
        Reply.from_wire({"status": "fine"})


def test_topics() -> None:
    t = Topics("op/x")
    assert t.device_register("123") == "op/x/devices/123/register"
    assert t.parse("op/x/apps/app-1/requests") == ("apps", "app-1", "requests")
    assert Topics.shared("g", t.all_registrations()) == "$share/g/op/x/devices/+/register"
    for bad in ["a/+", "a#", "", "a/b"]:
        with pytest.raises(ValueError):
            t.device_register(bad)
    with pytest.raises(ValueError):
        t.parse("other/devices/1/register")
    with pytest.raises(ValueError):
        Topics("/bad")


@pytest.mark.parametrize("tag", sorted(codec.REFUSED_TAGS))
def test_refused_tags_fail_naming_the_tag(tag: int) -> None:
    for content in (0, b"\x00" * 4, "x", [1, 2], {}):
        with pytest.raises(RefusedTagError) as err:
            codec.decode(cbor2.dumps({"a": cbor2.CBORTag(tag, content)}))
        assert err.value.tag == tag and err.value.code == ErrorCode.MALFORMED
        assert f"CBOR tag {tag} (" in str(err.value)


def test_every_tag_cbor2_decodes_itself_is_refused() -> None:
    # A tag cbor2 turns into something else than a CBORTag (or rejects) has a decoder of its
    # own: a newer cbor2 adding one must not slip it past the refusal table.
    native = set()
    for tag in [*range(2000), 43000, 55799, 55800, 55801]:
        for content in (0, b"\x00" * 4, "x", [1, 2], {}):
            try:
                value = cbor2.loads(cbor2.dumps(cbor2.CBORTag(tag, content)))
            except Exception:
                native.add(tag)
                break
            if not isinstance(value, cbor2.CBORTag):
                native.add(tag)
                break
    assert native <= set(codec.REFUSED_TAGS)


def test_unknown_tags_in_a_map_are_left_to_the_message_checks() -> None:
    msg = codec.decode(cbor2.dumps({"op": "devices", "msisdn": cbor2.CBORTag(4000, "x")}))
    with pytest.raises(ValidationError) as err:
        parse_app_request(msg)
    assert err.value.field == "msisdn"


def test_text_limits_count_utf8_bytes_as_the_cddl_does() -> None:
    ModelInfo.from_wire({"manufacturer": "ä" * 64, "model": "", "revision": ""})
    with pytest.raises(ValidationError) as err:
        ModelInfo.from_wire({"manufacturer": "ä" * 65, "model": "", "revision": ""})
    assert err.value.field == "manufacturer" and "128 bytes" in str(err.value)


ERRORS: list[tuple[Callable[[dict[str, Any]], object], dict[str, Any], str, str]] = [
    (parse_app_request, {}, "op", "missing field 'op'"),
    (parse_app_request, {"op": 1}, "op", "field 'op' must be str, got int"),
    (parse_app_request, {"op": "x"}, "op", "unknown operation 'x'"),
    (parse_app_request, {"op": "devices", "msisdn": "+4915112345678", "x": 1}, "x",
     "unknown field 'x'"),
    (parse_app_request, {"op": "pair", "msisdn": "+4915112345678", "purpose": "Bad"},
     "purpose", "field 'purpose' must match [a-z0-9][a-z0-9._:\\-]{0,63}"),
    (parse_app_request, {"op": "unpair", "msisdn": "+4915112345678", "pairing": "p"},
     "pairing", "unpair names exactly one of 'msisdn' and 'pairing'"),
    (parse_app_request, {"op": "unpair", "pairing": "a b"}, "pairing",
     "field 'pairing' is not a valid identifier"),
    (parse_app_request, {"op": "events-since", "seq": 1, "limit": 0}, "limit",
     "limit must be 1 to 500"),
    (parse_app_request, {"op": "events-since", "seq": True}, "seq",
     "field 'seq' must be int, got bool"),
    (parse_user_request, {"op": "consent-answer", "prompt": "p", "decision": "maybe"},
     "decision", "field 'decision' must be 'approve' or 'deny'"),
    (parse_user_request, {"op": "consent-withdraw"}, "pairing",
     "consent-withdraw names exactly one of 'pairing' and 'app'"),
    (parse_operator_request, {"op": "nope"}, "op", "unknown operation 'nope'"),
    (parse_operator_request, {"op": "add-contract", "contract": "c", "holder": " "},
     "holder", "field 'holder' must not be empty"),
    (parse_operator_request, {"op": "add-contract", "contract": "c", "holder": "h",
                              "msisdns": ["+4915112345678"] * 17}, "msisdns",
     "at most 16 numbers"),
    (parse_operator_request, {"op": "add-number", "msisdn": "+4915112345678",
                              "contract": "c", "iccid": "x"}, "iccid", "unknown field 'iccid'"),
    (Reply.from_wire, {"status": "fine"}, "status", "unknown status 'fine'"),
    (DeviceRecord.from_wire, {"device_id": ""}, "device_id", "device record without device_id"),
    (DeviceRecord.from_wire, {"device_id": "d", "ip": [1]}, "ip",
     "device field 'ip' must be a list of text"),
    (Event.from_wire, {"event": "nope"}, "event", "unknown event 'nope'"),
    (Event.from_wire, {"event": "device-added", "seq": 1, "ts": 1, "pairing": "p",
                       "contract": "c", "devices": None}, "devices",
     "event field 'devices' must be a list of maps"),
    (InstallationResult.from_wire, {"v": 2}, "v", "unsupported installation report version 2"),
]


@pytest.mark.parametrize(("parse", "msg", "field", "message"), ERRORS,
                         ids=[e[3][:40] for e in ERRORS])
def test_validation_errors_name_the_field(parse: Callable[[dict[str, Any]], object],
                                          msg: dict[str, Any], field: str,
                                          message: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse(msg)
    assert (err.value.field, str(err.value)) == (field, message)
    assert err.value.code == ErrorCode.BAD_REQUEST


@given(st.one_of(st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4}){0,4}", fullmatch=True),
                 st.ip_addresses(v=4).map(str)))
def test_ip_entries_read_as_ipaddress_reads_them(text: str) -> None:
    """An IPv4 entry taken as sent is exactly what ipaddress would make of it; what
    ipaddress refuses (leading zeros, parts above 255, too few parts) stays refused."""
    import ipaddress

    from mps_wire.messages import ADDRESSES

    try:
        expected: str | None = str(ipaddress.ip_address(text))
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValidationError, match="is not an IP address"):
            ADDRESSES.decode([text], "ip")
    else:
        assert ADDRESSES.decode([text], "ip") == (expected,)
