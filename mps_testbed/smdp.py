"""An SM-DP+ for an emulated deployment: a test PKI, ``mps-emu smdp serve`` over HTTPS, and
profile orders that give each device its activation code.

:func:`start_smdp` makes the PKI under the built-in test CI (``pki init --builtin-ci``), so
every emulated card, whether made with a PKI directory or without (the built-in issuer),
trusts the SM-DP+ and is trusted by it; it starts the server as a child of the caller's
:class:`~mps_testbed.stack.procs.ProcessGroup`, reporting installations to the broker when
one is given. :class:`SmdpProfiles` is the rig's profile source on top of it: empty cards,
one order per device, the activation code in the device's firmware profile and the CA the
agent verifies the SM-DP+ with in its environment (``MPS_SMDP_CA``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lpa_emulator import pki
from lpa_emulator.euicc import CardState
from lpa_emulator.smdp.orders import OrderStore
from mps_esim.lpa.activation import ActivationCode
from mps_testbed.stack.procs import ProcessGroup, Service, console_script

SERVE_TIMEOUT = 30.0
READY_MARKER = "serving ES9+"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class SmdpService:
    """A running SM-DP+: its address (as activation codes name it), the CA file that
    verifies its TLS certificate, its PKI and order database directories."""

    address: str
    ca_file: Path
    pki_dir: Path
    data_dir: Path
    service: Service | None = None
    _store: OrderStore | None = field(default=None, repr=False)

    def _orders(self) -> OrderStore:
        # SQLite in WAL mode: orders go in while the server runs.
        if self._store is None:
            self._store = OrderStore.in_dir(self.data_dir)
        return self._store

    def order(self, iccid: str, imsi: str, msisdn: str | None = None, *,
              eid: str | None = None, confirmation_code: str | None = None) -> str:
        """Prepare the profile of a subscription; returns its activation code
        (``LPA:1$<address>$<matching id>``). With ``eid`` only that eUICC may download it,
        and it may do so from its default SM-DP+ without the code."""
        found = self._orders().add(iccid=iccid, imsi=imsi, msisdn=msisdn, eid=eid,
                                   confirmation_code=confirmation_code)
        return str(ActivationCode(self.address, found.matching_id,
                                  cc_required=found.cc_required))

    def agent_env(self) -> dict[str, str]:
        """What an agent's environment needs to download from this SM-DP+."""
        return {"MPS_SMDP_CA": str(self.ca_file)}

    def close(self) -> None:
        """Close the order database (the server itself stops with its process group)."""
        if self._store is not None:
            self._store.close()
            self._store = None


def start_smdp(workdir: Path, procs: ProcessGroup, *, host: str = "localhost",
               broker: str | None = None, prefix: str | None = None,
               env: dict[str, str] | None = None, port: int | None = None) -> SmdpService:
    """Make a PKI under the built-in test CI in ``workdir/smdp/pki`` and start
    ``mps-emu smdp serve`` on ``127.0.0.1:<port>`` with address ``host:<port>`` (``host``
    must resolve to 127.0.0.1; ``localhost`` does). Installation results go to ``broker``
    (with its topic ``prefix``) when given. Returns once the server answers.
    """
    root = Path(workdir) / "smdp"
    pki_dir, data_dir = root / "pki", root / "data"
    if not (pki_dir / pki.TLS_CERT).exists():
        pki.init_pki(pki_dir, euicc_count=0, builtin_ci=True,
                     tls_hosts=tuple(dict.fromkeys((host, "localhost", "127.0.0.1"))))
    port = port or free_port()
    address = f"{host}:{port}"
    # The test bed's SM-DS is under the same test CI: the SM-DP+ deletes its events there.
    argv = [*console_script("mps-emu"), "smdp", "serve", "--pki", str(pki_dir),
            "--listen", f"127.0.0.1:{port}", "--address", address, "--data", str(data_dir),
            "--smds-ca", str(pki_dir / pki.CI_CERT)]
    if broker is not None:
        argv += ["--broker", broker]
    if prefix is not None:
        argv += ["--prefix", prefix]
    service = procs.start("smdp", argv, env=env)
    service.wait_for_line(READY_MARKER, SERVE_TIMEOUT)
    return SmdpService(address, pki_dir / pki.CI_CERT, pki_dir, data_dir, service)


class SubscribedDevice(Protocol):
    """What :class:`SmdpProfiles` needs to know of a rig's device."""

    @property
    def iccid(self) -> str: ...

    @property
    def imsi(self) -> str: ...

    @property
    def msisdn(self) -> str: ...

    @property
    def card_state(self) -> Path: ...


class SmdpProfiles:
    """The rig's profile source when devices download their profile: an SM-DP+ started
    with :func:`start_smdp`, empty cards (built-in issuer, random EID), and one order per
    device whose activation code goes into the device's ``[activation]`` table.

    The SM-DP+ reports installations to ``broker`` (given here or to :meth:`start`; the
    registry then binds each ICCID to the eUICC that installed it); without one it only
    serves downloads. :meth:`agent_env` is what each agent's environment needs once
    started (the CA file of the SM-DP+'s TLS certificate, ``workdir/smdp/pki/ci.pem``).
    """

    def __init__(self, *, host: str = "localhost", broker: str | None = None,
                 prefix: str | None = None) -> None:
        self.host = host
        self.broker = broker
        self.prefix = prefix
        self.smdp: SmdpService | None = None
        self._codes: dict[Path, str] = {}

    def start(self, procs: ProcessGroup, workdir: Path, *, broker: str | None = None) -> None:
        self.smdp = start_smdp(workdir, procs, host=self.host, broker=broker or self.broker,
                               prefix=self.prefix)

    def make_card(self, device: SubscribedDevice) -> str:
        if self.smdp is None:
            raise RuntimeError("start the SM-DP+ before making cards")
        state = CardState.new(profiles=[])
        device.card_state.parent.mkdir(parents=True, exist_ok=True)
        state.save(device.card_state)
        self._codes[device.card_state] = self.smdp.order(device.iccid, device.imsi,
                                                         device.msisdn, eid=state.eid)
        return state.eid

    def activation(self, device: SubscribedDevice) -> dict[str, Any] | None:
        return {"code": self._codes[device.card_state]}

    def agent_env(self) -> dict[str, str]:
        return {} if self.smdp is None else self.smdp.agent_env()

    def describe(self, cards: int) -> list[str]:
        """What the rig says of this source once the cards are made."""
        if self.smdp is None:
            return []
        return [f"sm-dp+      ES9+ over HTTPS at {self.smdp.address}; {cards} empty eUICCs, "
                "one profile order each"]

    def close(self) -> None:
        if self.smdp is not None:
            self.smdp.close()
