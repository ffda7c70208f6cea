"""Help texts and the report's tables: examples, one FILE, widened columns, one format per column."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ipsecstats import cli
from ipsecstats._report import rate_column
from ipsecstats._schema import COUNTERS, GAUGES, RECORD_DTYPE

COMMANDS = ("info", "report", "convert", "plot", "generate")


def help_text(capsys: pytest.CaptureFixture[str], command: str) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_ends_with_examples(capsys: pytest.CaptureFixture[str], command: str) -> None:
    text = help_text(capsys, command)
    tail = text.rstrip("\n").split("\nexamples:\n")
    assert len(tail) == 2, text[-400:]
    examples = [line for line in tail[1].splitlines() if line.startswith(f"  ipsecstats {command}")]
    assert 2 <= len(examples) <= 3
    assert all(line.startswith("  ") for line in tail[1].splitlines())


def test_examples_parse(capsys: pytest.CaptureFixture[str]) -> None:
    """Every example is a command line the parser takes (quotes and continuations as a shell reads them)."""
    import shlex

    parser = cli._build_parser()
    for command, text in cli.EXAMPLES.items():
        body = text.split("\n", 1)[1].replace("\\\n", " ")
        for line in body.splitlines():
            words = shlex.split(line.split(" | ")[0], comments=True)
            assert words[:2] == ["ipsecstats", command]
            args = parser.parse_args(words[1:])
            assert args.command == command


def test_convert_lists_file_once_and_explains_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "convert")
    positional = text.split("positional arguments:\n")[1].split("\n\n")[0]
    assert sum(line.split()[0] == "FILE" for line in positional.splitlines() if line.strip()) == 1
    options = text.split("options:\n")[1]
    for flag in ("--what", "--format", "--from", "--to"):
        entry = options.split(f"  {flag} ")[1].split("\n  -")[0]
        assert len(entry.split()) > 6, (flag, entry)  # a help text, not just the choices


@pytest.mark.parametrize("command", ["info", "report"])
def test_format_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    options = help_text(capsys, command).split("options:\n")[1]
    assert "json: one document with exact integers" in " ".join(options.split())


def test_report_help_documents_fail_on(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(help_text(capsys, "report").split())
    for needle in ("--fail-on RULE", "status 3", "rate(COUNTER)>X/s", "finding:KIND", "> >= < <= == !="):
        assert needle in text, needle


def test_info_gives_the_stride_hint(capsys: pytest.CaptureFixture[str]) -> None:
    sample = str(Path(cli.__file__).parent / "data" / "sample.bin")  # 2 interleaved instances
    assert cli.main(["info", sample]) == 0
    out = capsys.readouterr().out
    assert "  hint        Counters fell in 86% of the intervals" in out and "--stride K." in out
    assert cli.main(["info", sample, "--format", "json"]) == 0
    hints = json.loads(capsys.readouterr().out)["files"][0]["hints"]
    assert len(hints) == 1 and "read it with --stride K" in hints[0]
    assert cli.main(["report", sample, "--format", "json"]) == 0
    findings = json.loads(capsys.readouterr().out)["reports"][0]["findings"]
    assert [f["text"] for f in findings if f["rule"] == "finding:interleaved"] == hints
    assert cli.main(["info", sample, "--stride", "2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"][0]["hints"] == []


# --------------------------------------------------------------------------- tables


def test_rate_column_one_format() -> None:
    assert rate_column([0.0167, 1.4333, 0.4, 0.0, None, 19979.0]) == [
        "0.0167", "1.4333", "0.4000", "0", "-", "19,979.0000"]
    assert rate_column([4.63e-05, 0.231, 0.0]) == ["4.63e-05", "2.31e-01", "0"]  # 7 decimals: scientific
    assert rate_column([1.0e15, 2.5]) == ["1.00e+15", "2.50e+00"]
    assert rate_column([123.0, 7.0]) == ["123.00", "7.00"]  # 3 significant digits for the smallest
    assert rate_column([1234.0, 700.0]) == ["1,234", "700"]
    assert rate_column([None, float("nan")]) == ["-", "-"]


def _table(out: str, title: str) -> list[str]:
    block = out.split("\n" + title)[1].split("\n\n")[0]
    return [title + block.splitlines()[0], *block.splitlines()[1:]]


def test_columns_widen_to_the_widest_value(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    recs = np.zeros(3, RECORD_DTYPE)
    for name in COUNTERS:
        recs[name] = [0, 2**64 - 1, 2**64 - 2]  # a fall of 1 under wrap: an increase of 2**64 - 1 more
    for name in GAUGES:
        recs[name] = [0, 2**64 - 1, 5]
    path = tmp_path / "big.bin"
    path.write_bytes(recs.tobytes())
    assert cli.main(["report", str(path), "--on-decrease", "wrap", "--interval", "1"]) == 0
    out = capsys.readouterr().out
    big = f"{2 * (2**64 - 1):,}"
    for title, ncols in (("Counters", 5), ("Gauges", 4)):
        lines = _table(out, title)
        assert len({len(line) for line in lines}) == 1, lines  # right-aligned columns
        for line in lines[1:]:
            cells = line.split()
            assert len(cells) == ncols, line  # nothing glued together
            assert re.split(r"\s{2,}", line.strip()) == cells  # two spaces at least between cells
    counters = _table(out, "Counters")
    assert counters[1].split()[:2] == ["AcquireFailures", big]
    gauges = _table(out, "Gauges")
    assert gauges[1].split() == ["ActiveAcquire", "0", "6.15e+18", f"{2**64 - 1:,}"]


def test_ordinary_tables_keep_their_widths(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report"]) == 0
    out = capsys.readouterr().out
    assert "Counters (all instances)          increase        mean/s        peak/s  restarts\n" in out
    assert "  TotalGetSPI                       19,979      2.31e-01        1.4333         1\n" in out
    assert "Gauges (per instance)                  min          mean           max\n" in out
    assert "  ConnectionListSize                     4       110.808           387\n" in out


README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_excerpt_is_todays_report(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's excerpt of ``ipsecstats report`` (its tables) is what the command prints."""
    assert cli.main(["report"]) == 0
    out = capsys.readouterr().out
    text = README.read_text(encoding="utf-8")
    excerpt = text.split("$ ipsecstats report\n")[1].split("```")[0]
    tables = excerpt.split("\nCounters (all instances)")[1].split("\nFindings")[0]
    assert tables in out


def test_readme_names_every_rule() -> None:
    from ipsecstats._report import FINDING_RULES

    text = README.read_text(encoding="utf-8")
    for kind in FINDING_RULES:
        assert f"`finding:{kind}`" in text, kind
