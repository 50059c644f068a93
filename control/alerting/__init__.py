"""Alerts (docs/alerts.md): rules (rules.py), their metrics (measure.py), the evaluator (evaluator.py)
and the notifications it sends (notify.py)."""
from control.alerting.evaluator import AlertEvaluator

__all__ = ["AlertEvaluator"]
