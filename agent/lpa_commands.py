"""The commands of ``mps-lpa`` that talk to the card alone, each against an ES10 client:
chip, profile and notification. Those that also reach an SM-DP+ or SM-DS live in
:mod:`agent.lpa_remote`, imported only when one of them runs (ES9+ needs TLS and HTTP).

Each returns an :class:`Output`, shown as JSON or text by the command line.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from agent.errors import AgentConfigError, AgentError
from mps_common.cli import table
from mps_common.record import record
from mps_esim import sgp22
from mps_esim.lpa import Es10Client, Es10ResultError


class UsageError(AgentConfigError):
    """The options do not make a command."""


@record
class Output:
    """What a command shows: JSON for scripts, lines of text for people."""

    data: Any
    text: list[str]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return table(headers, rows).splitlines()


def pairs(items: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(k) for k, _v in items)
    return [f"{k.ljust(width)}  {v}" for k, v in items]


def _names(values: frozenset[str] | None) -> list[str]:
    return sorted(values or ())


def profile_json(p: sgp22.ProfileInfo) -> dict[str, Any]:
    return {
        "iccid": p.iccid, "isdp_aid": p.isdp_aid.hex().upper() if p.isdp_aid else None,
        "state": p.state, "class": p.profile_class, "name": p.profile_name,
        "nickname": p.nickname, "provider": p.provider_name,
        "owner": p.owner.plmn if p.owner else None, "ppr": _names(p.ppr),
        "notifications": [{"operations": _names(c.operations), "address": c.address}
                          for c in p.notification_config or ()],
    }


# --- commands -------------------------------------------------------------------------------------

def cmd_chip_info(client: Es10Client, args: argparse.Namespace) -> Output:
    eid = client.get_eid()
    addresses = client.get_configured_addresses()
    info = client.get_euicc_info2()
    pkids = [k.hex().upper() for k in info.ci_pkids_verification]
    data = {
        "eid": eid,
        "isdr_aid": args.isdr_aid.hex().upper(),
        "default_dp_address": addresses.default_dp_address,
        "root_ds_address": addresses.root_ds_address,
        "euicc_info2": {
            "profile_version": info.profile_version, "svn": info.svn,
            "firmware_version": info.firmware_version,
            "installed_applications": info.resources.installed_applications,
            "free_nvm": info.resources.free_nvm, "free_ram": info.resources.free_ram,
            "uicc_capabilities": _names(info.uicc_capabilities),
            "rsp_capabilities": _names(info.rsp_capabilities),
            "ci_pkids_verification": pkids,
            "ci_pkids_signing": [k.hex().upper() for k in info.ci_pkids_signing],
            "ts102241_version": info.ts102241_version,
            "globalplatform_version": info.globalplatform_version,
            "category": info.category, "pp_version": info.pp_version,
            "sas_accreditation_number": info.sas_accreditation_number,
            "forbidden_ppr": _names(info.forbidden_ppr),
        },
    }
    text = pairs([
        ("EID", eid),
        ("ISD-R AID", data["isdr_aid"]),
        ("default SM-DP+", addresses.default_dp_address or "-"),
        ("root SM-DS", addresses.root_ds_address or "-"),
        ("SGP.22 version", info.svn),
        ("profile version", info.profile_version),
        ("firmware", info.firmware_version),
        ("installed apps", str(info.resources.installed_applications)),
        ("free memory", f"{info.resources.free_nvm} bytes"),
        ("free RAM", f"{info.resources.free_ram} bytes"),
        ("UICC capability", ", ".join(_names(info.uicc_capabilities))),
        ("RSP capability", ", ".join(_names(info.rsp_capabilities))),
        ("CI keys (verify)", ", ".join(pkids) or "-"),
        ("CI keys (sign)", ", ".join(data["euicc_info2"]["ci_pkids_signing"]) or "-"),
        ("TS 102 241", info.ts102241_version or "-"),
        ("GlobalPlatform", info.globalplatform_version or "-"),
        ("category", info.category or "-"),
        ("PP version", info.pp_version),
        ("SAS number", info.sas_accreditation_number),
        ("forbidden PPR", ", ".join(_names(info.forbidden_ppr)) or "-"),
    ])
    return Output(data, text)


def cmd_chip_default_dp(client: Es10Client, args: argparse.Namespace) -> Output:
    client.set_default_dp_address(args.address)
    shown = args.address or "(none)"
    return Output({"ok": True, "default_dp_address": args.address or None},
                  [f"default SM-DP+ address: {shown}"])


def cmd_profile_list(client: Es10Client, args: argparse.Namespace) -> Output:
    profiles = client.list_profiles(profile_class=args.profile_class)
    listed = [profile_json(p) for p in profiles]
    rows = [[p["iccid"] or "-", p["state"] or "-", p["class"], p["name"] or "-",
             p["nickname"] or "-", p["provider"] or "-", p["owner"] or "-",
             ", ".join(p["ppr"]) or "-",
             "; ".join(f"{','.join(n['operations'])} to {n['address']}"
                       for n in p["notifications"]) or "-",
             p["isdp_aid"] or "-"] for p in listed]
    text = (_table(["ICCID", "STATE", "CLASS", "NAME", "NICKNAME", "PROVIDER", "OWNER", "PPR",
                    "NOTIFICATIONS", "ISD-P AID"], rows) if profiles else ["no profiles"])
    return Output(listed, text)


def profile_id(text: str) -> dict[str, Any]:
    """An ICCID (18-20 digits) or an ISD-P AID (hex) as keyword arguments of the client."""
    if re.fullmatch(r"[0-9]{18,20}", text):
        return {"iccid": text}
    if re.fullmatch(r"(?:[0-9A-Fa-f]{2}){5,16}", text):
        return {"isdp_aid": bytes.fromhex(text)}
    raise UsageError(f"{text!r} is neither an ICCID (18-20 digits) nor an ISD-P AID (hex)")


def _done(action: str, ident: str) -> Output:
    return Output({"ok": True, "action": action, "profile": ident}, [f"{action} {ident}"])


def cmd_profile_enable(client: Es10Client, args: argparse.Namespace) -> Output:
    client.enable_profile(**profile_id(args.id), refresh=args.refresh)
    return _done("enabled", args.id)


def cmd_profile_disable(client: Es10Client, args: argparse.Namespace) -> Output:
    client.disable_profile(**profile_id(args.id), refresh=args.refresh)
    return _done("disabled", args.id)


def cmd_profile_delete(client: Es10Client, args: argparse.Namespace) -> Output:
    client.delete_profile(**profile_id(args.id))
    return _done("deleted", args.id)


def cmd_profile_nickname(client: Es10Client, args: argparse.Namespace) -> Output:
    ident = profile_id(args.id)
    iccid = ident.get("iccid")
    if iccid is None:
        # SetNickname names the profile by ICCID only: look the AID up.
        found = client.list_profiles(isdp_aid=ident["isdp_aid"], tags=[sgp22.TAG_ICCID])
        if not found or found[0].iccid is None:
            raise Es10ResultError("SetNickname", 1, sgp22.SET_NICKNAME_RESULTS)
        iccid = found[0].iccid
    if len(args.name) > sgp22.MAX_NICKNAME:
        raise UsageError(f"a nickname is at most {sgp22.MAX_NICKNAME} characters")
    client.set_nickname(iccid, args.name)
    return Output({"ok": True, "profile": iccid, "nickname": args.name or None},
                  [f"nickname of {iccid}: {args.name or '(none)'}"])


class NotificationsKept(AgentError):
    """Some notifications could not be delivered (they stay on the eUICC)."""

    def __init__(self, data: Any, text: list[str], failed: int) -> None:
        super().__init__(f"{failed} notification(s) not delivered; they stay on the eUICC")
        self.output = Output(data, text)


def cmd_notification_list(client: Es10Client, args: argparse.Namespace) -> Output:
    items = client.list_notifications()
    rows = [[str(n.seq), n.operation, n.iccid or "-", n.address] for n in items]
    text = _table(["SEQ", "OPERATION", "ICCID", "ADDRESS"], rows) if items else [
        "no pending notifications"]
    return Output([{"seq": n.seq, "operation": n.operation, "iccid": n.iccid,
                    "address": n.address} for n in items], text)


def cmd_notification_remove(client: Es10Client, args: argparse.Namespace) -> Output:
    if args.all == bool(args.seq):
        raise UsageError("give sequence numbers or --all")
    seqs = [n.seq for n in client.list_notifications()] if args.all else args.seq
    for seq in seqs:
        client.notification_sent(seq)
    return Output({"ok": True, "removed": seqs},
                  [f"removed notification {s}" for s in seqs] or ["nothing to remove"])
