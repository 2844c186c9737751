"""The commands of ``mps-lpa`` that reach a server: profile download (ES9+), profile
discovery (ES11) and notification delivery. Imported only when one of them runs, so the
card-only commands start without TLS, HTTP and the download machinery.
"""

from __future__ import annotations

import argparse

from agent.card import CardLink
from agent.lpa_commands import NotificationsKept, Output, UsageError, _table, pairs
from mps_common.progress import Progress
from mps_esim.lpa import Es10Client
from mps_esim.lpa.activation import ActivationCodeError, check_address, parse_activation_code
from mps_esim.lpa.device_info import capabilities_of, tac_of
from mps_esim.lpa.download import (
    Es10bOverStoreData,
    ProfileDownloader,
    Stage,
    default_device_info,
    process_notifications,
)
from mps_esim.lpa.download import Progress as DownloadProgress
from mps_esim.lpa.es9 import Es9Clients
from mps_esim.lpa.es11 import Es11Client, EventEntry
from mps_esim.sgp22 import rsp


def _capabilities(args: argparse.Namespace) -> tuple[str, ...]:
    """--capabilities, else the firmware profile's (--firmware-profile), else none."""
    if args.capabilities:
        return tuple(c.strip().lower() for c in args.capabilities.split(",") if c.strip())
    if args.firmware_profile:
        from firmware_profiles import find_profile, load_profile

        return load_profile(find_profile(args.firmware_profile)).capabilities
    return ()


def device_info(args: argparse.Namespace) -> rsp.DeviceInfo | None:
    """The DeviceInfo the eUICC signs for the server (SGP.22 5.7.13 ctxParams1): the TAC of
    --imei (behind a modem, the modem's own IMEI, AT+CGSN) and the radio capabilities of
    --capabilities or the firmware profile. None, the LPA's default, when neither is known.
    """
    imei: str | None = args.imei
    link = args.link
    if imei is None and link.scheme == "at":
        imei = link.modem.imei()
    capabilities = _capabilities(args)
    if imei is None and not capabilities:
        return None
    tac = default_device_info().tac
    if imei is not None:
        from mps_wire.identifiers import IdentifierError, validate_imei

        try:
            tac = tac_of(validate_imei(imei))
        except IdentifierError as exc:
            raise UsageError(f"--imei: {exc}") from None
    return rsp.DeviceInfo(tac=tac, capabilities=capabilities_of(capabilities))


class _DownloadBar:
    """The download's progress on a terminal: the step, then the package's segments."""

    def __init__(self) -> None:
        self.stage = Stage.CHALLENGE.value
        self.bar = Progress(None, label="download", note=lambda: self.stage)

    def __call__(self, event: DownloadProgress) -> None:
        self.stage = event.stage.value
        if event.total:
            self.bar.total, self.bar.done = event.total, event.done
        self.bar.refresh()


def _download_target(client: Es10Client, args: argparse.Namespace
                     ) -> tuple[str, str | None, str | None]:
    """(SM-DP+ address, matching id, confirmation code) from the options or the eUICC."""
    if args.activation_code is not None:
        if args.smdp is not None or args.matching_id is not None:
            raise UsageError("give -a CODE or -s ADDRESS -m MATCHING_ID, not both")
        try:
            code = parse_activation_code(args.activation_code)
        except ActivationCodeError as exc:
            raise UsageError(str(exc)) from None
        if code.cc_required and not args.confirmation_code:
            raise UsageError("the activation code asks for a confirmation code (-c)")
        return code.address, code.matching_id, args.confirmation_code
    if args.matching_id is not None and args.smdp is None:
        raise UsageError("-m MATCHING_ID needs -s ADDRESS")
    if args.smdp is not None:
        try:
            return check_address(args.smdp), args.matching_id, args.confirmation_code
        except ActivationCodeError as exc:
            raise UsageError(str(exc)) from None
    addresses = client.get_configured_addresses()
    if addresses.default_dp_address:
        return addresses.default_dp_address, None, args.confirmation_code
    if not addresses.root_ds_address:
        raise UsageError("no activation code (-a) or SM-DP+ (-s), and the eUICC has neither "
                         "a default SM-DP+ nor a root SM-DS address")
    # The first event the root SM-DS holds for this eUICC names the SM-DP+ and matching id.
    events = _discover(client, args, addresses.root_ds_address)
    if not events:
        raise UsageError(f"no activation code (-a) or SM-DP+ (-s), no default SM-DP+, and "
                         f"the SM-DS {addresses.root_ds_address} holds no event")
    return events[0].rsp_server_address, events[0].event_id, args.confirmation_code


