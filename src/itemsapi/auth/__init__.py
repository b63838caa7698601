"""Access control (docs/operations.md, "Access control"): API keys with scopes (keys.py) or
OpenID Connect bearer tokens (jwt_tokens.py), checked for every request from its headers alone,
before its body is read (enforce.py), by the rule in scopes.py. The development key of the
embedded default is dev_key.py's.

May import: itemsapi.cache (a worker's cache of key records), itemsapi.db (the api_keys
repository), itemsapi.config, itemsapi.errors, itemsapi.metrics; never Flask.
"""
