"""The versions of numbers (:meth:`Store.read_versions`) kept while the database says
nothing changed, so that a query answered from the read model reads no row.

SQLite's ``PRAGMA data_version`` changes whenever a connection other than the one asking
commits, and stays the same across that connection's own commits. Two connections are
asked:

* ``read``, the network thread's own (it reads the versions too, and never writes): its
  number changes with every commit of any other connection, audit entries included;
* ``watch``, on which the bridge writes its audit entries: its number changes with every
  commit but those audit entries (its own worker's, another bridge process's, an
  administration command's), so an unchanged ``watch`` number means no version changed.

The kept versions belong to an *epoch*, opened with both numbers taken before anything of
it was read. A query asks ``read`` first: unchanged, nobody committed anything since the
epoch's numbers were taken, and what the epoch holds is current. Changed, it asks
``watch``: unchanged, only audit entries were committed meanwhile, and the epoch goes on
(under ``read``'s new number); changed, a new epoch begins and every number is read again
as it is asked for. While the audit writer holds ``watch`` (writing a batch), ``read``'s
number cannot change (the writer holds the database's write lock), so queries keep
being answered from what is known; only a query that finds ``read`` changed and
``watch`` busy reads its versions from the store.

Before either number, a query looks at the store's commit marker (SQLite: the WAL index
header in shared memory, rewritten by every commit before it returns): unchanged since
the epoch was last found current, nobody committed anything, and no statement is run.

Where the numbers cannot be had (the backend has none, as PostgreSQL), the versions are
read from ``read`` for every query. PostgreSQL's LISTEN/NOTIFY would spare that round
trip but not stay exact: a notification reaches the listening session after the
committing session's COMMIT has returned, so a query caused by that commit (its reply
seen by an app, which asks again) can arrive before it.
"""

from __future__ import annotations

from broker_bridge.registry.reads import Versions
from broker_bridge.storage.base import Store

#: Numbers kept at most; beyond that all are forgotten and read again.
DEFAULT_LIMIT = 2_000_000


class KnownVersions:
    """Versions by number, each with the epoch it was read in (see the module's notes).

    Used by one thread (the bridge's network thread) after :meth:`fill`.
    """

    def __init__(self, watch: Store, read: Store, *, limit: int = DEFAULT_LIMIT) -> None:
        self.watch = watch
        self.read = read
        self.limit = limit
        self.hits = self.misses = self.unwatched = 0
        self._seen: dict[str, tuple[int, Versions | None]] = {}
        self._epoch = 0
        #: The numbers of ``read`` and ``watch`` under which the epoch's versions are
        #: current; None: not taken (every read goes to the store).
        self._read_number: int | None = None
        self._watch_number: int | None = None
        #: A cheaper sign of any commit (Store.commit_marker), and its value when the
        #: epoch was last found current.
        self._marker = read.commit_marker()
        self._mark: bytes | None = None

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

    def _new_epoch(self) -> bool:
        """Begin an epoch with both numbers taken now; False when they cannot be had."""
        read_number = self.read.data_version()
        watch_number = self.watch.data_version()
        self._epoch += 1
        if read_number is None or watch_number is None:
            self._read_number = self._watch_number = None
            return False
        self._read_number, self._watch_number = read_number, watch_number
        return True

    def fill(self) -> int:
        """Read the versions of every number at once; how many are kept."""
        mark = self._marker() if self._marker is not None else None
        if not self._new_epoch():
            return 0
        self._mark = mark
        # Read after the numbers were taken: at least as new as they are.
        found = self.read.number_versions()
        if len(found) > self.limit:
            return 0
        epoch = self._epoch
        self._seen = {msisdn: (epoch, versions) for msisdn, versions in found.items()}
        return len(self._seen)

    def _current(self) -> bool:
        """Whether the epoch's versions are current; False when that cannot be told now
        (then the caller reads from the store)."""
        # Taken first: unchanged later, nothing was committed since the epoch was found
        # current after it, and the numbers need not be asked.
        mark = self._marker() if self._marker is not None else None
        if mark is not None and mark == self._mark:
            return True
        current = self._asked()
        self._mark = mark if current else None
        return current

    def _asked(self) -> bool:
        """:meth:`_current` by the connections' numbers."""
        known = self._read_number
        if known is None:
            return self._new_epoch()
        now = self.read.data_version()
        if now == known:
            return True  # nobody committed anything
        if now is None:
            return False
        watched = self.watch.data_version()  # after read's number: covers all it saw
        if watched is None:
            return False  # the audit writer is writing: nothing is known of the others
        if watched == self._watch_number:
            self._read_number = now  # only audit entries were committed meanwhile
            return True
        return self._new_epoch()

    def get(self, msisdn: str) -> Versions | None:
        """The current versions of ``msisdn`` (None for a number no contract has)."""
        if not self._current():
            self.unwatched += 1
            return self.read.read_versions(msisdn)
        epoch = self._epoch
        seen = self._seen.get(msisdn)
        if seen is not None and seen[0] == epoch:
            self.hits += 1
            return seen[1]
        self.misses += 1
        versions = self.read.read_versions(msisdn)  # after the numbers: as new as they
        if len(self._seen) >= self.limit:
            self._seen.clear()
        self._seen[msisdn] = (epoch, versions)
        return versions
