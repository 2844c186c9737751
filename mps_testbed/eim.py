"""An eIM for an emulated deployment (SGP.32): the rig's devices boot headless, their
profile ordered by the eIM.

:class:`EimProfiles` is a rig profile source on top of :class:`SmdpProfiles`: the SM-DP+
as there, plus ``mps-emu eim serve`` on HTTPS (the SM-DP+'s TLS certificate, so the CA the
agents already trust verifies it). Each card leaves the "factory" empty with the eIM
associated (AddInitialEim through the in-process card link); the eIM gets the EID and a
download order with the device's activation code. The firmware profile names no code:
the agent's IPA asks the eIM at first boot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.card.emu import EmuCardLink
from lpa_emulator.eim.service import Eim
from lpa_emulator.eim.store import EimStore
from lpa_emulator.euicc import CardState
from mps_esim.ipa import card as ipa_card
from mps_esim.lpa.es10 import Es10Client
from mps_testbed.smdp import SERVE_TIMEOUT, SmdpProfiles, SubscribedDevice, free_port
from mps_testbed.stack.procs import ProcessGroup, console_script

READY_MARKER = "serving ESipa"
EIM_ID = "eim.mps.test"


class EimProfiles(SmdpProfiles):
    """Profiles ordered by an eIM (see the module documentation). With ``headless`` set,
    only the first that many cards made go through the eIM; the others get their
    activation code in their firmware profile, as with :class:`SmdpProfiles`."""

    def __init__(self, *, headless: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eim: Eim | None = None
        self.address: str | None = None
        self.headless = headless
        self._through_eim: set[Path] = set()

    def start(self, procs: ProcessGroup, workdir: Path, *, broker: str | None = None) -> None:
        super().start(procs, workdir, broker=broker)
        if self.smdp is None:
            raise RuntimeError("the SM-DP+ did not start")
        port = free_port()
        self.address = f"{self.host}:{port}"
        db = Path(workdir) / "eim" / "eim.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        self.eim = Eim.create(EimStore(db), EIM_ID, self.address)
        argv = [*console_script("mps-emu"), "eim", "serve", "--db", str(db), "--pki",
                str(self.smdp.pki_dir), "--listen", f"127.0.0.1:{port}"]
        if broker is not None:
            argv += ["--broker", broker]  # profile state changes reach the registry
        service = procs.start("eim", argv)
        service.wait_for_line(READY_MARKER, SERVE_TIMEOUT)

    def make_card(self, device: SubscribedDevice) -> str:
        if self.smdp is None or self.eim is None:
            raise RuntimeError("start the SM-DP+ and the eIM before making cards")
        if self.headless is not None and len(self._through_eim) >= self.headless:
            return super().make_card(device)
        self._through_eim.add(device.card_state)
        state = CardState.new(profiles=[])
        device.card_state.parent.mkdir(parents=True, exist_ok=True)
        state.save(device.card_state)
        link = EmuCardLink(device.card_state)
        link.connect()
        try:
            with link.open_isdr() as isdr:
                ipa_card.add_initial_eim(Es10Client(isdr), [self.eim.config()])
        finally:
            link.close()
        code = self.smdp.order(device.iccid, device.imsi, device.msisdn, eid=state.eid)
        self.eim.associate(state.eid)
        self.eim.order_download(state.eid, code)
        return state.eid

    def describe(self, cards: int) -> list[str]:
        return [*super().describe(cards),
                f"eim         ESipa over HTTPS at {self.address}; headless (no activation "
                f"code, profile ordered by the eIM, SGP.32): {self.through_eim} of them"]

    @property
    def through_eim(self) -> int:
        """How many cards were made to boot through the eIM."""
        return len(self._through_eim)

    def activation(self, device: SubscribedDevice) -> dict[str, Any] | None:
        if device.card_state not in self._through_eim:
            return super().activation(device)
        return {"eim": self.address}

    def close(self) -> None:
        if self.eim is not None:
            self.eim.store.close()
        super().close()
