"""The in-process baseline: the same work as the pipeline, without Kafka.

One aiohttp process resolves the route, builds and encodes the InboundCall,
runs the processors' router on it, decodes the OutboundCall, makes the REST
call on the egress caller, and encodes and decodes the Reply. What the full
path costs above this is the price of the broker hops and process boundaries.
"""
from __future__ import annotations

import argparse
import time
import uuid

from aiohttp import web

from core.settings import load_settings
from core.snapshot import ConfigSnapshot, events_from_file
from egress.caller import RestCaller
from processors.router import Router
from schemas import decode, encode


def baseline_app(routes_file: str) -> web.Application:
    settings = load_settings(routes_file=routes_file)
    snapshot = ConfigSnapshot()
    snapshot.load(events_from_file(routes_file))
    router = Router(settings, snapshot)
    caller = RestCaller(connect_timeout_s=2, allow_private=True)

    async def handle(request: web.Request) -> web.Response:
        org, path = request.match_info["org"], "/" + request.match_info["path"]
        match = snapshot.resolve(org, request.method, path)
        body = await request.read()
        now = int(time.time() * 1000)
        call = {
            "correlation_id": uuid.uuid4().hex, "org": org, "api_id": match.api["id"], "method": request.method,
            "path": path, "path_params": match.path_params,
            "query": [{"name": k, "value": v} for k, v in request.query.items()],
            "headers": [{"name": k, "value": v} for k, v in request.headers.items()],
            "body": body, "received_at_ms": now, "deadline_ms": now + 5000,
            "reply_topic": settings.topics.replies, "reply_partition": 0,
        }
        outcome = await router.process(encode("InboundCall", call))
        _, outbound = decode(outcome.messages[0].value, expected="OutboundCall")
        resp = await caller.call(outbound["method"], outbound["url"], [(h["name"], h["value"]) for h in outbound["headers"]], outbound["body"], 5)
        reply = {"correlation_id": call["correlation_id"], "status": resp.status,
                 "headers": [{"name": k, "value": v} for k, v in resp.headers], "body": resp.body}
        _, reply = decode(encode("Reply", reply), expected="Reply")
        return web.Response(status=reply["status"], body=reply["body"], content_type="application/json")

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        await caller.start()
        yield
        await caller.stop()

    app = web.Application()
    app.cleanup_ctx.append(lifecycle)
    app.router.add_route("*", "/{org}/{path:.*}", handle)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--routes", required=True)
    args = parser.parse_args()
    web.run_app(baseline_app(args.routes), host="127.0.0.1", port=args.port, access_log=None, print=None)