def _discover(client: Es10Client, args: argparse.Namespace, smds: str
              ) -> tuple[EventEntry, ...]:
    with Es9Clients(args.ca) as es9, Es11Client(smds, ca_file=args.ca) as es11:
        return ProfileDownloader(Es10bOverStoreData(client), es9.client,
                                 device_info=device_info(args)).discover(es11, smds)


def cmd_profile_discovery(client: Es10Client, args: argparse.Namespace) -> Output:
    """The events an SM-DS (default: the eUICC's root SM-DS) holds for this eUICC."""
    smds = args.smds or client.get_configured_addresses().root_ds_address
    if not smds:
        raise UsageError("the eUICC names no root SM-DS: give --smds ADDRESS")
    try:
        smds = check_address(smds)
    except ActivationCodeError as exc:
        raise UsageError(str(exc)) from None
    events = _discover(client, args, smds)
    data = {"smds": smds, "events": [{"event_id": e.event_id, "smdp": e.rsp_server_address}
                                     for e in events]}
    text = (_table(["EVENT ID", "SM-DP+"], [[e.event_id, e.rsp_server_address]
                                             for e in events])
            if events else [f"no events at {smds}"])
    return Output(data, text)


def cmd_profile_download(client: Es10Client, args: argparse.Namespace) -> Output:
    address, matching_id, confirmation = _download_target(client, args)
    link: CardLink = args.link
    apdus_before = link.apdu_count
    shown = _DownloadBar()
    with Es9Clients(args.ca) as es9, shown.bar:
        downloader = ProfileDownloader(Es10bOverStoreData(client), es9.client,
                                       progress=shown, device_info=device_info(args))
        result = downloader.download(address, matching_id, confirmation_code=confirmation)
        if args.enable:
            client.enable_profile(iccid=result.iccid)
            # The enable notification goes to the SM-DP+ that installed the profile; others
            # (the profile that was disabled) wait for 'notification process'.
            process_notifications(Es10bOverStoreData(client), es9.client, addresses={address})
    apdus = link.apdu_count - apdus_before
    data = {"ok": True, "iccid": result.iccid, "isdp_aid": result.aid.hex().upper(),
            "provider": result.service_provider, "name": result.profile_name,
            "smdp": address, "transaction_id": result.transaction_id,
            "notification_sent": result.notification_sent, "enabled": bool(args.enable),
            "seconds": round(result.seconds, 3), "apdus": apdus}
    text = pairs([
        ("ICCID", result.iccid),
        ("ISD-P AID", result.aid.hex().upper()),
        ("provider", result.service_provider or "-"),
        ("name", result.profile_name or "-"),
        ("SM-DP+", address),
        ("state", "enabled" if args.enable else "disabled"),
        ("notification", "delivered" if result.notification_sent
         else "kept on the eUICC (run 'notification process')"),
        ("took", f"{result.seconds:.2f} s, {apdus} APDUs"),
    ])
    return Output(data, [f"downloaded {result.iccid}", *text])


def cmd_notification_process(client: Es10Client, args: argparse.Namespace) -> Output:
    with Es9Clients(args.ca) as es9:
        outcomes = process_notifications(Es10bOverStoreData(client), es9.client)
    rows = [[str(o.seq_number), o.operation, o.address, "yes" if o.sent else "no",
             "yes" if o.removed else "no", o.error or "-"] for o in outcomes]
    text = (_table(["SEQ", "OPERATION", "ADDRESS", "SENT", "REMOVED", "ERROR"], rows)
            if outcomes else ["no pending notifications"])
    data = [{"seq": o.seq_number, "operation": o.operation, "address": o.address,
             "sent": o.sent, "removed": o.removed, "error": o.error} for o in outcomes]
    failed = [o for o in outcomes if not o.sent]
    if failed:
        raise NotificationsKept(data, text, len(failed))
    return Output(data, text)
