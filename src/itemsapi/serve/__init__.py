"""Serving: `itemsapi serve` around Granian (server.py): the port, the checks at start
(checks.py), the folders its workers share (worker_folders.py: the start line of start_line.py
and the write ring), each worker's start; and the embedded PostgreSQL the commands use when no
DATABASE_URL is set (embedded.py).

May import: itemsapi.app (in each worker, to build the app), itemsapi.db, itemsapi.cache,
itemsapi.config, itemsapi.errors, itemsapi.jsonlog; nothing imports this package but the CLI.
"""
