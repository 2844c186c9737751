"""A health app on the pairing SDK: pair with a user's number, then follow the devices.

    python examples/health_app.py mqtt://127.0.0.1:1883 +4915112345678 [CURSOR]

The app registered with the operator as ``health-app`` (trust level ``verified``, purpose
``health-monitoring``) waits for the user's consent, prints every device of the contract,
then every device that joins, changes or leaves, until interrupted. The cursor printed on
exit resumes where it stopped.
"""

from __future__ import annotations

import sys

from mps_sdk.client import PairingClient
from mps_sdk.errors import PairingError, RedirectError
from mps_wire.messages import EventKind


def main(broker: str, msisdn: str, cursor: int = 0) -> int:
    with PairingClient(broker, "health-app") as app:
        try:
            answer = app.pair(msisdn, "health-monitoring")
        except RedirectError as other:
            print(f"{msisdn} is served by {other.name}: ask {other.registry}")
            return 1
        except PairingError as exc:
            print(f"cannot pair: {exc}")
            return 1
        if not answer.active:
            print(f"waiting for the user's consent (pairing {answer.pairing})")
        try:
            for event in app.events(since=cursor):
                cursor = event.seq
                if event.kind is EventKind.PAIRING_GRANTED:
                    print(f"paired: {len(event.devices)} devices")
                    for device in event.devices:
                        print(f"  {device.device_id} {device.model.model} {device.ip}")
                elif event.device is not None:
                    print(f"{event.kind}: {event.device.device_id} {event.device.ip} "
                          f"{' '.join(event.changes)}")
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
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 0))
