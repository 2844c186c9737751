"""An SM-DS for an emulated deployment (SGP.22 3.6): devices that know neither an
activation code nor a default SM-DP+ find their profile through the root SM-DS their
eUICC names (ES10a GetEuiccConfiguredAddresses, rootDsAddress).

:class:`SmdsProfiles` is a rig profile source on top of :class:`SmdpProfiles`: the SM-DP+
as there, plus ``mps-emu smds`` on HTTPS (the SM-DP+'s PKI: CERT.DSauth for ES11, the TLS
certificate the agents already trust). Each card leaves the "factory" empty with the
SM-DS as its root SM-DS; each order is registered there as an event for the card's EID
(ES12.RegisterEvent), which the SM-DP+ deletes once the profile is installed. The firmware
profile names no activation code: first boot asks the SM-DS (ES11).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lpa_emulator.euicc import CardState
from lpa_emulator.smdp.events import register_event
from lpa_emulator.smdp.orders import OrderStore
from mps_esim.lpa.activation import parse_activation_code
from mps_testbed.eim import EimProfiles
from mps_testbed.smdp import SERVE_TIMEOUT, SmdpProfiles, SubscribedDevice, free_port
from mps_testbed.stack.procs import ProcessGroup, console_script

READY_MARKER = "serving ES11"


class SmdsProfiles(SmdpProfiles):
    """Profiles found through an SM-DS (see the module documentation). With
    ``through_smds`` set, only the first that many cards made go through the SM-DS; the
    others are made as the next source in line makes them (by default with the
    activation code in their firmware profile, as with :class:`SmdpProfiles`)."""

    def __init__(self, *, through_smds: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smds_address: str | None = None
        self.limit = through_smds
        self._through_smds: set[Path] = set()
        self._events: OrderStore | None = None

    def start(self, procs: ProcessGroup, workdir: Path, *, broker: str | None = None) -> None:
        super().start(procs, workdir, broker=broker)
        if self.smdp is None:
            raise RuntimeError("the SM-DP+ did not start")
        port = free_port()
        self.smds_address = f"{self.host}:{port}"
        service = procs.start("smds", [*console_script("mps-emu"), "smds", "--pki",
                                       str(self.smdp.pki_dir), "--listen",
                                       f"127.0.0.1:{port}", "--address", self.smds_address])
        service.wait_for_line(READY_MARKER, SERVE_TIMEOUT)
        self._events = OrderStore.in_dir(self.smdp.data_dir)

    def make_card(self, device: SubscribedDevice) -> str:
        if self.smdp is None or self.smds_address is None or self._events is None:
            raise RuntimeError("start the SM-DP+ and the SM-DS before making cards")
        if self.limit is not None and len(self._through_smds) >= self.limit:
            return super().make_card(device)
        self._through_smds.add(device.card_state)
        state = CardState.new(profiles=[])
        state.root_ds_address = self.smds_address
        device.card_state.parent.mkdir(parents=True, exist_ok=True)
        state.save(device.card_state)
        code = self.smdp.order(device.iccid, device.imsi, device.msisdn, eid=state.eid)
        register_event(self._events, matching_id=parse_activation_code(code).matching_id or "",
                       eid=state.eid,
                       smdp=self.smdp.address, smds=self.smds_address, ca_file=self.smdp.ca_file)
        return state.eid

    def activation(self, device: SubscribedDevice) -> dict[str, Any] | None:
        if device.card_state not in self._through_smds:
            return super().activation(device)
        return None  # no code, no default SM-DP+: first boot asks the root SM-DS

    def describe(self, cards: int) -> list[str]:
        return [*super().describe(cards),
                f"sm-ds       ES11/ES12 over HTTPS at {self.smds_address}; no activation code, "
                f"first boot asks the eUICC's root SM-DS for its event: "
                f"{len(self._through_smds)} of them"]


class EimSmdsProfiles(SmdsProfiles, EimProfiles):
    """Both ways without an activation code: the first ``through_smds`` cards find their
    profile through the SM-DS, the next ``headless`` ones are ordered by the eIM, the rest
    carry their activation code."""

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
        super().close()
