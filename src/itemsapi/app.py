"""The application factory: `itemsapi.app:create_app` (Granian calls it once per worker, through
`itemsapi.server:worker_app`)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from itemsapi import (
    admission,
    auth,
    cached_items,
    db,
    http_errors,
    jsonlog,
    listener,
    metrics,
    middleware,
    migrations,
)
from itemsapi.api import cache as cache_api
from itemsapi.api import docs, index, items, probes
from itemsapi.api import metrics as metrics_api
from itemsapi.config import ConfigError, Settings
from itemsapi.health import DatabaseCheck
from itemsapi.responses import OrjsonProvider


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment; `test_config` overrides Settings fields by name."""
    settings = Settings.from_env()
    if test_config:
        settings = settings.replace(**test_config)
    if not settings.database_url:
        raise ConfigError(
            "DATABASE_URL is not set: point it at a PostgreSQL database, "
            "or run `itemsapi serve`, which starts the embedded one"
        )
    jsonlog.configure(settings.log_level)

    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.url_map.converters["item_id"] = items.ItemIdConverter
    app.url_map.strict_slashes = False

    db.init_app(app)
    required = {m.version: m.path.name for m in migrations.discover()}
    app.extensions[probes.CHECK_KEY] = DatabaseCheck(
        app.extensions[db.REPOSITORY_KEY], settings.ready_timeout, required
    )
    metrics.init_app(app, app.extensions[db.POOL_KEY])
    changes = listener.init_app(app)
    cached_items.init_app(app, app.extensions[db.REPOSITORY_KEY], changes)
    http_errors.init_app(app)
    admission.init_app(app)  # inside the telemetry wrapper: refusals are logged and counted
    middleware.init_app(app)
    auth.init_app(app)
    app.register_blueprint(items.bp, url_prefix=items.VERSION_PREFIX)
    # The paths from before /v1, answering as they always have, marked deprecated.
    app.register_blueprint(items.bp, name=items.UNVERSIONED)
    app.register_blueprint(index.bp)
    app.register_blueprint(probes.bp)
    app.register_blueprint(metrics_api.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(cache_api.bp)
    listener.start_app(app)  # once every subscriber has subscribed
    return app


def close_app(app: Flask) -> None:
    """Stop what create_app started: the pool-metrics sampler, the change listener, the write
    announcer, the database check, the pool."""
    metrics.close_app(app)
    listener.close_app(app)
    cached_items.close_app(app)
    check = app.extensions.pop(probes.CHECK_KEY, None)
    if check is not None:
        check.close()
    db.close_app(app)
