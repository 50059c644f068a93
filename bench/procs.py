"""Child processes for the benchmark: start them, wait for them, and read their CPU time.

CPU comes from /proc/<pid>/stat (Linux only), so the bench needs nothing beyond the
project's own dependencies.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from junction.broker import die_with_parent

__all__ = ["cpu_seconds", "machine_busy_seconds", "spawn", "stop", "wait_http_ok"]

_TICKS = os.sysconf("SC_CLK_TCK")


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python <args>`` as a child that dies with this process."""
    return subprocess.Popen([sys.executable, *args], env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


def stop(procs: list[subprocess.Popen[bytes]], timeout_s: float = 20) -> None:
    """SIGTERM all, then wait for each (SIGKILL after ``timeout_s``)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


async def wait_http_ok(url: str, timeout_s: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once ``url`` answers 200; fail early if ``proc`` exits first."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if loop.time() > until:
                raise TimeoutError(f"{url} not ready in {timeout_s}s")
            await asyncio.sleep(0.1)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After "pid (comm)": comm may hold spaces, so split after its closing parenthesis.
    return text.rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == pid:
                out.append(int(entry))
    return out


def cpu_seconds(pid: int, *, tree: bool = True) -> float:
    """User+system CPU seconds of ``pid``; with ``tree``, plus its live descendants and reaped
    children (the processors' sandbox workers are children of the stage)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # Fields 14-17 of stat (utime, stime, cutime, cstime) are 11-14 here, after the comm split.
    ticks = int(fields[11]) + int(fields[12])
    if tree:
        ticks += int(fields[13]) + int(fields[14])
        return ticks / _TICKS + sum(cpu_seconds(child) for child in _children(pid))
    return ticks / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, not idle or iowait): with the
    bench's own processes subtracted, what else ran during a phase and competed with it."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICKS
