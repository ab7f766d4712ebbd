"""The dashboard, its JSON API and the `http` triggers' endpoint, served by the service itself.

Only the standard library's threaded HTTP server and Pillow (thumbnails): the
service runs on a Raspberry Pi beside everything else, and factory networks
have no internet, so pages, styles and scripts ship inside this package.
"""

from capture.web.server import WebError, WebServer

__all__ = ["WebError", "WebServer"]
