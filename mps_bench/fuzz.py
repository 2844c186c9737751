"""mps-bench fuzz: hypothesis at every edge where bytes come in from outside.

==============  ======================================================================
edge            what is fed in, and what must hold
==============  ======================================================================
cbor-bridge     CBOR (random bytes, random structures, mutated and re-signed valid
                messages) on every topic the registry serves, in-process: every payload
                gets a reply with a status and a stable code, nothing is stored unless
                the reply is ok, every refused registration is audited
cbor-broker     the same over a real Mosquitto, one request at a time: every request is
                answered without an internal error, the bridge keeps serving
der-lpa         ES10 responses (mutated real ones, random TLV trees, noise) into the
                LPA's ES10 client: only Es10Error comes out
apdu-euicc      hostile APDUs into the software eUICC (the strategies of
                tests/unit/test_euicc_fuzz.py): a status word every time, no 6F00;
                a case is one APDU (the strategy draws sequences of them)
at-agent        garbage modem answers into the agent's ModemLink (the strategies of
                tests/unit/test_modemlink.py): only ModemError, and it gets back in step
es9-smdp        ES9+ JSON bodies into the SM-DP+ (the strategies of
                tests/integration/test_smdp_http.py), in-process: only Es9StatusError
==============  ======================================================================

The last three reuse the test suite's strategies and need the source tree (run from the
repository); where it is not importable they are reported as skipped.

    mps-bench fuzz [--cases 10000] [--edge NAME]... [--json FILE] [--seed N]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from mps_bench.fuzz_cases import EdgeResult, FuzzFailure, run_cases
from mps_bench.fuzz_registry import (
    BridgeChecker,
    bridge_inputs,
    check_bridge_input,
    fuzz_bridge,
    fuzz_bridge_edge,
    fuzz_broker_edge,
    fuzz_device,
    fuzz_key,
    prepare_fuzz_store,
)
from mps_wire.identifiers import make_eid, make_iccid

log = logging.getLogger(__name__)

DEFAULT_CASES = 10_000


# --- DER into the LPA ------------------------------------------------------------------------

def lpa_calls() -> dict[str, Callable[[Any], object]]:
    iccid = make_iccid("894900000000000911")
    return {
        "get_eid": lambda c: c.get_eid(),
        "get_euicc_info1": lambda c: c.get_euicc_info1(),
        "get_euicc_info2": lambda c: c.get_euicc_info2(),
        "get_euicc_challenge": lambda c: c.get_euicc_challenge(),
        "get_configured_addresses": lambda c: c.get_configured_addresses(),
        "list_profiles": lambda c: c.list_profiles(),
        "enable_profile": lambda c: c.enable_profile(iccid=iccid),
        "disable_profile": lambda c: c.disable_profile(iccid=iccid),
        "delete_profile": lambda c: c.delete_profile(iccid=iccid),
        "set_nickname": lambda c: c.set_nickname(iccid, "nick"),
        "set_default_dp_address": lambda c: c.set_default_dp_address("smdp.example.com"),
        "list_notifications": lambda c: c.list_notifications(),
        "retrieve_notifications": lambda c: c.retrieve_notifications(),
        "notification_sent": lambda c: c.notification_sent(1),
        "cancel_session": lambda c: c.cancel_session(b"\x01" * 16, 0),
        "get_rat": lambda c: c.get_rat(),
    }


class ScriptedChannel:
    """An ISD-R channel answering the final STORE DATA block with a given response."""

    def __init__(self, data: bytes, sw: int) -> None:
        self.data = data
        self.sw = sw

    def transmit(self, apdu: bytes) -> Any:
        from mps_esim.iso7816 import Response

        if apdu[2] == 0x11:  # a block with more to come
            return Response(b"", 0x9000)
        return Response(self.data, self.sw)


class _RecordingChannel:
    """A real software eUICC's ISD-R on a logical channel; keeps its final answers."""

    def __init__(self, card: Any) -> None:
        from mps_esim.iso7816 import build_apdu, t0_transceive, with_channel

        self._card = card
        self._t0 = t0_transceive
        self._with = with_channel
        opened = t0_transceive(card.transmit, build_apdu(0x00, 0x70, 0x00, 0x00, le=1))
        self.number = opened.data[0]
        self.transmit(build_apdu(0x00, 0xA4, 0x04, 0x00, card.isdr_aid, le=0))
        self.last = b""

    def transmit(self, apdu: bytes) -> Any:
        response = self._t0(self._card.transmit, self._with(apdu, self.number))
        self.last = response.data
        return response


