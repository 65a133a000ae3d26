"""Web plumbing around the routes: what only a web process needs.

`server` (uvicorn protocol with a header deadline), `middleware` (pure ASGI: request id, access
log, metrics, security headers; the stack's order), `bodies` (request-body size limits and
deadlines), `handlers` (every failure as the one JSON error shape), `ratelimit` (the limits
and the route dependency that applies them), `ops` (the operations resources the lifespan
owns: rate limits, error ring, readiness, Sentry issues).
"""
