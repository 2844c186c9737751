"""The registry's rules, each operation one unit of work on the store.

:class:`Registry` is what the MQTT service (:class:`broker_bridge.service.Bridge`) and the
administration commands share, composed of one class per concern: registrations and
device keys (:mod:`.registrations`), the eIM's profile state changes
(:mod:`.profiles`), app requests and pairing (:mod:`.pairing`), consent
(:mod:`.consent`), operator data (:mod:`.operator_data`), app administration
(:mod:`.apps`) and the housekeeping (:mod:`.housekeeping`). Every change and the events
it causes are written in one :class:`~broker_bridge.registry.work.UnitOfWork`: an app's
events (``device-added`` when a device joins its paired contract, ...) get their sequence
numbers there, so nothing is announced that was not stored and nothing stored goes
unannounced. Publishing is the caller's job, after the commit: each operation returns
:class:`Effects` naming the events to publish and the contracts whose consent prompts
changed.

Refused requests change no registry state; requests from a known party (an app, a user
agent, the operator) are recorded in the audit log with their answer, refused ones too,
while undecodable or malformed requests are only logged.
"""

from broker_bridge.registry.apps import AppRules
from broker_bridge.registry.consent import ConsentRules
from broker_bridge.registry.core import DEFAULT_CONSENT_TTL, SignaturePolicy, new_id
from broker_bridge.registry.housekeeping import Housekeeping
from broker_bridge.registry.operator_data import OperatorRules
from broker_bridge.registry.pairing import EVENTS_PAGE_BYTES, PairingRules
from broker_bridge.registry.profiles import PROFILES_SOURCE, ProfileRules
from broker_bridge.registry.registrations import (
    BINDING_SOURCE,
    INSTALLATIONS_SOURCE,
    RegistrationRules,
)
from broker_bridge.registry.work import Effects, Outcome, UnitOfWork, refusal

__all__ = [
    "BINDING_SOURCE",
    "DEFAULT_CONSENT_TTL",
    "EVENTS_PAGE_BYTES",
    "INSTALLATIONS_SOURCE",
    "PROFILES_SOURCE",
    "Effects",
    "Outcome",
    "Registry",
    "SignaturePolicy",
    "UnitOfWork",
    "new_id",
    "refusal",
]


class Registry(RegistrationRules, PairingRules, ConsentRules, OperatorRules, AppRules,
               ProfileRules, Housekeeping):
    """The registry's operations over ``store``; see the module documentation.

    ``consent_ttl`` is how long (seconds) a consent prompt stays open; ``signatures``
    which registrations must be signed (default: those of devices with an enrolled key,
    so that devices provisioned without keys keep working). Constructing does no I/O.
    Safe to use from several threads, and from several processes sharing a store.
    """
