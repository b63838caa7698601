"""The embedded default's development key: on the first `itemsapi serve` without DATABASE_URL
a key with every scope is created and its token kept beside the data (mode 600), so the first
five minutes stay two commands; later starts reuse it while it still works."""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path

from itemsapi.auth.keys import create_key, digest, token_key_id
from itemsapi.auth.scopes import SCOPES
from itemsapi.config import Settings
from itemsapi.db.keys import KeyRepository

log = logging.getLogger(__name__)

TOKEN_FILE = "dev-token"  # noqa: S105 - a file name
KEY_NAME = "development"


def ensure(settings: Settings, keys: KeyRepository) -> str:
    """Make sure the development token's file holds a token that works, creating the key
    (again) if not; returns the line that tells a person how to use it."""
    path = settings.data_dir.resolve() / TOKEN_FILE
    if path.is_file() and _works(keys, path.read_text().strip()):
        log.info("reusing the development API key", extra={"token_file": str(path)})
    else:
        key_id, token = create_key(keys, KEY_NAME, list(SCOPES))
        _write_private(path, token)
        log.info(
            "created a development API key with every scope",
            extra={"key_id": key_id, "token_file": str(path)},
        )
    return (
        f'Requests need the development key: curl -H "Authorization: Bearer $(cat {_shown(path)})"'
        f" http://{settings.host}:{settings.port}/v1/items"
    )


def _works(keys: KeyRepository, token: str) -> bool:
    key_id = token_key_id(token)
    row = keys.record(key_id) if key_id else None
    return bool(
        row and not row["revoked"] and hmac.compare_digest(digest(token), row["token_sha256"])
    )


def _write_private(path: Path, token: str) -> None:
    # Created 600 from the start (never readable by others, even for a moment), then renamed
    # over the old file so a reader never sees half a token.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    os.replace(partial, path)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
