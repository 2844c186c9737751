"""``mps-lpa ipa ...``: the IoT Profile Assistant by hand (SGP.32).

    ipa eims                           the eIMs the eUICC is associated with
    ipa add-eim FILE                   AddInitialEim with the EimConfigurationData (DER or
                                       hex) 'mps-emu eim config --der FILE' wrote
    ipa poll [--eim HOST:PORT] [--all] one round with the eIM (every round until it has
                                       nothing more, with --all): run its eUICC package,
                                       answer its data request, or download the profile it
                                       ordered; report the result
    ipa rollback [--refresh]           back to the profile enabled before an enable PSMO
                                       with rollback (ProfileRollback); the new result waits
                                       on the eUICC for the next round
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.lpa_commands import Output, UsageError, pairs
from mps_common.cli import table
from mps_esim import tlv
from mps_esim.lpa.es10 import Es10Client

if TYPE_CHECKING:
    from mps_esim.ipa.poll import PollOutcome


def cmd_eim_list(client: Es10Client, args: argparse.Namespace) -> Output:
    # The SGP.32 machinery (and the cryptography it needs) loads only for the ipa commands.
    from mps_esim.ipa import card as ipa_card

    eims = ipa_card.get_eim_configuration(client)
    data = [{"eim_id": e.eim_id, "fqdn": e.fqdn, "counter": e.counter,
             "protocols": sorted(e.protocols)} for e in eims]
    rows = [[e.eim_id, e.fqdn or "-", str(e.counter)] for e in eims]
    return Output(data, table(["EIM", "FQDN", "COUNTER"], rows).splitlines() if eims
                  else ["no eIM is associated"])


def cmd_eim_add(client: Es10Client, args: argparse.Namespace) -> Output:
    from mps_esim.ipa import card as ipa_card
    from mps_esim.sgp32 import EimConfig

    raw = Path(args.file).read_bytes()
    try:
        text = raw.decode().strip()
        der = bytes.fromhex(text) if text and all(c in "0123456789abcdefABCDEF" for c in text) \
            else raw
    except UnicodeDecodeError:
        der = raw
    try:
        config = EimConfig.decode(tlv.decode_one(der))
    except tlv.TlvError as exc:
        raise UsageError(f"{args.file} is no EimConfigurationData: {exc}") from exc
    tokens = ipa_card.add_initial_eim(client, [config])
    return Output({"ok": True, "eim_id": config.eim_id, "association_token": tokens[0]},
                  [f"eIM {config.eim_id} associated"])


def _eim_address(client: Es10Client, args: argparse.Namespace) -> str:
    from mps_esim.ipa import card as ipa_card

    if args.eim:
        return str(args.eim)
    for eim in ipa_card.get_eim_configuration(client):
        if eim.fqdn:
            return eim.fqdn
    raise UsageError("the eUICC names no eIM address: give --eim HOST:PORT")


def _outcome(o: PollOutcome) -> dict[str, Any]:
    return {"package": o.kind, **o.detail, "acknowledged": o.acknowledged}


def cmd_poll(client: Es10Client, args: argparse.Namespace) -> Output:
    # The HTTPS and download machinery loads only when a round runs.
    from agent.lpa_remote import device_info
    from mps_esim.ipa.esipa import EsipaClient
    from mps_esim.ipa.poll import downloader_for, indirect, poll
    from mps_esim.lpa.es9 import Es9Clients

    address = _eim_address(client, args)
    eid = client.get_eid()
    via_eim = indirect(client, address)
    with EsipaClient(address, ca_file=args.ca) as eim, Es9Clients(args.ca) as es9:
        outcomes = poll(client, eim, eid, max_rounds=64 if args.all else 1,
                        downloader=downloader_for(client, eim, es9.client, via_eim=via_eim,
                                                  device_info=device_info(args)))
    data = {"ok": True, "eim": address, "eid": eid, "rounds": [_outcome(o) for o in outcomes]}
    if not outcomes:
        return Output(data, [f"the eIM {address} has nothing for {eid}"])
    text = []
    for o in outcomes:
        text += [f"{o.kind}:", *("  " + line for line in pairs(
            [(k, str(v)) for k, v in o.detail.items()] + [("acknowledged",
                                                            str(o.acknowledged))]))]
    return Output(data, text)


def cmd_rollback(client: Es10Client, args: argparse.Namespace) -> Output:
    from mps_esim.ipa import card as ipa_card
    from mps_esim.sgp32.result import EuiccPackageResult

    result = EuiccPackageResult.decode(ipa_card.profile_rollback(client, refresh=args.refresh))
    enabled = next((p.iccid for p in client.list_profiles() if p.state == "enabled"), None)
    data = {"ok": True, "enabled": enabled, "eim": result.eim_id, "seq": result.seq}
    return Output(data, [f"rolled back: profile {enabled} enabled again; result {result.seq} "
                         f"waits for the eIM {result.eim_id}"])


HELP = "the IoT Profile Assistant (SGP.32, eIM)"


def _add_eim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="DER or hex ('mps-emu eim config --der FILE')")


def _rollback_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refresh", action="store_true", help="ask the eUICC for a REFRESH")


def _poll_options(p: argparse.ArgumentParser, device_options: Any) -> None:
    p.add_argument("--eim", metavar="HOST:PORT", help="default: the eUICC's eIM FQDN")
    p.add_argument("--all", action="store_true", help="until the eIM has nothing more")
    p.add_argument("--ca", metavar="FILE", help="CA certificates (PEM) for the eIM's and "
                   "the SM-DP+'s TLS certificates (env MPS_SMDP_CA)")
    device_options(p)


def leaves(leaf: Any, device_options: Any) -> list[tuple[str, str, Any]]:
    """The ``ipa`` commands of ``mps-lpa``: (name, help, parser builder); ``leaf(func,
    extra)`` makes a command's builder, ``device_options`` adds the DeviceInfo options."""
    return [("eims", "the eIMs the eUICC is associated with", leaf(cmd_eim_list)),
            ("add-eim", "AddInitialEim from an EimConfigurationData file",
             leaf(cmd_eim_add, _add_eim_options)),
            ("rollback", "back to the profile enabled before an enable PSMO that granted "
             "rollback", leaf(cmd_rollback, _rollback_options)),
            ("poll", "one round with the eIM (every round with --all)",
             leaf(cmd_poll, lambda p: _poll_options(p, device_options)))]
