"""``report --fail-on RULE``: the rule grammar, its parser, and its evaluation on a report.

A rule is either a finding's name or a comparison::

    RULE    := "finding:" KIND | "finding:warning" | TERM OP NUMBER [UNIT]
    TERM    := FIELD | rate(COUNTER) | mean_rate(COUNTER) | restarts(COUNTER)
             | restarts | wraps
    OP      := > | >= | < | <= | == | !=
    NUMBER  := a decimal number (1, 0.1, 2.5e-3)
    UNIT    := /s | /min | /h        (rates only; the threshold is then per second)

* ``FIELD``: a counter's total increase (an exact int), or a gauge's max.
* ``rate(C)``: the peak rate of counter C, ``mean_rate(C)`` the mean rate (floats, per
  second, or per interval for a raw log without ``--interval``: a UNIT then is an error).
* ``restarts``: the intervals in which a counter restarted; ``restarts(C)`` C's restarts;
  ``wraps``: the counter wraps past 2**64.
* ``finding:KIND`` fires when the report makes that finding (``FINDING_RULES``);
  ``finding:warning`` when it makes any warning.

The threshold is read exactly (``fractions.Fraction``), so an int compares exactly and a
float compares with its exact binary value. A value the report lacks (no interval, no
record) never fires.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ._report import FINDING_RULES
from ._schema import COUNTERS, FIELD_NAMES, GAUGES

__all__ = ["Rule", "RuleError", "evaluate", "parse_rule", "GRAMMAR"]

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}
UNITS = {"s": 1, "min": 60, "h": 3600}
FUNCTIONS = ("rate", "mean_rate", "restarts")
_RULE = re.compile(r"^\s*(?P<term>[A-Za-z_][\w]*(?:\s*\(\s*[A-Za-z_]\w*\s*\))?)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
                   r"(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?:/\s*(?P<unit>\w+))?\s*$")
_CALL = re.compile(r"^(?P<func>\w+)\s*\(\s*(?P<arg>\w+)\s*\)$")

GRAMMAR = ("RULE is FIELD OP NUMBER (a counter's increase, a gauge's max), rate(COUNTER) OP NUMBER[/s|/min|/h] "
           "(peak rate), mean_rate(COUNTER) OP NUMBER[/s], restarts OP N, restarts(COUNTER) OP N, wraps OP N, "
           "or finding:KIND (finding:warning: any warning); OP is > >= < <= == !=")


class RuleError(ValueError):
    """A rule that does not parse, or names an unknown field or finding."""


@dataclass(frozen=True)
class Rule:
    """One parsed rule: ``text`` as given; a finding (``finding``) or ``term`` ``op`` ``threshold``."""

    text: str
    finding: str | None = None
    term: str = ""  # "increase", "gauge_max", "rate", "mean_rate", "restarts", "restarts_of", "wraps"
    field: str | None = None
    op: str = ""
    threshold: Fraction = Fraction(0)
    per_second: bool = False  # a UNIT was given: the threshold is per second


def _names() -> str:
    return ("counters: " + ", ".join(COUNTERS) + "; gauges: " + ", ".join(GAUGES))


def parse_rule(text: str) -> Rule:
    """``text`` as a ``Rule``; a ``RuleError`` says what is wrong."""
    stripped = text.strip()
    if stripped.startswith("finding:"):
        kind = stripped[len("finding:"):]
        if kind != "warning" and kind not in FINDING_RULES:
            raise RuleError(f"unknown finding {kind!r} in rule {text!r}; findings: warning, "
                            + ", ".join(FINDING_RULES))
        return Rule(text, finding=kind)
    m = _RULE.match(text)
    if m is None:
        raise RuleError(f"cannot read rule {text!r}: expected e.g. AuthenticationFailures>0, "
                        f"rate(NegotiationFailures)>0.1/s, restarts>0 or finding:restart ({GRAMMAR})")
    term, op, unit = re.sub(r"\s+", "", m["term"]), m["op"], m["unit"]
    threshold = Fraction(m["number"])
    call = _CALL.match(term)
    if unit is not None and unit not in UNITS:
        raise RuleError(f"unknown unit /{unit} in rule {text!r}: use /s, /min or /h")
    if call is not None:
        func, arg = call["func"], call["arg"]
        if func not in FUNCTIONS:
            raise RuleError(f"unknown function {func}() in rule {text!r}: use rate(), mean_rate() or restarts()")
        if arg not in COUNTERS:
            what = "a gauge" if arg in GAUGES else "not a field"
            raise RuleError(f"{func}() takes a counter, and {arg} is {what} (rule {text!r}); {_names()}")
        if func == "restarts":
            kind, field = "restarts_of", arg
        else:
            kind, field = func, arg
    elif term in ("restarts", "wraps"):
        kind, field = term, None
    elif term in COUNTERS:
        kind, field = "increase", term
    elif term in GAUGES:
        kind, field = "gauge_max", term
    else:
        near = [n for n in FIELD_NAMES if n.lower() == term.lower()]
        hint = f" (did you mean {near[0]}? names are case-sensitive)" if near else ""
        raise RuleError(f"unknown name {term!r} in rule {text!r}{hint}; {_names()}; or restarts, wraps")
    if unit is not None and kind not in ("rate", "mean_rate"):
        raise RuleError(f"a unit (/{unit}) applies to rate() and mean_rate() only (rule {text!r})")
    if unit is not None:
        threshold /= UNITS[unit]
    return Rule(text, term=kind, field=field, op=op, threshold=threshold, per_second=unit is not None)


def value(rule: Rule, report: dict[str, Any]) -> Any:
    """The report's number that ``rule`` compares (None when the report has none)."""
    if rule.term == "increase":
        return report["counters"][rule.field]["increase"]
    if rule.term == "gauge_max":
        return report["gauges"][rule.field]["max"]
    if rule.term in ("rate", "mean_rate"):
        if rule.per_second and report["rate_unit"] != "per second":
            raise RuleError(f"rule {rule.text!r} compares a rate per second, but {report['file']} has rates per "
                            "interval: give --interval SECONDS")
        return report["counters"][rule.field]["peak_rate" if rule.term == "rate" else "mean_rate"]
    if rule.term == "restarts_of":
        return report["counters"][rule.field]["restarts"]
    if rule.term == "restarts":
        return report["restart_count"]
    if rule.term == "wraps":
        return sum(c["wraps"] for c in report["counters"].values())
    raise AssertionError(rule.term)


def evaluate(rules: list[Rule], report: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules that fire on ``report``, in the order given: ``{"rule", "value"}`` for a
    comparison, ``{"rule", "findings"}`` (the texts) for a finding rule."""
    fired: list[dict[str, Any]] = []
    for rule in rules:
        if rule.finding is not None:
            hits = [f["text"] for f in report["findings"] if f["rule"] == "finding:" + rule.finding
                    or (rule.finding == "warning" and f["level"] == "warning")]
            if hits:
                fired.append({"rule": rule.text, "findings": hits})
            continue
        v = value(rule, report)
        if v is None or (isinstance(v, float) and v != v):
            continue
        if OPERATORS[rule.op](v, rule.threshold):
            fired.append({"rule": rule.text, "value": v})
    return fired
