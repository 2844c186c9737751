"""The store's queries, one class per aggregate, composed into
:class:`~broker_bridge.storage.sql.SqlStore`."""
