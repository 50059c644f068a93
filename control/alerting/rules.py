"""Alert rules: what one says, the checks a body schema cannot make, and its write-only webhook secret.

A rule's content is stored whole, defaults filled in (:func:`normalise`), so the evaluator reads the
same fields whichever version wrote them. The webhook signing secret is sealed for the rule
(``alert-webhook:<rule id>``) into ``webhook_secret_sealed``; people see ``webhook_secret_set``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from control.validation import check_url
from core.errors import FieldError
from core.sealing import Sealer, SealError
from core.ssrf import TargetNotAllowed, TargetPolicy

__all__ = [
    "COMPARISONS",
    "METRICS",
    "SECRET_SEALED",
    "Rule",
    "check_rule",
    "compare",
    "has_webhooks",
    "normalise",
    "open_secret",
    "seal_secret",
    "shown",
    "span_s",
]

METRICS = ("error_rate", "p95_latency_ms", "p99_latency_ms", "calls_per_second", "dead_letters_per_minute",
           "circuit_open")
COMPARISONS = (">", ">=", "<", "<=")
SECRET_SEALED = "webhook_secret_sealed"
SECRET_SET = "webhook_secret_set"
MAX_WEBHOOKS = 10
MAX_EMAILS = 20
# Windows are read from the 10 s metric windows up to an hour, from the 1 min ones beyond.
MIN_WINDOW_S, MAX_WINDOW_S = 10, 86_400
MAX_DURATION_S = 86_400
_SPAN = re.compile(r"([0-9]{1,6})(s|m|h)")
_UNIT = {"s": 1, "m": 60, "h": 3600}
DEFAULTS: dict[str, Any] = {"description": "", "enabled": True, "api": None, "window": "5m", "duration": "0s",
                            "channels": {"webhooks": [], "emails": []}, "escalation": None}


def span_s(text: str) -> int:
    """Seconds of a span such as ``30s``, ``5m`` or ``1h``; ValueError for anything else."""
    m = _SPAN.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a span such as 30s, 5m or 1h")
    return int(m.group(1)) * _UNIT[m.group(2)]


def compare(value: float | None, comparison: str, threshold: float) -> bool:
    """Whether the condition holds; no value (nothing measured) never holds."""
    if value is None:
        return False
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold,
            "<=": value <= threshold}[comparison]


@dataclass(frozen=True)
class Rule:
    id: str
    org_id: str | None
    org_slug: str | None
    version: int
    name: str
    enabled: bool
    metric: str
    api: str | None
    comparison: str
    threshold: float
    window_s: int
    duration_s: int
    webhooks: tuple[str, ...]
    emails: tuple[str, ...]
    escalate_after_s: int | None
    escalation_webhooks: tuple[str, ...]
    escalation_emails: tuple[str, ...]
    secret_sealed: str | None

    @classmethod
    def of(cls, id_: str, org_id: str | None, org_slug: str | None, version: int, content: dict[str, Any]) -> Rule:
        c = {**DEFAULTS, **content}
        channels = c.get("channels") or {}
        escalation = c.get("escalation") or {}
        return cls(id=id_, org_id=org_id, org_slug=org_slug, version=version, name=c["name"], enabled=bool(c["enabled"]),
                   metric=c["metric"], api=c.get("api"), comparison=c["comparison"], threshold=float(c["threshold"]),
                   window_s=span_s(c["window"]), duration_s=span_s(c["duration"]),
                   webhooks=tuple(channels.get("webhooks") or ()), emails=tuple(channels.get("emails") or ()),
                   escalate_after_s=span_s(escalation["after"]) if escalation.get("after") else None,
                   escalation_webhooks=tuple(escalation.get("webhooks") or ()),
                   escalation_emails=tuple(escalation.get("emails") or ()), secret_sealed=c.get(SECRET_SEALED))


def normalise(data: dict[str, Any]) -> dict[str, Any]:
    """The content as stored: every optional field present, the read-only marker dropped."""
    out = {**DEFAULTS, **{k: v for k, v in data.items() if k != SECRET_SET}}
    out["channels"] = {"webhooks": [], "emails": [], **(out.get("channels") or {})}
    if out.get("escalation") is not None:
        out["escalation"] = {"webhooks": [], "emails": [], **out["escalation"]}
    return out


def _check_span(value: Any, field: str, low: int, high: int, errors: list[FieldError]) -> int | None:
    try:
        seconds = span_s(str(value))
    except ValueError:
        errors.append(FieldError(field, "must be a span such as 30s, 5m or 1h"))
        return None
    if not low <= seconds <= high:
        errors.append(FieldError(field, f"must be from {low} s to {high} s"))
        return None
    return seconds


def check_rule(content: dict[str, Any], policy: TargetPolicy) -> list[FieldError]:
    """What the schema cannot say: spans, the metric's range, channel counts, and that every webhook
    is an http(s) URL the SSRF guard lets through (its literal host; names are judged when sent)."""
    errors: list[FieldError] = []
    window = _check_span(content["window"], "window", MIN_WINDOW_S, MAX_WINDOW_S, errors)
    if window is not None and window % (10 if window <= 3600 else 60):
        errors.append(FieldError("window", "must be a multiple of 10 s (of 1 min beyond 1 h)"))
    _check_span(content["duration"], "duration", 0, MAX_DURATION_S, errors)
    threshold = content["threshold"]
    if content["metric"] == "error_rate" and not 0 <= threshold <= 1:
        errors.append(FieldError("threshold", "an error rate is a fraction from 0 to 1"))
    elif threshold < 0 and content["metric"] != "error_rate":
        errors.append(FieldError("threshold", "must not be negative"))
    groups = [("channels", content["channels"])]
    if content.get("escalation") is not None:
        _check_span(content["escalation"].get("after"), "escalation.after", 1, 7 * 86_400, errors)
        groups.append(("escalation", content["escalation"]))
    for where, group in groups:
        webhooks, emails = group.get("webhooks") or [], group.get("emails") or []
        if len(webhooks) > MAX_WEBHOOKS:
            errors.append(FieldError(f"{where}.webhooks", f"must have at most {MAX_WEBHOOKS} items"))
        if len(emails) > MAX_EMAILS:
            errors.append(FieldError(f"{where}.emails", f"must have at most {MAX_EMAILS} items"))
        for i, url in enumerate(webhooks):
            field = f"{where}.webhooks[{i}]"
            problems = check_url(url, field)
            if not problems:
                try:
                    policy.check_host(_host(url))
                except TargetNotAllowed as exc:
                    problems = [FieldError(field, exc.message)]
            errors.extend(problems)
    if content.get("escalation") is not None and not (content["escalation"]["webhooks"] or content["escalation"]["emails"]):
        errors.append(FieldError("escalation", "names no webhook or e-mail address to escalate to"))
    return errors


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def has_webhooks(content: dict[str, Any]) -> bool:
    return bool((content.get("channels") or {}).get("webhooks")) or bool((content.get("escalation") or {}).get("webhooks"))


def _context(rule_id: str) -> str:
    return f"alert-webhook:{rule_id}"


def seal_secret(content: dict[str, Any], rule_id: str, previous: str | None, sealer: Sealer) -> dict[str, Any]:
    """``content`` with ``webhook_secret`` moved, sealed, into ``webhook_secret_sealed``; left out, the stored
    one stays. The same secret again keeps the same blob, so an unchanged save writes no new version."""
    out = {k: v for k, v in content.items() if k not in ("webhook_secret", SECRET_SEALED)}
    given = content.get("webhook_secret")
    if given is None:
        if previous:
            out[SECRET_SEALED] = previous
        return out
    if previous:
        try:
            if open_secret(rule_id, previous, sealer) == given:
                out[SECRET_SEALED] = previous
                return out
        except SealError:
            pass
    out[SECRET_SEALED] = sealer.seal_json(given, _context(rule_id))
    return out


def open_secret(rule_id: str, sealed: str, sealer: Sealer) -> str:
    return str(sealer.open_json(sealed, _context(rule_id)))


def shown(content: dict[str, Any]) -> dict[str, Any]:
    """What people may see: whether a secret is set, never the sealed value."""
    out = {k: v for k, v in content.items() if k != SECRET_SEALED}
    if "metric" in content:  # a rule (not some other view passed through)
        out[SECRET_SET] = bool(content.get(SECRET_SEALED))
    return out
