"""The application factory: `create_app` builds one worker's Services and the Flask app that
serves them (Granian calls it once per worker, through `itemsapi.serve.server:worker_app`)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from itemsapi import jsonlog
from itemsapi.config import ConfigError, Settings
from itemsapi.services import Services
from itemsapi.web import changes, cors, docs, items, ops, probes, problems, telemetry, transfer
from itemsapi.web.admission import Admission
from itemsapi.web.deprecation import Deprecation
from itemsapi.web.deps import Deps, install
from itemsapi.web.responses import OrjsonProvider

_SERVICES = "itemsapi.services"  # kept for close_app; the views get theirs through Deps


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
    services = Services.build(settings)

    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.url_map.converters["item_id"] = items.ItemIdConverter
    app.url_map.strict_slashes = False
    # No redirect for `//`: werkzeug would build its Location from the request's Host header.
    app.url_map.merge_slashes = False
    deps = Deps(
        settings, services.cached_items, services.database, services.check, services.listener,
        services.transfers, services.identity_provider, services.changes, services.follower,
    )  # fmt: skip
    install(app, deps)
    problems.init_app(app)
    Admission(settings, services.enforcer).init_app(app)
    cors.init_app(app, settings)  # inside telemetry: preflights are logged and counted too
    telemetry.init_app(app, settings)
    # Before the items blueprint: /v1/items/export is not an item's path.
    app.register_blueprint(transfer.bp, url_prefix=items.VERSION_PREFIX)
    app.register_blueprint(items.bp, url_prefix=items.VERSION_PREFIX)
    app.register_blueprint(changes.bp, url_prefix=items.VERSION_PREFIX)
    if settings.unversioned:  # the paths from before /v1, as they always were, deprecated
        Deprecation(settings).init_app(app, items.bp)
    app.register_blueprint(probes.bp)
    app.register_blueprint(docs.bp)
    for blueprint in ops.BLUEPRINTS:
        app.register_blueprint(blueprint)
    services.open()
    app.extensions[_SERVICES] = services
    return app


def services_of(app: Flask) -> Services:
    """The Services create_app built for `app`."""
    return app.extensions[_SERVICES]


def close_app(app: Flask) -> None:
    """Stop what create_app started (at the process's exit otherwise); again is harmless."""
    services_of(app).close()
