"""``report --fail-on RULE``: the grammar, exact evaluation, exit status 3 and its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ipsecstats import cli
from ipsecstats._alerts import RuleError, evaluate, parse_rule
from ipsecstats._generate import generate
from ipsecstats._report import FINDING_RULES
from ipsecstats._schema import COUNTERS, GAUGES, RECORD_DTYPE

SCRIPT = Path(sys.executable).parent / "ipsecstats"


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 records: 2 instances every 10 s, one restart."""
    path = tmp_path_factory.mktemp("failon") / "capture.bin"
    path.write_bytes(generate(1200, instances=2, interval=10.0, restarts=1, seed=4).tobytes())
    return path


def main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def report_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    status, out, _ = main(capsys, "report", "--format", "json", *args)
    return status, json.loads(out)


# --------------------------------------------------------------------------- the grammar


@pytest.mark.parametrize("text, term, field, op, threshold", [
    ("AuthenticationFailures>0", "increase", "AuthenticationFailures", ">", Fraction(0)),
    (" SoftAssociations >= 2 ", "increase", "SoftAssociations", ">=", Fraction(2)),
    ("ConnectionListSize>500", "gauge_max", "ConnectionListSize", ">", Fraction(500)),
    ("rate(NegotiationFailures)>0.1/s", "rate", "NegotiationFailures", ">", Fraction(1, 10)),
    ("rate( NegotiationFailures ) > 6/min", "rate", "NegotiationFailures", ">", Fraction(1, 10)),
    ("mean_rate(TotalGetSPI)<=36/h", "mean_rate", "TotalGetSPI", "<=", Fraction(1, 100)),
    ("mean_rate(TotalGetSPI)!=1e-3", "mean_rate", "TotalGetSPI", "!=", Fraction(1, 1000)),
    ("restarts>0", "restarts", None, ">", Fraction(0)),
    ("restarts(KeyUpdates)==3", "restarts_of", "KeyUpdates", "==", Fraction(3)),
    ("wraps<1", "wraps", None, "<", Fraction(1)),
])
def test_rules_parse(text: str, term: str, field: str | None, op: str, threshold: Fraction) -> None:
    rule = parse_rule(text)
    assert (rule.text, rule.term, rule.field, rule.op, rule.threshold) == (text, term, field, op, threshold)


def test_every_finding_kind_is_a_rule() -> None:
    for kind in [*FINDING_RULES, "warning"]:
        assert parse_rule(f"finding:{kind}").finding == kind


@pytest.mark.parametrize("text, needles", [
    ("Bogus>0", ["unknown name 'Bogus'", "counters: AcquireFailures", "gauges: ActiveAcquire", "restarts, wraps"]),
    ("authenticationfailures>0", ["did you mean AuthenticationFailures?"]),
    ("rate(ActiveAcquire)>1", ["rate() takes a counter, and ActiveAcquire is a gauge"]),
    ("rate(Nope)>1", ["Nope is not a field", "counters: "]),
    ("peak(KeyUpdates)>1", ["unknown function peak()"]),
    ("rate(KeyUpdates)>1/week", ["unknown unit /week"]),
    ("KeyUpdates>1/s", ["a unit (/s) applies to rate() and mean_rate() only"]),
    ("KeyUpdates>", ["cannot read rule", "OP is"]),
    ("KeyUpdates=1", ["cannot read rule"]),
    ("", ["cannot read rule"]),
    ("finding:nope", ["unknown finding 'nope'", "restart", "soft-associations"]),
])
def test_bad_rules_say_what_is_wrong(text: str, needles: list[str]) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule(text)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def _report(**counter: Any) -> dict[str, Any]:
    counters = {c: {"increase": 0, "mean_rate": 0.0, "peak_rate": 0.0, "restarts": 0, "wraps": 0} for c in COUNTERS}
    for name, values in counter.items():
        counters[name].update(values)
    return {"file": "x", "rate_unit": "per second", "counters": counters, "restart_count": 0, "findings": [],
            "gauges": {g: {"min": 0, "mean": 0.0, "max": 0} for g in GAUGES}}


def test_integers_compare_exactly_past_2_64() -> None:
    big = 2**64 + 1  # an exact Python int sum: a float would round it to 2**64
    rep = _report(KeyUpdates={"increase": big})
    assert evaluate([parse_rule("KeyUpdates>18446744073709551616")], rep) == [
        {"rule": "KeyUpdates>18446744073709551616", "value": big}]
    assert evaluate([parse_rule("KeyUpdates>18446744073709551617")], rep) == []
    assert evaluate([parse_rule("KeyUpdates==18446744073709551617")], rep)


def test_rates_compare_as_floats_exactly() -> None:
    rep = _report(KeyUpdates={"peak_rate": 0.1, "mean_rate": 0.1})  # the float 0.1 is above 1/10
    assert evaluate([parse_rule("rate(KeyUpdates)>0.1/s")], rep)
    assert not evaluate([parse_rule("mean_rate(KeyUpdates)<0.1")], rep)
    rep["counters"]["KeyUpdates"]["peak_rate"] = None  # no interval in the log: never fires
    assert not evaluate([parse_rule("rate(KeyUpdates)>=0")], rep)
    rep["counters"]["KeyUpdates"]["peak_rate"] = float("nan")
    assert not evaluate([parse_rule("rate(KeyUpdates)>=0")], rep)


