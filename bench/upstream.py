"""The upstream stub for benchmarks: a small fixed JSON answer, as cheap as aiohttp allows."""
from __future__ import annotations

import argparse

from aiohttp import web

BODY = b'{"ok":true,"items":[1,2,3]}'


def stub_app() -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(stub_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
