"""The dashboard, its JSON API and the `http` triggers' endpoint, served by the service itself.

FastAPI routes (app.py) behind one access middleware (access.py), run by
uvicorn on a thread of the service (server.py); the service is seen through
the narrow `ServiceView` (view.py) and never imported. Pages, styles and
scripts ship inside this package: factory networks have no internet. Import
`capture.web.server` for `WebServer`: this package itself loads nothing, so
a service without `[web]` never pays for FastAPI.
"""
