"""A script's text that no message can carry (a lone surrogate) is the script's fault (F-SCRIPT-1).

Set in a header, a query or path parameter, or in a response header, it is bad output: ``transform_failed``
502, dead-lettered with its reason. In an exception's message, a ``reject()`` message or a log line, it is
replaced (U+FFFD) so the error Reply and the dead letter can still be written. Before, each of these made
processors (or egress) fail to encode the call or even its error Reply: 500 ``internal_error``.
"""
from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from core.settings import Settings
from tests.dead_letter_support import wait_for_dead_letter
from tests.support import IngressInstance, Stage, wait_until

LONE = "chr(0xdce9)"


def _request_script(body: str) -> str:
    return f"def transform_request(request, ctx):\n{body}\n"


async def _call(ingress: IngressInstance, stage: Stage, upstream: str, script: str, *,
                path: str = "/sur/{id}", target: str = "/echo/{id}") -> tuple[int, dict[str, Any]]:
    staged = await stage.api(upstream + target, path=path, methods=["GET"], script=script)
    await wait_until(lambda: staged["api"]["id"] in ingress.snapshot.apis)
    async with aiohttp.ClientSession() as s, s.get(f"{ingress.url}/{staged['org']}/sur/7") as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize(("body", "where"), [
    (f"    request.headers['X-S'] = 'a' + {LONE}", "header 'X-S'"),
    (f"    request.headers[{LONE}] = 'a'", "header"),  # refused by the worker (not a header name)
    (f"    request.query['q'] = {LONE}", "query parameter 'q'"),
    (f"    request.path_params['id'] = {LONE}", "path parameter 'id'"),
    (f"    request.path = '/x' + {LONE}", "request.path"),
    (f"    request.url = 'http://127.0.0.1/' + {LONE}", "request.url"),
])
async def test_a_lone_surrogate_in_the_scripts_request_is_transform_failed(
        settings: Settings, ingress: IngressInstance, stage: Stage, upstream: str, body: str, where: str) -> None:
    status, answer = await _call(ingress, stage, upstream, _request_script(body))
    assert status == 502, answer
    assert answer["code"] == "transform_failed"
    assert where in answer["message"]
    letter = await wait_for_dead_letter(settings, answer["correlation_id"])
    assert letter["error_code"] == "transform_failed" and where in letter["error_message"]


async def test_a_lone_surrogate_in_an_exception_is_replaced_and_keeps_its_line(
        settings: Settings, ingress: IngressInstance, stage: Stage, upstream: str) -> None:
    script = _request_script(f"    ctx.log('about to fail ' + {LONE})\n    raise ValueError('bad ' + {LONE})")
    status, answer = await _call(ingress, stage, upstream, script)
    assert status == 502, answer
    assert answer["code"] == "transform_failed" and answer["line"] == 3
    assert "ValueError: bad \ufffd" in answer["message"]
    letter = await wait_for_dead_letter(settings, answer["correlation_id"])
    assert "ValueError: bad \ufffd" in letter["error_message"]
    assert any("about to fail \ufffd" in line for line in letter["details"])


async def test_a_lone_surrogate_in_a_reject_message_is_replaced(
        ingress: IngressInstance, stage: Stage, upstream: str) -> None:
    script = _request_script(f"    reject(409, 'taken: ' + {LONE}, code='taken')")
    status, answer = await _call(ingress, stage, upstream, script)
    assert status == 409, answer
    assert answer["code"] == "taken" and answer["message"] == "taken: \ufffd"


async def test_a_lone_surrogate_in_the_scripts_response_is_transform_failed(
        settings: Settings, ingress: IngressInstance, stage: Stage, upstream: str) -> None:
    script = _request_script("    pass") + (
        "def transform_response(response, ctx):\n"
        f"    response.headers['X-S'] = {LONE}\n")
    status, answer = await _call(ingress, stage, upstream, script)
    assert status == 502, answer
    assert answer["code"] == "transform_failed" and "header 'X-S'" in answer["message"]


async def test_valid_text_from_a_script_still_goes_through(ingress: IngressInstance, stage: Stage, upstream: str) -> None:
    script = _request_script("    request.headers['X-S'] = 'caf\u00e9 \U0001F600'\n    request.query['q'] = '\u00fc'")
    status, answer = await _call(ingress, stage, upstream, script)
    assert status == 200, answer
    assert answer["headers"]["X-S"] == "caf\u00e9 \U0001F600"
    assert answer["query"] == {"q": "\u00fc"}
