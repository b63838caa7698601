"""itemsapi: a REST API for items on PostgreSQL (Flask, raw SQL on a psycopg3 pool, Granian)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("itemsapi")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
