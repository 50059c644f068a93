"""The web console (ui/, docs/console.md), served by the control service at ``/``.

The console is a static single-page app built by Vite into ``ui/dist``: ``index.html`` plus content-hashed
files in ``assets/``. It talks only to ``/api/v1``. Here:

- ``/assets/<name>``: the hashed files, ``Cache-Control: public, max-age=31536000, immutable``;
- ``/`` and the console's own pages (``/login``, ``/orgs/...``, ``/admin/...``, ``/account``):
  ``index.html`` with ``Cache-Control: no-cache``, so a new build shows on the next load;
- when the console is not built, those pages answer 503 with a short HTML page saying how to build it.

Only GET and HEAD on those paths are routed here, so the API's own 404 and 405 answers are untouched.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from aiohttp import web

from core.errors import NotFound

__all__ = ["CONSOLE_CSP", "DEFAULT_DIST", "console_routes"]

DEFAULT_DIST = Path(__file__).resolve().parent.parent / "ui" / "dist"

# The console's own scripts and styles, calls to the same origin, nothing from elsewhere.
# (CodeMirror sets element styles at run time: hence style-src 'unsafe-inline'.)
CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")

_IMMUTABLE = "public, max-age=31536000, immutable"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
# The console's pages (react-router routes in ui/src/App.tsx); anything else stays the API's 404.
_PAGES = r"{page:(login|account|orgs|admin)(/.*)?}"

NOT_BUILT = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Junction console: not built</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}
code,pre{{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}}pre{{padding:.6rem}}</style></head>
<body>
<h1>The web console is not built</h1>
<p>The management API is running (at <a href="/api/v1/openapi.json">/api/v1</a>), but the console's files are
not in <code>{dist}</code>.</p>
<p>Building it needs Node.js 20.19 or later with npm. Then, in the repository:</p>
<pre>make console          # or: cd ui &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p><code>make run</code> builds it too when Node.js and npm are installed. Reload this page afterwards.
A console built elsewhere is served from the folder <code>JUNCTION_CONSOLE_DIR</code> names.
See docs/console.md.</p>
</body>
</html>
"""


def console_routes(dist: Path | None = None) -> list[web.RouteDef]:
    """GET (and HEAD) routes for the console built into ``dist`` (default ``ui/dist``)."""
    root = (dist or DEFAULT_DIST).resolve()

    async def page(request: web.Request) -> web.StreamResponse:
        index = root / "index.html"
        if not index.is_file():
            return web.Response(status=503, text=NOT_BUILT.format(dist=html.escape(str(root))),
                                content_type="text/html", headers={"Cache-Control": "no-store",
                                                                   "Content-Security-Policy": CONSOLE_CSP})
        return web.FileResponse(index, headers={"Cache-Control": "no-cache", "Content-Type": "text/html; charset=utf-8",
                                                "Content-Security-Policy": CONSOLE_CSP})

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = root / "assets" / name
        if not _ASSET_NAME.match(name) or not path.is_file():
            raise NotFound("no such console file", code="not_found")
        return web.FileResponse(path, headers={"Cache-Control": _IMMUTABLE, "Content-Security-Policy": CONSOLE_CSP})

    return [web.get("/", page), web.get("/" + _PAGES, page), web.get("/assets/{name}", asset)]
