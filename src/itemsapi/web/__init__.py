"""HTTP: everything that knows about Flask and WSGI. Request telemetry (telemetry.py), admission
control with credentials and body reading (admission.py, bodies.py), the one path from any
error to its problem+json response (problems.py), request and response models (schemas.py,
models.py), the list query and its cursors (listing.py, pagination.py), the views (items.py,
probes.py, ops.py, docs.py) and the OpenAPI document (openapi.py). What the views need is handed
in as one typed Deps (deps.py); each request's own state is its RequestContext (context.py).

May import: itemsapi.auth, itemsapi.cache, itemsapi.db, itemsapi.config, itemsapi.errors,
itemsapi.metrics, itemsapi.jsonlog. Nothing below imports this package.
"""