def test_rate_per_second_on_rates_per_interval_is_an_error() -> None:
    rep = _report()
    rep["rate_unit"] = "per interval"
    assert not evaluate([parse_rule("rate(KeyUpdates)>0.1")], rep)  # compared in the report's unit
    with pytest.raises(RuleError, match="rates per interval: give --interval"):
        evaluate([parse_rule("rate(KeyUpdates)>0.1/s")], rep)


def test_finding_rules_fire_on_their_findings() -> None:
    rep = _report()
    rep["findings"] = [{"level": "warning", "rule": "finding:restart", "text": "1 restart"},
                       {"level": "ok", "rule": "finding:no-soft-associations", "text": "No soft"}]
    fired = evaluate([parse_rule(r) for r in ("finding:restart", "finding:warning", "finding:wrap")], rep)
    assert fired == [{"rule": "finding:restart", "findings": ["1 restart"]},
                     {"rule": "finding:warning", "findings": ["1 restart"]}]


# --------------------------------------------------------------------------- the command


def test_exit_3_when_a_rule_fires(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    status, doc = report_json(capsys, str(log), "--stride", "2", "--interval", "10")
    assert status == 0 and doc["fail_on"] == [] and doc["reports"][0]["fired_rules"] == []
    rep = doc["reports"][0]
    auth = rep["counters"]["AuthenticationFailures"]["increase"]
    assert auth > 0 and rep["restart_count"] == 1
    rules = [f"AuthenticationFailures>{auth - 1}", f"AuthenticationFailures>{auth}", "restarts>0",
             "finding:restart", "wraps>0"]
    status, doc = report_json(capsys, str(log), "--stride", "2", "--interval", "10",
                              *[x for r in rules for x in ("--fail-on", r)])
    assert status == cli.EXIT_RULE == 3
    assert doc["fail_on"] == rules
    fired = doc["reports"][0]["fired_rules"]
    assert [f["rule"] for f in fired] == [rules[0], "restarts>0", "finding:restart"]
    assert fired[0]["value"] == auth and fired[1]["value"] == 1
    assert fired[2]["findings"][0].startswith("1 restart: instance")
    # every finding names its rule
    assert all(f["rule"].removeprefix("finding:") in FINDING_RULES for f in doc["reports"][0]["findings"])


def test_text_report_lists_the_rules(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    status, out, _ = main(capsys, "report", str(log), "--stride", "2", "--interval", "10",
                          "--fail-on", "restarts>0", "--fail-on", "rate(KeyUpdates)>1000000/s")
    assert status == 3
    tail = out.split("Rules (--fail-on)\n")[1].splitlines()
    assert tail == ["  ! restarts>0: FIRED (value 1)", "  + rate(KeyUpdates)>1000000/s: not fired"]


def test_no_rule_fires_exit_0(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    status, _, _ = main(capsys, "report", str(log), "--stride", "2", "--fail-on", "restarts>1",
                        "--fail-on", "finding:soft-associations-before-log")
    assert status == 0


def test_data_errors_take_precedence(capsys: pytest.CaptureFixture[str], log: Path, tmp_path: Path) -> None:
    status, doc = report_json(capsys, str(log), str(tmp_path / "missing.bin"), "--stride", "2",
                              "--fail-on", "restarts>0")
    assert status == cli.EXIT_DATA
    assert doc["reports"][0]["fired_rules"] and doc["errors"][0]["file"].endswith("missing.bin")


def test_rule_per_second_without_interval_is_a_usage_error(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    status, _, err = main(capsys, "report", str(log), "--stride", "2", "--fail-on", "rate(KeyUpdates)>1/s")
    assert status == cli.EXIT_USAGE
    assert "rates per interval: give --interval SECONDS" in err and "Traceback" not in err


def test_gauge_rule_uses_the_max(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    recs = np.zeros(4, RECORD_DTYPE)
    recs["ConnectionListSize"] = [3, 2**64 - 1, 7, 5]
    path = tmp_path / "g.bin"
    path.write_bytes(recs.tobytes())
    status, doc = report_json(capsys, str(path), "--fail-on", "ConnectionListSize>=18446744073709551615")
    assert status == 3 and doc["reports"][0]["fired_rules"][0]["value"] == 2**64 - 1


def test_bad_rule_is_exit_2_before_any_work(log: Path) -> None:
    proc = subprocess.run([str(SCRIPT), "report", str(log), "--fail-on", "Bogus>0"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    line, = proc.stderr.strip().splitlines()
    assert "argument --fail-on: unknown name 'Bogus'" in line and "AuthenticationFailures" in line


def test_installed_script_exits_3(log: Path) -> None:
    proc = subprocess.run([str(SCRIPT), "report", str(log), "--stride", "2", "--fail-on", "finding:restart"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "! finding:restart: FIRED" in proc.stdout
