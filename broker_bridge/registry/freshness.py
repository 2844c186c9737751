"""The versions of numbers (:meth:`Store.read_versions`) kept while the database says
nothing changed, so that a query answered from the read model reads no row.

SQLite's ``PRAGMA data_version`` changes whenever a connection other than the one asking
commits, and stays the same across that connection's own commits. The bridge writes
its audit entries on the connection it asks (``watch``): audit entries change no
version, and every other commit (its own worker's, another bridge process's, an
administration command's) changes the number. Versions read on any connection after the
number was taken are therefore current for as long as the number stays the same.

Where the number cannot be had (``watch`` is writing audit entries just then, or the
backend has none, as PostgreSQL), the versions are read from ``read`` as before.
"""

from __future__ import annotations

from broker_bridge.registry.reads import Versions
from broker_bridge.storage.base import Store

#: Numbers kept at most; beyond that all are forgotten and read again.
DEFAULT_LIMIT = 2_000_000


class KnownVersions:
    """Versions by number, each with the ``data_version`` taken before it was read.

    Used by one thread (the bridge's network thread) after :meth:`fill`.
    """

    def __init__(self, watch: Store, read: Store, *, limit: int = DEFAULT_LIMIT) -> None:
        self.watch = watch
        self.read = read
        self.limit = limit
        self.hits = self.misses = self.unwatched = 0
        self._seen: dict[str, tuple[int, Versions | None]] = {}

    @classmethod
    def open(cls, store: Store) -> KnownVersions | None:
        """Two new connections to ``store``'s database, filled; None where the database
        cannot be shared (an in-memory one). :meth:`close` closes them."""
        read, watch = store.sibling(), store.sibling()
        if read is store:
            return None
        read.open()
        try:
            watch.open()
        except BaseException:
            read.close()
            raise
        known = cls(watch, read)
        known.fill()
        return known

    def close(self) -> None:
        """Close both connections."""
        self.read.close()
        self.watch.close()

    def fill(self) -> int:
        """Read the versions of every number at once; how many are kept."""
        taken = self.watch.data_version()
        if taken is None:
            return 0
        # Read after the number was taken: at least as new as it.
        found = self.read.number_versions()
        if len(found) > self.limit:
            return 0
        self._seen = {msisdn: (taken, versions) for msisdn, versions in found.items()}
        return len(self._seen)

    def get(self, msisdn: str) -> Versions | None:
        """The current versions of ``msisdn`` (None for a number no contract has)."""
        now = self.watch.data_version()
        if now is None:
            self.unwatched += 1
            return self.read.read_versions(msisdn)
        seen = self._seen.get(msisdn)
        if seen is not None and seen[0] == now:
            self.hits += 1
            return seen[1]
        self.misses += 1
        versions = self.read.read_versions(msisdn)  # after the number: as new as it
        if len(self._seen) >= self.limit:
            self._seen.clear()
        self._seen[msisdn] = (now, versions)
        return versions
