import contextlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_wire import codec
from mps_wire.errors import DecodeError, ErrorCode, ValidationError
from mps_wire.messages import DeviceInfo, ModelInfo, Reply, Status, parse_app_request
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


@pytest.mark.parametrize("field", ["eid", "imei", "iccid", "ip", "model", "seq", "ts", "v"])
def test_missing_field_named(field: str) -> None:
    msg = sample_device().to_wire()
    del msg[field]
    with pytest.raises(ValidationError) as err:
        DeviceInfo.from_wire(msg)
    assert err.value.field == field
    assert err.value.code == ErrorCode.BAD_REQUEST


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
