"""Where zeep's CPU work runs: on the event loop (zeep's async path) or in a bounded thread pool.

zeep's ``AsyncClient`` (``binding.send_async``) builds the envelope and reads the answer on the
event loop; only the POST is awaited. Its ``AsyncTransport`` needs httpx (not installed) and
would bypass the egress session and its SSRF guard, so both modes here send through the same
guarded aiohttp session; they differ only in where ``SoapCaller`` runs the CPU work:

* ``loop``: everything on the loop (what ``send_async`` does);
* ``threads-N``: everything in a ``ThreadPoolExecutor`` of N threads;
* ``hybrid``: the egress default: arguments and answers under ``INLINE_BELOW`` bytes on the
  loop, larger ones in a pool of ``CPU_THREADS``.

For each, against a SOAP server in another process (the ASMX calculator's ``Multiply``, a
small answer, and the CountryInfoService's ``FullCountryInfoAllCountries``, a large one), it
measures calls per second at a fixed concurrency and the event loop's lag: a ticker asks to
wake every millisecond and records how late it wakes, which is how long anything else on that
loop (other calls, heartbeats, timers) would have waited.

Run: ``python -m bench.soap_bench [small_calls] [large_calls]``. Writes ``bench/results/soap.json``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.procs import wait_http_ok
from egress.caller import RestCaller
from egress.soap import CPU_THREADS, INLINE_BELOW, SoapCaller
from junction.broker import free_port

__all__ = ["run_soap_bench"]

WSDL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "wsdl"
RESULTS = Path(__file__).resolve().parent / "results" / "soap.json"
CONCURRENCY = 16
COUNTRIES = 250
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


# -- the upstream (its own process, so its CPU is not the measured loop's) ----------------------

def _countries() -> bytes:
    info = "".join(
        f"<m:tCountryInfo><m:sISOCode>C{i:03d}</m:sISOCode><m:sName>Country {i}</m:sName><m:sCapitalCity>City {i}"
        f"</m:sCapitalCity><m:sPhoneCode>{i}</m:sPhoneCode><m:sContinentCode>EU</m:sContinentCode><m:sCurrencyISOCode>EUR"
        f"</m:sCurrencyISOCode><m:sCountryFlag>http://flags.example/{i}.jpg</m:sCountryFlag><m:Languages>"
        + "".join(f"<m:tLanguage><m:sISOCode>l{j}</m:sISOCode><m:sName>Language {j}</m:sName></m:tLanguage>" for j in range(3))
        + "</m:Languages></m:tCountryInfo>" for i in range(COUNTRIES))
    return (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11}"><soap:Body>'
            '<m:FullCountryInfoAllCountriesResponse xmlns:m="http://www.oorsprong.org/websamples.countryinfo">'
            f"<m:FullCountryInfoAllCountriesResult>{info}</m:FullCountryInfoAllCountriesResult>"
            "</m:FullCountryInfoAllCountriesResponse></soap:Body></soap:Envelope>").encode()


def _serve(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    calculator = (WSDL_DIR / "calculator.wsdl").read_text().replace("http://www.dneonline.com/calculator.asmx", f"{base}/calc")
    countries_wsdl = (WSDL_DIR / "CountryInfoService.wsdl").read_text().replace(
        "http://webservices.oorsprong.org/websamples.countryinfo/CountryInfoService.wso", f"{base}/countries")
    countries = _countries()
    product = (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11}"><soap:Body>'
               '<MultiplyResponse xmlns="http://tempuri.org/"><MultiplyResult>42</MultiplyResult></MultiplyResponse>'
               "</soap:Body></soap:Envelope>").encode()

    async def doc(text: str) -> web.Response:
        return web.Response(text=text, content_type="text/xml")

    app = web.Application()
    app.add_routes([
        web.get("/ok", lambda r: doc("ok")),
        web.get("/calc", lambda r: doc(calculator)), web.post("/calc", lambda r: _answer(product)),
        web.get("/countries", lambda r: doc(countries_wsdl)), web.post("/countries", lambda r: _answer(countries)),
    ])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _answer(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/xml", charset="utf-8")


# -- the measurement ---------------------------------------------------------------------------

async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        await asyncio.sleep(0.001)
        lags.append((loop.time() - asked - 0.001) * 1000)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2) if ordered else 0.0


async def _mode(name: str, threads: int, inline_below: int, base: str, calls: int, wsdl: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
    caller = RestCaller(connect_timeout_s=5, allow_private=True, max_connections=CONCURRENCY)
    await caller.start()
    cpu = concurrent.futures.ThreadPoolExecutor(threads)
    soap = SoapCaller(caller.get_bytes, caller.post, cpu=cpu, inline_below=inline_below)
    body = json.dumps(args).encode()
    try:
        await soap.call(f"{base}/{wsdl}", op, body, [], 30)  # load the WSDL, warm the pool
        lags: list[float] = []
        latencies: list[float] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(lags, stop))
        queue = iter(range(calls))

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                await soap.call(f"{base}/{wsdl}", op, body, [], 30)
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        stop.set()
        await ticker
    finally:
        await caller.stop()
        cpu.shutdown(wait=False)
    return {"mode": name, "operation": op, "calls": calls, "concurrency": CONCURRENCY,
            "calls_per_s": round(calls / elapsed, 1),
            "latency_ms": {"p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99)},
            "loop_lag_ms": {"p50": _pct(lags, 0.5), "p99": _pct(lags, 0.99), "max": round(max(lags), 2),
                            "mean": round(statistics.fmean(lags), 3)}}


async def run_soap_bench(small_calls: int = 2000, large_calls: int = 200) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.soap_bench", "--serve", str(port)],
                              cwd=Path(__file__).resolve().parents[1], stdin=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_http_ok(f"{base}/ok", proc=server)
        runs = []
        for calls, wsdl, op, args in ((small_calls, "calc", "Multiply", {"intA": 6, "intB": 7}),
                                      (large_calls, "countries", "FullCountryInfoAllCountries", {})):
            for name, threads, inline_below in (("loop", 1, sys.maxsize), ("threads-2", 2, 0), ("threads-4", 4, 0),
                                                ("hybrid", CPU_THREADS, INLINE_BELOW)):
                runs.append(await _mode(name, threads, inline_below, base, calls, wsdl, op, args))
                print(json.dumps(runs[-1]))
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "countries_per_answer": COUNTRIES,
              "inline_below": INLINE_BELOW, "runs": runs}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(int(sys.argv[2]))
    else:
        numbers = [int(a) for a in sys.argv[1:3]]
        asyncio.run(run_soap_bench(*numbers))
