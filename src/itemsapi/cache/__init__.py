"""The read cache: each worker's store of items and list pages (store.py), the repository the
views read and write through (items.py), and what keeps every worker of every replica coherent:
the write ring between one server's workers (ring.py), announcements of this server's writes to
the others (announcer.py), and the LISTEN connection that hears every writer (listener.py),
whose payloads notification.py defines.

May import: itemsapi.db, itemsapi.config, itemsapi.errors, itemsapi.metrics; never Flask.
"""