def real_es10_answers(workdir: Path) -> dict[str, bytes]:
    """What a real (software) eUICC answers to each call of :func:`lpa_calls`."""
    from lpa_emulator.euicc import CardState, EuiccCard, ProfileRecord
    from lpa_emulator.euicc.state import isdp_aid_for
    from mps_esim.lpa.es10 import Es10Client, Es10Error

    path = workdir / "der-card.json"
    CardState.new(eid=make_eid("890490320000000000000000009111"), profiles=[
        ProfileRecord(iccid=make_iccid("894900000000000911"), imsi="262019111111111",
                      isdp_aid=isdp_aid_for(0), enabled=True, smdp_address="s.example"),
        ProfileRecord(iccid=make_iccid("894900000000000912"), imsi="262019111111112",
                      isdp_aid=isdp_aid_for(1), smdp_address="s.example"),
    ]).save(path)
    channel = _RecordingChannel(EuiccCard.open(path))
    client = Es10Client(channel)
    answers: dict[str, bytes] = {}
    for name, call in lpa_calls().items():
        with contextlib.suppress(Es10Error):
            call(client)
        answers[name] = channel.last
    return answers


@st.composite
def _der_tree(draw: st.DrawFn, depth: int = 0) -> bytes:
    from mps_esim import tlv

    tag = draw(st.sampled_from([0x80, 0x81, 0x82, 0x5A, 0x4F, 0x5A, 0x90, 0x91, 0x92, 0x9F70,
                                0xA0, 0xA1, 0xA2, 0xE3, 0xBF2D, 0xBF3E, 0xBF20, 0xBF22,
                                0xBF2E, 0xBF3C, 0xBF28, 0xBF2B, 0xBF41, 0xBF43, 0x30, 0x04,
                                0x02, 0x0C, 0x1F, 0xFF]))
    constructed = bool(tag & 0x20) if tag < 0x100 else bool((tag >> 8) & 0x20)
    if constructed and depth < 4:
        body = b"".join(draw(st.lists(_der_tree(depth + 1), max_size=4)))
    else:
        body = draw(st.binary(max_size=24))
    try:
        return tlv.encode(tag, body)
    except Exception:  # a tag the encoder refuses: plain bytes instead
        return body


@st.composite
def lpa_inputs(draw: st.DrawFn, answers: Mapping[str, bytes]) -> tuple[str, bytes, int]:
    name = draw(st.sampled_from(sorted(answers)))
    real = answers[name]
    how = draw(st.sampled_from(["flip", "flip", "truncate", "extend", "tree", "noise",
                                "length"]))
    if how == "flip" and real:
        data = bytearray(real)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        payload = bytes(data)
    elif how == "truncate":
        payload = real[:draw(st.integers(0, max(0, len(real) - 1)))]
    elif how == "extend":
        payload = real + draw(st.binary(min_size=1, max_size=20))
    elif how == "length" and len(real) > 3:
        data = bytearray(real)
        i = draw(st.integers(1, min(len(data) - 1, 6)))
        data[i] = draw(st.integers(0, 255))
        payload = bytes(data)
    elif how == "tree":
        outer = real[:2] if real[:1] == b"\xbf" else real[:1]
        inner = b"".join(draw(st.lists(_der_tree(), max_size=4)))
        from mps_esim import tlv

        try:
            payload = tlv.encode(int.from_bytes(outer, "big"), inner) if outer else inner
        except Exception:  # the real answer's tag cannot be reused
            payload = inner
    else:
        payload = draw(st.binary(max_size=200))
    sw = draw(st.sampled_from([0x9000] * 8 + [0x6A80, 0x6985, 0x6F00, 0x6100, 0x9000]))
    return name, payload, sw


