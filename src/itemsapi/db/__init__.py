"""The database: the pool (pool.py), the error mapping every statement runs under
(database.py), the SQL on items (statements.py) and the two repositories, the only doors to
their tables (items.py, keys.py); schema migrations (migrations.py), the facts a server is
checked for at start (server.py) and the readiness check (health.py); streaming export and
import (transfer.py, with each export format's statement and row readers in export_rows.py).

May import: itemsapi.config, itemsapi.errors, itemsapi.metrics, and nothing else of this
project (no Flask either): the cache, auth and web packages build on this one.
"""
