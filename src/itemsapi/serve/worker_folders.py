"""Folders `itemsapi serve` makes for its workers and hands down through the environment they
inherit (the start line, the write ring): one temporary folder each, for the server's lifetime.
Where none can be made (a read-only file system) the workers go without, with a WARNING."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def handed_down(prefix: str, env: str, value: Callable[[str], str], without: str) -> Iterator[None]:
    """A fresh folder while the block runs, named to the workers as env=value(folder); without
    one, `without` is logged and the workers find no such variable."""
    try:
        made = tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True)
    except OSError as exc:
        log.warning(without, extra={"error": str(exc)})
        yield
        return
    with made as folder:
        os.environ[env] = value(folder)
        try:
            yield
        finally:
            del os.environ[env]