def check_lpa_input(case: tuple[str, bytes, int]) -> None:
    from mps_esim.lpa.es10 import Es10Client, Es10Error

    name, payload, sw = case
    client = Es10Client(ScriptedChannel(payload, sw))
    try:
        lpa_calls()[name](client)
    except Es10Error:
        pass
    except Exception as exc:  # what the fuzz is looking for
        raise FuzzFailure(f"{name} raised {type(exc).__name__} ({exc}) for the answer "
                          f"{payload.hex()} / {sw:04X}") from exc


def fuzz_lpa_edge(workdir: Path, cases: int, seed_value: int | None = None) -> int:
    answers = real_es10_answers(workdir)
    return run_cases(lpa_inputs(answers), check_lpa_input, cases, seed_value=seed_value)


# --- the test suite's own fuzz strategies, at bench size --------------------------------------

def _test_module(name: str) -> Any:
    # The test suite sits next to the packages in the source tree (editable installs).
    root = Path(__file__).resolve().parents[1]
    if (root / "tests" / "__init__.py").is_file() and str(root) not in sys.path:
        sys.path.append(str(root))
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise _Skip(f"{name} is not importable here (run from the source tree): "
                    f"{exc}") from exc


class _Skip(Exception):
    pass


def fuzz_apdu_edge(_workdir: Path, cases: int, seed_value: int | None = None) -> int:
    """Sequences of hostile APDUs until ``cases`` APDUs went in; returns the APDU count."""
    module = _test_module("tests.unit.test_euicc_fuzz")
    apdus = [0]

    def check(groups: Any) -> None:
        apdus[0] += module.run_sequence(groups)

    rounds = 0
    while apdus[0] < cases:
        # About ten APDUs a sequence; a new round draws fresh sequences for the rest.
        left = cases - apdus[0]
        run_cases(module._sequence, check, max(10, left // 8),
                  seed_value=None if seed_value is None else seed_value + rounds)
        rounds += 1
    return apdus[0]


def fuzz_at_edge(_workdir: Path, cases: int, seed_value: int | None = None) -> int:
    module = _test_module("tests.unit.test_modemlink")
    from agent.errors import ModemError

    calls = st.sampled_from([("AT+CGSN", None, True), ('AT+CSIM=4,"0000"', "+CSIM:", False),
                             ("AT+CEREG?", "+CEREG:", False)])

    def check(case: tuple[bytes, tuple[str, str | None, bool]]) -> None:
        garbage, (cmd, prefix, bare) = case
        link = module.GarbageThenSane(garbage)
        link.resync_settle = 0.002
        link.open()
        with contextlib.suppress(ModemError):
            link.command(cmd, prefix=prefix, bare=bare, timeout=0.005)
        if link.command("AT+CGMI", bare=True, timeout=1.0)[-1:] != ["Quectel"]:
            raise FuzzFailure(f"the link did not get back in step after {garbage!r}")

    strategy = st.tuples(st.lists(module._CHUNKS, max_size=12).map(b"".join), calls)
    return run_cases(strategy, check, cases, seed_value=seed_value)


def fuzz_es9_edge(workdir: Path, cases: int, seed_value: int | None = None) -> int:
    module = _test_module("tests.integration.test_smdp_http")
    from lpa_emulator import pki
    from lpa_emulator.smdp.errors import Es9StatusError
    from lpa_emulator.smdp.orders import OrderStore
    from lpa_emulator.smdp.service import Smdp, SmdpCredentials

    pki_dir = workdir / "pki"
    pki.init_pki(pki_dir)
    smdp = Smdp(address="localhost", credentials=SmdpCredentials.from_dir(pki_dir),
                orders=OrderStore.in_dir(workdir / "smdp"))

    def check(case: tuple[str, dict[str, Any]]) -> None:
        function, body = case
        try:
            smdp.call(function, body)
        except Es9StatusError:
            pass
        except Exception as exc:  # what the fuzz is looking for
            raise FuzzFailure(f"{function} raised {type(exc).__name__} ({exc}) for "
                              f"{json.dumps(body)[:200]}") from exc

    strategy = st.tuples(st.sampled_from(module.FUNCTIONS),
                         st.dictionaries(module._fields, module._json_value | module._der_like,
                                         max_size=6))
    return run_cases(strategy, check, cases, seed_value=seed_value)


EDGES: dict[str, tuple[str, Callable[[Path, int, int | None], int]]] = {
    "cbor-bridge": ("CBOR into the registry, in-process", fuzz_bridge_edge),
    "cbor-broker": ("CBOR into the registry over Mosquitto", fuzz_broker_edge),
    "der-lpa": ("ES10 DER answers into the LPA", fuzz_lpa_edge),
    "apdu-euicc": ("APDUs into the software eUICC", fuzz_apdu_edge),
    "at-agent": ("modem answers into the agent's AT link", fuzz_at_edge),
    "es9-smdp": ("ES9+ JSON into the SM-DP+", fuzz_es9_edge),
}

def run_edges(workdir: Path, cases: int, names: list[str] | None = None, *,
              seed_value: int | None = None) -> list[EdgeResult]:
    results = []
    for name in names or list(EDGES):
        _description, run = EDGES[name]
        target = workdir / name
        target.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            ran = run(target, cases, seed_value)
        except _Skip as exc:
            results.append(EdgeResult(name, 0, time.monotonic() - started, "skipped",
                                      str(exc)))
            continue
        except Exception as exc:  # reported; the other edges still run
            results.append(EdgeResult(name, 0, time.monotonic() - started, "failed",
                                      f"{type(exc).__name__}: {exc}"[:2000]))
            continue
        results.append(EdgeResult(name, ran, time.monotonic() - started))
    return results


def cmd_fuzz(args: argparse.Namespace) -> int:
    if args.cases < 1:
        print("mps-bench: --cases must be at least 1", file=sys.stderr)
        return 2
    unknown = [e for e in args.edge or [] if e not in EDGES]
    if unknown:
        print(f"mps-bench: unknown edge {unknown[0]!r} (one of {', '.join(EDGES)})",
              file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="mps-fuzz-"))
    # The parts under fuzz warn about every broken input they survive; that is the point,
    # and thousands of such lines would bury the table.
    logging.disable(logging.WARNING)
    try:
        results = run_edges(workdir, args.cases, args.edge, seed_value=args.seed)
    finally:
        logging.disable(logging.NOTSET)
        shutil.rmtree(workdir, ignore_errors=True)
    width = max(len(n) for n in EDGES)
    print(f"{'EDGE':<{width}}  {'CASES':>7}  {'SECONDS':>8}  {'CASES/S':>8}  STATUS")
    for r in results:
        rate = f"{r.cases / r.seconds:8.0f}" if r.seconds > 0 and r.cases else f"{'-':>8}"
        print(f"{r.name:<{width}}  {r.cases:>7}  {r.seconds:>8.1f}  {rate}  {r.status}"
              + (f": {r.detail}" if r.detail else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"cases_per_edge": args.cases,
                                               "edges": [r.to_json() for r in results]},
                                              indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.status == "failed" for r in results) else 0


def register(subparsers: Any) -> None:
    """Add ``fuzz`` to ``mps-bench``."""
    parser = subparsers.add_parser(
        "fuzz", help="long fuzzing of every edge (hypothesis)", description=__doc__)
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES,
                        help=f"cases per edge (default {DEFAULT_CASES})")
    parser.add_argument("--edge", action="append", metavar="NAME",
                        help=f"only this edge, repeatable ({', '.join(EDGES)})")
    parser.add_argument("--seed", type=int, help="hypothesis seed, for a repeatable run")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.set_defaults(func=cmd_fuzz)


__all__ = [
    "EDGES",
    "BridgeChecker",
    "EdgeResult",
    "FuzzFailure",
    "ScriptedChannel",
    "bridge_inputs",
    "check_bridge_input",
    "check_lpa_input",
    "fuzz_bridge",
    "fuzz_bridge_edge",
    "fuzz_broker_edge",
    "fuzz_device",
    "fuzz_key",
    "lpa_calls",
    "lpa_inputs",
    "prepare_fuzz_store",
    "real_es10_answers",
    "register",
    "run_cases",
    "run_edges",
]
