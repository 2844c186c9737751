"""Installation reports from the SM-DP+ to the operator's registry (CBOR over MQTT).

Each signed ProfileInstallationResult the SM-DP+ accepts becomes one report on the operator
topic ``{prefix}/operator/installations``: which EID installed (or failed to install)
which ICCID, with the eUICC's signed result and its certificates, so the registry can
bind the subscription to the eUICC and check the signature itself.

Reports go through an outbox in the SM-DP+'s database: :class:`MqttReportPublisher`
delivers them in order with QoS 1 and marks one delivered only after the broker's PUBACK,
so neither a restart nor an unreachable broker loses one (a report may arrive twice after a
crash; ``seq`` and ``transaction`` let the registry drop duplicates).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lpa_emulator.smdp.orders import OrderStore
from mps_mqtt.client import BrokerURL, MqttError, connect, disconnect, new_client
from mps_wire import codec
from mps_wire.topics import Topics

log = logging.getLogger(__name__)

REPORT_KIND = "installations"
"""The operator message kind (topic level) of installation reports."""

REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class InstallationReport:
    """One installation result as the registry receives it.

    ``result`` is ``installed`` or ``failed`` (``reason`` then names the SGP.22 error
    reason); ``pir`` is the eUICC-signed ProfileInstallationResult (DER) and
    ``euicc_certificate`` / ``eum_certificate`` the chain that verifies it.
    """

    eid: str
    iccid: str
    imsi: str
    msisdn: str | None
    result: str
    transaction: str
    matching_id: str
    smdp: str
    ts: int
    pir: bytes
    euicc_certificate: bytes
    eum_certificate: bytes
    reason: str | None = None

    def to_wire(self, seq: int) -> dict[str, Any]:
        """The CBOR map (text keys); ``seq`` is the report's number in the outbox."""
        msg: dict[str, Any] = {
            "v": REPORT_VERSION, "seq": seq, "eid": self.eid, "iccid": self.iccid,
            "imsi": self.imsi, "result": self.result, "transaction": self.transaction,
            "matching_id": self.matching_id, "smdp": self.smdp, "ts": self.ts,
            "pir": self.pir, "euicc_certificate": self.euicc_certificate,
            "eum_certificate": self.eum_certificate,
        }
        if self.msisdn is not None:
            msg["msisdn"] = self.msisdn
        if self.reason is not None:
            msg["reason"] = self.reason
        return msg


class Reporter(Protocol):
    """Where the SM-DP+ hands its installation reports."""

    def report(self, report: InstallationReport) -> None: ...


class OutboxReporter:
    """Keeps each report in the SM-DP+'s database and wakes the publisher.

    ``notify`` is called after a report is stored (the publisher's wake-up).
    """

    def __init__(self, store: OrderStore, notify: Callable[[], None] | None = None) -> None:
        self._store = store
        self._notify = notify

    def report(self, report: InstallationReport) -> None:
        self._store.queue_report(lambda seq: codec.encode(report.to_wire(seq)))
        if self._notify is not None:
            self._notify()


class ReportOutbox(Protocol):
    """Where reports wait for delivery (the SM-DP+'s and the eIM's databases)."""

    def pending_reports(self, limit: int = 100) -> list[tuple[int, bytes]]: ...

    def report_delivered(self, seq: int) -> None: ...


class MqttReportPublisher:
    """Delivers the outbox's reports to the broker, in order, each after its PUBACK, on
    the operator topic ``kind`` (installation reports by default).

    Runs in its own thread between :meth:`start` and :meth:`stop`; reconnects with a
    growing delay while the broker is away.
    """

    def __init__(self, store: ReportOutbox, broker: str | BrokerURL, *,
                 topics: Topics | None = None, publish_timeout: float = 10.0,
                 kind: str = REPORT_KIND) -> None:
        self._store = store
        self._broker = broker if isinstance(broker, BrokerURL) else BrokerURL.parse(broker)
        self.topic = (topics or Topics()).operator(kind)
        self._timeout = publish_timeout
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0

    def wake(self) -> None:
        """Look at the outbox now (a report was queued)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the publisher is running already")
        self._thread = threading.Thread(target=self._run, name=f"reports-{self.topic}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            client = new_client()
            try:
                connect(client, self._broker, timeout=self._timeout)
            except MqttError as exc:
                log.warning("reports to %s wait for the broker: %s", self.topic, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 0.5
            try:
                self._deliver_until_stopped(client)
            except MqttError as exc:
                log.warning("report delivery to %s interrupted: %s", self.topic, exc)
            finally:
                disconnect(client)

    def _deliver_until_stopped(self, client: Any) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            for seq, payload in self._store.pending_reports():
                info = client.publish(self.topic, payload, qos=1)
                info.wait_for_publish(self._timeout)
                if not info.is_published():
                    raise MqttError(f"no PUBACK for report {seq} within {self._timeout:g} s")
                self._store.report_delivered(seq)
                self.delivered += 1
                log.info("report %d delivered to %s", seq, self.topic)
            if not client.is_connected():
                raise MqttError("the broker connection dropped")
            self._wake.wait(5.0)
