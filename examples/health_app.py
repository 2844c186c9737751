"""A health app on the pairing SDK: pair with a user's number, then follow the devices.

    python examples/health_app.py mqtt://127.0.0.1:1883 +4915112345678 [CURSOR]

The app registered with the operator as ``health-app`` (trust level ``verified``, purpose
``health-monitoring``) waits for the user's consent, prints every device of the contract,
then every device that joins, changes or leaves, until the pairing ends or it is
interrupted. It follows this pairing only: the events of the app's earlier pairings, which
the registry keeps, are history. The cursor printed on exit resumes where it stopped.
The topic prefix is ``$MPS_PREFIX`` (default ``mps/v1``).
"""

from __future__ import annotations

import os
import sys

from mps_sdk.client import PairingClient
from mps_sdk.errors import PairingError, RedirectError
from mps_wire.messages import EventKind
from mps_wire.records import DeviceRecord
from mps_wire.topics import DEFAULT_PREFIX, Topics


def describe(device: DeviceRecord) -> str:
    """One device as a line: its id, model and addresses."""
    return f"{device.device_id} {device.model.model or '-'} {', '.join(device.ip) or '-'}"


def main(broker: str, msisdn: str, cursor: int | None = None) -> int:
    topics = Topics(os.environ.get("MPS_PREFIX") or DEFAULT_PREFIX)
    with PairingClient(broker, "health-app", topics=topics) as app:
        try:
            if cursor is None:
                # From the app's newest event on: what happens to this pairing from now.
                cursor = app.newest_seq()
            answer = app.pair(msisdn, "health-monitoring")
        except RedirectError as other:
            print(f"{msisdn} is served by {other.name}: ask {other.registry}")
            return 1
        except PairingError as exc:
            print(f"cannot pair: {exc}")
            return 1
        shown = answer.active
        if answer.active:
            print(f"paired: {len(answer.devices)} devices")
            for device in answer.devices:
                print(f"  {describe(device)}")
        else:
            print(f"waiting for the user's consent (pairing {answer.pairing})")
        try:
            for event in app.events(since=cursor, pairing=answer.pairing):
                cursor = event.seq
                if event.kind is EventKind.PAIRING_GRANTED:
                    if not shown:
                        print(f"paired: {len(event.devices)} devices")
                        for device in event.devices:
                            print(f"  {describe(device)}")
                    shown = True
                elif event.device is not None:
                    print(f"{event.kind}: {describe(event.device)} {' '.join(event.changes)}"
                          .rstrip())
                else:
                    print(f"{event.kind}: {event.reason}")
                    if event.kind in (EventKind.PAIRING_DENIED, EventKind.PAIRING_ENDED):
                        break
        except KeyboardInterrupt:
            pass
    print(f"resume with cursor {cursor}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else None))
