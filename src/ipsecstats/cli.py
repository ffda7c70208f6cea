"""The ``ipsecstats`` command (also ``python -m ipsecstats``).

Subcommands: ``info``, ``report``, ``convert``, ``plot``, ``generate``. Results go to
standard output and nothing else does; errors are one line on standard error naming
the file and the problem. Exit status: 0 success, 1 a data or file error, 2 a usage
error, 3 a ``report --fail-on`` rule fired, 130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM); both leave no partial
output file. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import importlib.resources
import importlib.util
import json
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import __version__
from ._deltas import ON_DECREASE, delta_dtype, rate_dtype, resolve_kinds
from ._errors import PartialRecordWarning, describe_error
from .formats import NAMES as INPUT_FORMATS
from ._progress import MODES, Progress
from ._schema import RECORD_DTYPE, RECORD_SIZE

__all__ = ["main"]

EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_RULE = 3  # report --fail-on: a rule fired (1 and 2 take precedence)
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # what a shell reports for a writer killed by SIGPIPE (128 + 13)

PROG = "ipsecstats"
GENERATE_START = "2024-06-03T00:00:00Z"


class UsageError(Exception):
    """Options that do not fit together (exit status 2)."""


class DataError(Exception):
    """A file that cannot be read, or whose content is unusable (exit status 1)."""


class _Terminated(SystemExit):
    """SIGTERM: unwinds like Ctrl-C, so temporary output files are removed (exit status 143)."""


# --------------------------------------------------------------------------- the sample log


@contextlib.contextmanager
def sample_log() -> Iterator[tuple[str, dict[str, Any]]]:
    """The path of the sample log shipped in the package, and how it was made (sample.json)."""
    data = importlib.resources.files("ipsecstats").joinpath("data")
    notes = json.loads(data.joinpath("sample.json").read_text(encoding="utf-8"))
    with importlib.resources.as_file(data.joinpath(notes["file"])) as path:
        yield str(path), notes


def _sample_settings(args: argparse.Namespace, notes: dict[str, Any]) -> None:
    """The sample log's layout and times, where the options do not say otherwise."""
    if args.stride is None:
        args.stride = notes["instances"]
    if args.interval is None:
        args.interval = float(notes["interval"])
        if args.start is None:
            args.start = _timestamp(notes["start"])


# --------------------------------------------------------------------------- argument types


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``minimum`` to 2**63 - 1 (numpy's int64)."""

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or not minimum <= value <= _INT64_MAX:
            raise argparse.ArgumentTypeError(f"expected a whole number from {minimum} to {_INT64_MAX:,}, "
                                             f"got {text!r}")
        return value

    return parse


_INT64_MAX = 2**63 - 1
_positive_int = _whole_number(1)
_count = _whole_number(0)


# Times are datetime64[ns]: int64 nanoseconds since 1970, so 1677-09-21 to 2262-04-11.
_FIRST_TIME = dt.datetime(1677, 9, 22, tzinfo=dt.timezone.utc)
_LAST_TIME = dt.datetime(2262, 4, 11, tzinfo=dt.timezone.utc)
_MAX_SECONDS = (_LAST_TIME - _FIRST_TIME).total_seconds()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") from None
    if not (0 < value <= _MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0 and at most {_MAX_SECONDS:,.0f} (the "
                                         f"span of nanosecond times, 1677 to 2262), got {text!r}")
    return value


def _timestamp(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2024-06-03T08:00:00Z, got {text!r}") from None
    value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if not _FIRST_TIME <= value <= _LAST_TIME:
        raise argparse.ArgumentTypeError(f"expected a time from 1677-09-22 to 2262-04-11 (nanosecond times), "
                                         f"got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``ipsecstats report: error: ... (see --help)``; an
    unknown option is reported by the subcommand it was given to, pointing at its help."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._commands.get(getattr(parsed, "command", None), self) if hasattr(self, "_commands") else self
            command.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


#: The examples that end each subcommand's --help.
EXAMPLES = {
    "info": """examples:
  ipsecstats info capture.bin --stride 2 --interval 10 --start 2024-06-03T00:00:00Z
  ipsecstats info C:/ipsec/ipsec-2024-06-*.csv --format json
  ipsecstats info cap.wnode --from 2024-06-03T08:00Z --to 2024-06-03T09:00Z""",
    "report": """examples:
  ipsecstats report capture.bin --stride 2 --interval 10
  ipsecstats report ipsec.csv --from 2024-06-03T00:00Z --to 2024-06-04T00:00Z --format json
  ipsecstats report ipsec.csv --fail-on 'AuthenticationFailures>0' --fail-on 'rate(NegotiationFailures)>0.1/s' \\
      --fail-on finding:restart    # exit status 3 when a rule fires (cron, Nagios-style checks, CI)""",
    "convert": """examples:
  ipsecstats convert capture.bin --stride 2 --interval 10 --what rates -o rates.parquet
  ipsecstats convert cap.wnode --what deltas -o - | head
  ipsecstats convert day1.csv day2.csv --what deltas -o deltas/    # one Parquet dataset""",
    "plot": """examples:
  ipsecstats plot -o sample.png
  ipsecstats plot capture.bin --stride 2 --interval 10 --start 2024-06-03T00:00Z -o capture.png
  ipsecstats plot cap.wnode --from 2024-06-03T18:00Z --title "evening" -o evening.png""",
    "generate": """examples:
  ipsecstats generate cap.bin --records 2880 --instances 2 --interval 60 --restarts 1
  ipsecstats generate cap.wnode --format wnode --records 2880 --instances 2 --start 2024-06-03T00:00:00Z
  ipsecstats generate big.bin --records 6000000 --wrap --seed 1""",
}


def _build_parser() -> argparse.ArgumentParser:
    run = _Parser(add_help=False)
    run.add_argument("--progress", choices=MODES, default="auto",
                     help="progress bar on stderr: auto (only on a terminal, for long jobs), always, never")
    run.add_argument("--debug", action="store_true", help="show a traceback on errors")

    log = _Parser(add_help=False)
    log.add_argument("--stride", type=_positive_int, metavar="K",
                     help="records per sample: K interleaved instances (default 1)")
    log.add_argument("--interval", type=_seconds, metavar="SECONDS",
                     help="seconds between samples of one instance (needed for rates per second)")
    log.add_argument("--start", type=_timestamp, metavar="ISO-8601",
                     help="time of the first sample (with --interval); no offset means UTC")
    log.add_argument("--from", dest="window_from", type=_timestamp, metavar="ISO-8601",
                     help="only records at or after this time (no offset means UTC); a raw log needs --start and "
                          "--interval for its times. Deltas pair records inside the window only")
    log.add_argument("--to", dest="window_to", type=_timestamp, metavar="ISO-8601",
                     help="only records before this time (no offset means UTC)")
    log.add_argument("--on-decrease", choices=ON_DECREASE, default="auto",
                     help="what a decreasing counter means (default auto: a restart unless it fell by 2**63 or more)")
    log.add_argument("--allow-partial", action="store_true",
                     help="use the complete records of a file that ends in a partial record (with a warning); "
                          "for WNODE buffers, skip WNODE_TOO_SMALL nodes and a truncated last buffer")
    log.add_argument("--input-format", choices=("auto", *INPUT_FORMATS), default="auto",
                     help="raw (168-byte records), wnode (WmiQueryAllData buffers), cim-csv (Export-Csv of "
                          "Get-CimInstance), pdh-csv (typeperf/logman/relog CSV or TSV), ipsecstats-csv/-jsonl/"
                          "-parquet (what convert --what records wrote); default auto: told from the first bytes. "
                          "Captures carry instance names (deltas pair records by name, no --stride) and times "
                          "(no --interval)")
    log.add_argument("--timestamp-column", metavar="NAME",
                     help="cim-csv: the column holding each row's time (default: a filled Timestamp_Sys100NS, "
                          "else a column named Timestamp)")
    log.add_argument("--timestamp-format", metavar="FORMAT",
                     help="cim-csv: strptime format of culture times, e.g. \"%%m/%%d/%%Y %%I:%%M:%%S %%p\" (en-US) or "
                          "\"%%d.%%m.%%Y %%H:%%M:%%S\" (de-DE); ISO 8601 and FILETIME ticks need none")
    log.add_argument("--timezone", type=_zone, metavar="ZONE",
                     help="the zone the times were written in: an IANA name (Europe/Berlin) or an offset (+02:00). "
                          "cim-csv: for times without a UTC offset (default UTC, with a warning); pdh-csv: its rules "
                          "instead of the header's bias, for a log that spans a daylight-saving change")
    log.add_argument("--delimiter", type=_delimiter, metavar="CHAR",
                     help="cim-csv: the field separator (, ; tab or any one character); default: told from the header")
    log.add_argument("--encoding", type=_encoding, metavar="NAME",
                     help="cim-csv: the text encoding (utf-8, utf-16, cp1252, cp1250, ...); default: a BOM, else "
                          "UTF-8, else cp1252 with a warning")

    dist = _Parser(add_help=False)
    dist.add_argument("--scheduler", metavar="ADDRESS|threads|processes",
                      help="run over the files with Dask (pip install \"ipsecstats[dask]\"): threads, processes, "
                           "or the address of a running distributed scheduler such as tcp://host:8786 "
                           "(waits IPSECSTATS_CONNECT_TIMEOUT seconds for it, default 10)")

    parser = _Parser(prog=PROG, description="Decode, summarise, convert and plot captured Windows iSCSI "
                                            "MSiSCSI_MMIPSECStats logs (contiguous 168-byte records).")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", parents=[log, run], help="size, records, instances, time span, restarts of each file",
                       epilog=EXAMPLES["info"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or json: one document with exact integers, each file's facts and the files "
                        "that failed")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("report", parents=[log, run, dist],
                       help="summary and findings per file (the shipped sample log when no FILE is given)",
                       epilog=EXAMPLES["report"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or json: one document with exact integers, each file's report, the rules "
                        "that fired and the files that failed")
    p.add_argument("--fail-on", type=_rule, action="append", default=[], metavar="RULE",
                   help="exit with status 3 when RULE fires on a report (repeatable; exit 1 and 2 take precedence): "
                        "FIELD>N (a counter's increase, a gauge's max), rate(COUNTER)>X/s (peak rate), "
                        "mean_rate(COUNTER)>X/s, restarts(COUNTER)>N, restarts>N, wraps>N, or finding:KIND "
                        "(finding:warning: any warning); OP is > >= < <= == !=. See the README for the finding kinds")
    p.add_argument("--by-instance", action="store_true",
                   help="also each instance alone: an interleaved instance of a raw log, an instance name (and "
                        "host) of a capture (JSON: by_instance)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("convert", parents=[log, run, dist],
                       help="write records, deltas or rates as CSV, JSON Lines, .npy or Parquet",
                       epilog=EXAMPLES["convert"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="the log; several logs (or a directory OUT, or --scheduler) make one Parquet dataset, "
                        "a file per partition")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file, or - for standard output (csv, jsonl)")
    p.add_argument("--what", choices=("records", "deltas", "rates"), default="records",
                   help="records (default): the raw values; deltas: each record minus the previous one of its "
                        "instance (counters uint64 under --on-decrease, gauges int64 changes); rates: counter "
                        "deltas per second (float64; needs --interval or a capture's times)")
    p.add_argument("--format", choices=("csv", "jsonl", "npy", "parquet", "openmetrics"),
                   help="output format (default: from the suffix of OUT; csv for -). CSV, JSON Lines and Parquet "
                        "lead with record, instance and time (timestamp) columns; .npy holds the fields only")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("plot", parents=[log, run], help="PNG of counter rates and gauges over time, restarts marked",
                       epilog=EXAMPLES["plot"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", metavar="FILE", help="the log (default: the shipped sample log)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png")
    p.add_argument("--bins", type=_positive_int, default=500, help="points per series at most (default 500)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--by-instance", action="store_true",
                   help="also a line per instance (an interleaved instance of a raw log, an instance name of a capture)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("generate", parents=[run], help="write a realistic synthetic log",
                       epilog=EXAMPLES["generate"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output", metavar="OUT")
    p.add_argument("--format", choices=("raw", "wnode"), default="raw",
                   help="raw: interleaved 168-byte records (default); wnode: WNODE_ALL_DATA buffers, one per "
                        "sample, stamped from --start and --interval, instances named ROOT\\ISCSIPRT\\000K_0")
    p.add_argument("--start", type=_timestamp, default=_timestamp(GENERATE_START), metavar="ISO-8601",
                   help=f"wnode: time of the first sample (default {GENERATE_START})")
    p.add_argument("--records", type=_count, required=True, metavar="N", help="records in all (a multiple of --instances)")
    p.add_argument("--instances", type=_positive_int, default=1, metavar="K", help="interleaved instances (default 1)")
    p.add_argument("--interval", type=_seconds, default=60.0, metavar="S", help="seconds between samples (default 60)")
    p.add_argument("--restarts", type=_count, default=0, metavar="R", help="restarts at random samples (default 0)")
    p.add_argument("--seed", type=_count, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--wrap", action="store_true", help="start one counter just below 2**64 so that it wraps")
    p.set_defaults(func=cmd_generate)
    parser._commands = dict(sub.choices)  # type: ignore[attr-defined]
    return parser


# --------------------------------------------------------------------------- shared helpers


def _check_time_options(args: argparse.Namespace, paths: list[str] | None = None) -> None:
    """--start needs --interval; and the last sample of each regular file in ``paths`` must
    fall before 2262 (times are datetime64[ns]). Streams are checked as they are read."""
    if args.start is not None and args.interval is None:
        raise UsageError("--start needs --interval (the time of sample k is start + k * interval)")
    begin, end = args.window_from, args.window_to
    if begin is not None and end is not None and not begin < end:
        raise UsageError(f"--from {begin.isoformat()} is not before --to {end.isoformat()}: the window holds "
                         "the records with from <= time < to")
    if args.start is None:
        return
    for path in paths or ():
        size = _file_size(path) if path != "-" else None
        samples = (size or 0) // RECORD_SIZE // (args.stride or 1)
        _check_last_time(args.start, args.interval, samples, path)


def _check_last_time(start: dt.datetime, interval: float, samples: int, what: str) -> None:
    """A usage error when sample ``samples - 1`` at ``start + k * interval`` is past 2262."""
    last = max(samples - 1, 0) * interval
    if last > (_LAST_TIME - start).total_seconds():
        raise UsageError(f"{what}: --start {start.isoformat()} and --interval {interval:g} put sample "
                         f"{samples - 1:,} after 2262-04-11, past nanosecond times")


#: The text readers' options (flag, argparse destination and keyword): cim-csv takes all, pdh-csv --timezone.
CSV_FLAGS = (("--timestamp-format", "timestamp_format"), ("--timezone", "timezone"),
             ("--delimiter", "delimiter"), ("--encoding", "encoding"))


def _csv_options(args: argparse.Namespace, given_only: bool = True) -> dict[str, Any]:
    """The CIM CSV reader's keywords from --timestamp-column and ``CSV_FLAGS`` (only those given)."""
    keys = ("timestamp_column", *(key for _, key in CSV_FLAGS))
    options = {key: getattr(args, key, None) for key in keys}
    return {k: v for k, v in options.items() if v is not None} if given_only else options


def _refused_flags(options: dict[str, Any]) -> str:
    """"--delimiter applies to --input-format cim-csv only" for each set option of ``options``
    (the keywords a format does not take), naming the formats that take it; "" when none is set."""
    from . import formats

    owners: dict[str, list[str]] = {}
    for flag, key in (("--timestamp-column", "timestamp_column"), *CSV_FLAGS):
        if options.get(key) is not None:
            names = " and ".join(sorted(f.name for f in formats.FORMATS if key in f.options()))
            owners.setdefault(names, []).append(flag)
    return "; ".join(f"{', '.join(flags)} {'applies' if len(flags) == 1 else 'apply'} to --input-format {names} only"
                     for names, flags in owners.items())


def _rule(text: str) -> Any:
    """An argparse ``type``: a ``report --fail-on`` rule (``_alerts``)."""
    from ._alerts import RuleError, parse_rule

    try:
        return parse_rule(text)
    except RuleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _encoding(text: str) -> str:
    from .formats._csvtext import parse_encoding

    try:
        parse_encoding(text, lambda name: "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None
    return text


def _zone(text: str) -> str:
    from .formats._csvtime import parse_zone

    try:
        parse_zone(text, lambda name: "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None
    return text


def _delimiter(text: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}
    text = named.get(text.lower(), text)
    if len(text) != 1 or text in '"\r\n' or not text.isascii():
        raise argparse.ArgumentTypeError(f"one ASCII character other than '\"', CR and LF (or tab), got {text!r}")
    return text


def _file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


@contextlib.contextmanager
def _trailing_bytes(record: list[int], show: bool) -> Iterator[None]:
    """Catch ``PartialRecordWarning``s: note their trailing bytes, and print them when ``show``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PartialRecordWarning)
        try:
            yield
        finally:
            for w in caught:
                if isinstance(w.message, PartialRecordWarning):
                    record.append(w.message.trailing_bytes)
                    if show:
                        _warn_line(f"{w.message.source}: ignored {w.message.trailing_bytes} trailing byte(s) at byte "
                                   f"offset {w.message.offset} (a partial record)")
                else:
                    _warn_line(str(w.message))


def _warn_line(text: str) -> None:
    print(f"{PROG}: warning: {text}", file=sys.stderr)


def _open_log(args: argparse.Namespace, path: str) -> Any:
    """A ``formats.Reader`` of ``path`` (``-``: standard input) under ``--input-format``; options that do
    not fit the format are usage errors.

    Raises OSError/ValueError for an unreadable, undetectable or corrupt file.
    """
    from . import formats
    from ._source import ByteSource

    src = ByteSource(sys.stdin.buffer if path == "-" else path)
    try:
        fmt = formats.detect(src) if args.input_format == "auto" else formats.by_name(args.input_format)
        how = "" if args.input_format != "auto" else " (detected; see --input-format)"
        if fmt.name != "raw" and args.stride is not None:
            raise UsageError(f"{path}: --stride does not apply to {fmt.name} input{how}: its records carry instance "
                             "names, and deltas pair the records of each name")
        reader: Any
        csv_options = _csv_options(args, given_only=False)
        refused = _refused_flags({key: value for key, value in csv_options.items() if key not in fmt.options()})
        if refused:
            raise UsageError(f"{path}: {refused} (this file is {fmt.title}{how})")
        # Format.open passes on what the reader takes (the rest are None here) and drops
        # option_style for readers without options to name
        reader = fmt.open(src, stride=args.stride, allow_partial=args.allow_partial, option_style="flag",
                          **csv_options)
        if fmt.name == "cim-csv":
            for text in reader.notes:  # reads the header
                _note(text)
    except BaseException:
        src.close()
        raise
    if reader.has_timestamps and (args.interval is not None or args.start is not None):
        reader.close()
        raise UsageError(f"{path}: --interval and --start do not apply: this {fmt.name} input carries a time for "
                         "every record, and rates use the real time steps")
    if args.window_from is not None or args.window_to is not None:
        return _windowed(args, path, reader)
    return reader


def _windowed(args: argparse.Namespace, path: str, reader: Any) -> Any:
    """``reader`` cut to --from/--to (``_window``); a log without times is a usage error."""
    from ._window import WindowReader, to_ns

    begin = None if args.window_from is None else to_ns(args.window_from)
    end = None if args.window_to is None else to_ns(args.window_to)
    if reader.has_timestamps:
        return WindowReader(reader, begin, end)
    if reader.stride is not None and args.start is not None:
        step = round(args.interval * 1e9)
        if step < 1:
            reader.close()
            raise UsageError(f"--interval {args.interval:g} is below 1 ns: sample times cannot tell --from/--to apart")
        return WindowReader(reader, begin, end, start_ns=to_ns(args.start), step_ns=step)
    reader.close()
    if reader.stride is not None:
        raise UsageError(f"{path}: --from/--to need the time of each record: a raw log has none, give --start "
                         "ISO-8601 and --interval SECONDS")
    hint = ": name its time column with --timestamp-column" if reader.format == "cim-csv" else ""
    raise UsageError(f"{path}: --from/--to need the time of each record, and this {reader.format} input has "
                     f"none{hint}")


def _window_start(args: argparse.Namespace) -> dt.datetime | None:
    """The time of the first sample a raw log's reader yields: --start, moved to the first sample
    inside --from (a raw window is a raw log of its own, starting there)."""
    if args.start is None or args.window_from is None:
        return args.start
    from ._window import first_sample, to_ns

    k = first_sample(to_ns(args.window_from), to_ns(args.start), round(args.interval * 1e9))
    return args.start + dt.timedelta(seconds=k * args.interval)


def _window_options(args: argparse.Namespace) -> dict[str, Any]:
    """--from/--to as ``scan_path``'s ``window`` (ns) and, for a raw log, its ``clock`` from
    --start/--interval; nothing when no window is given."""
    if args.window_from is None and args.window_to is None:
        return {}
    from ._window import to_ns

    window = (None if args.window_from is None else to_ns(args.window_from),
              None if args.window_to is None else to_ns(args.window_to))
    clock = None if args.start is None else (to_ns(args.start), round(args.interval * 1e9))
    return {"window": window, "clock": clock}


def _window(args: argparse.Namespace) -> dict[str, str | None] | None:
    """The --from/--to window for reports (ISO 8601), or None."""
    if args.window_from is None and args.window_to is None:
        return None
    return {"from": None if args.window_from is None else args.window_from.isoformat(),
            "to": None if args.window_to is None else args.window_to.isoformat()}


def _refuse_overwriting(output: str, inputs: list[str]) -> None:
    """A usage error when ``output`` is one of ``inputs`` (the same inode: a hard link or a
    symbolic link to it counts)."""
    from ._export import same_file

    if output != "-" and (hit := same_file(output, [p for p in inputs if p != "-"])) is not None:
        raise UsageError(f"{output}: the output would overwrite the input {hit}")


def _progress(args: argparse.Namespace, total: int | None, desc: str) -> Progress:
    return Progress(total, os.path.basename(desc) or desc, args.progress)


# --------------------------------------------------------------------------- subcommands


def cmd_info(args: argparse.Namespace) -> int:
    from ._report import build_info, format_info
    from ._stats import scan

    _check_time_options(args, args.files)
    status, results = 0, []
    failed: list[dict[str, str]] = []
    args.allow_partial = True  # info describes a partial tail instead of refusing the file
    for path in args.files:
        trailing: list[int] = []
        try:
            with _progress(args, _file_size(path), path) as bar, _trailing_bytes(trailing, show=False):
                stats = scan(_open_log(args, path), on_decrease="wrap", progress=bar.update)
        except (OSError, ValueError) as exc:
            failed.append({"file": path, "error": _error(args, path, exc)})
            status = EXIT_DATA
            continue
        info = build_info(stats, trailing_bytes=sum(trailing), interval=args.interval, start=_window_start(args),
                          stride_given=args.stride is not None)
        info["window"] = _window(args)
        results.append(info)
        if args.format == "text":
            sys.stdout.write(format_info(info))
    if args.format == "json":
        _print_json({"ipsecstats": __version__, "files": results, "errors": failed})
    return status


def cmd_report(args: argparse.Namespace) -> int:
    _check_time_options(args, args.files)
    if args.files:
        return _report_files(args, args.files, sample=None)
    with sample_log() as (path, notes):
        _sample_settings(args, notes)
        return _report_files(args, [path], sample=notes)


def _report_files(args: argparse.Namespace, paths: Sequence[str], sample: dict[str, Any] | None) -> int:
    from ._alerts import RuleError, evaluate
    from ._report import build_report, format_instances, format_report, instance_reports
    from ._stats import scan, scan_path

    status, reports, fired = 0, [], False
    failed: list[dict[str, str]] = []
    if sample is not None and args.format == "text":
        sys.stdout.write(f"{PROG} report: no FILE given, so this is the sample log shipped with {PROG}\n"
                         f"  {paths[0]}\n  made by: {sample['command']}\n\n")
    remote = None
    if getattr(args, "scheduler", None):  # one Dask task per file; results come back in order
        from .dask import map_files

        if _window_options(args):  # a window on a file without times is a usage error here too
            for path in paths:
                with contextlib.suppress(OSError, ValueError):  # the worker reports those
                    _open_log(args, path).close()

        with _scheduler_errors(args.scheduler):
            remote = map_files(scan_path, list(paths), scheduler=args.scheduler, input_format=args.input_format,
                               stride=args.stride, on_decrease=args.on_decrease, allow_partial=args.allow_partial,
                               by_instance=args.by_instance, **_window_options(args), **_csv_options(args),
                               option_style="flag")
    for i, path in enumerate(paths):
        trailing: list[int] = []
        if remote is not None:
            for line in remote[i].warnings:
                _warn_line(line)
            trailing.append(remote[i].trailing_bytes)
            error = remote[i].error
            if error is not None:
                failed.append({"file": path, "error": _error(args, path, error)})
                status = EXIT_DATA
                continue
            stats = remote[i].result
        else:
            try:
                with _progress(args, _file_size(path), path) as bar, _trailing_bytes(trailing, show=True):
                    stats = scan(_open_log(args, path), on_decrease=args.on_decrease, progress=bar.update,
                                 by_instance=args.by_instance)
            except (OSError, ValueError) as exc:
                failed.append({"file": path, "error": _error(args, path, exc)})
                status = EXIT_DATA
                continue
        report = build_report(stats, interval=args.interval, start=_window_start(args), trailing_bytes=sum(trailing),
                              sample=sample is not None)
        report["window"] = _window(args)
        if sample is not None:
            report["note"] = f"no FILE given: the sample log shipped with {PROG}, made by: {sample['command']}"
        if args.by_instance:
            report["by_instance"] = instance_reports(stats, interval=args.interval, start=_window_start(args))
        try:
            report["fired_rules"] = evaluate(args.fail_on, report)
        except RuleError as exc:
            raise UsageError(str(exc)) from None
        fired = fired or bool(report["fired_rules"])
        reports.append(report)
        if args.format == "text":
            if i and reports[:-1]:
                sys.stdout.write("\n")
            sys.stdout.write(format_report(report, [r.text for r in args.fail_on])
                             + format_instances(report.get("by_instance", [])))
            sys.stdout.flush()
    if args.format == "json":  # the files that failed too, each with its error
        _print_json({"ipsecstats": __version__, "fail_on": [r.text for r in args.fail_on], "reports": reports,
                     "errors": failed})
    return status or (EXIT_RULE if fired else 0)


def cmd_convert(args: argparse.Namespace) -> int:
    from ._export import STREAM_FORMATS, Layout, format_for, write_table

    args.file, args.more_files = args.files[0], args.files[1:]
    _check_time_options(args, [args.file, *args.more_files])
    if args.scheduler or args.more_files or args.output.endswith(("/", os.sep)) or os.path.isdir(args.output):
        return _convert_dataset(args)
    try:
        fmt = format_for(args.output, args.format)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.output == "-" and fmt not in STREAM_FORMATS:
        raise UsageError(f"{fmt} cannot go to standard output; give a file name with -o")
    if fmt == "openmetrics" and args.what != "records":
        raise UsageError("OpenMetrics holds the raw counters: --what records (Prometheus computes rates itself)")
    _refuse_overwriting(args.output, [args.file])
    kinds = resolve_kinds(None)
    dtype = {"records": RECORD_DTYPE, "deltas": delta_dtype(kinds), "rates": rate_dtype(kinds)}[args.what]
    trailing: list[int] = []
    try:
        with _progress(args, _file_size(args.file), args.file) as bar, _trailing_bytes(trailing, show=True):
            reader = _open_log(args, args.file)
            raw = reader.stride is not None
            if args.what == "rates" and args.interval is None and not reader.has_timestamps:
                reader.close()
                raise UsageError("--what rates needs --interval SECONDS"
                                 + ("" if raw else f" ({args.file} has no timestamps"
                                    + (": name its time column with --timestamp-column)" if reader.format == "cim-csv"
                                       else ")")))
            stride = reader.stride or 1
            if fmt == "openmetrics" and (raw and (args.start is None or args.interval is None)):
                reader.close()
                raise UsageError("OpenMetrics samples need times: a raw log needs --start and --interval")
            metadata = {"what": args.what, "source": os.path.basename(args.file), "input_format": reader.format,
                        "stride": stride if raw else None,
                        "interval_seconds": args.interval, "start": (_window_start(args) or args.start).isoformat() if args.start else None,
                        "window": _window(args),
                        "on_decrease": args.on_decrease if args.what != "records" else None, "ipsecstats": __version__}
            if raw:
                layout = Layout(args.what, stride=stride, first_record=0 if args.what == "records" else stride,
                                interval=args.interval, start=_window_start(args))
            else:
                layout = Layout(args.what, columns=_capture_columns(reader.has_timestamps,
                                                                    getattr(reader, "has_hosts", False)))
                if fmt == "npy":
                    _note(f"{args.output}: .npy holds the {args.what} array only (the 21 fields, rows in the order "
                          "of the capture" + ("" if args.what == "records" else ", of the later record of each pair")
                          + "); the record, timestamp and instance of each row go to CSV, JSON Lines or Parquet")
            write_table(_convert_chunks(args, reader, bar), args.output, fmt, layout, dtype, metadata)
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:
        from ._export import STDOUT_NAME

        output = isinstance(exc, OSError) and exc.filename in (args.output, STDOUT_NAME)
        _error(args, ("standard output" if args.output == "-" else args.output) if output else args.file, exc)
        return EXIT_DATA
    return 0


def _capture_columns(timestamps: bool, hosts: bool) -> dict[str, Any]:
    """The leading columns of a capture's export, as empty columns that name them."""
    from ._capture import InstanceLabels

    cols: dict[str, Any] = {"record": np.empty(0, np.uint64)}
    if timestamps:
        cols["timestamp"] = np.empty(0, "datetime64[ns]")
    if hosts:
        cols["host"] = InstanceLabels(np.empty(0, np.intp), ())
    cols["instance"] = InstanceLabels(np.empty(0, np.intp), ())
    return cols


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules has no spec
        return False


def _convert_dataset(args: argparse.Namespace) -> int:
    """Several logs (or --scheduler) to one Parquet dataset in the directory OUT, one file per partition."""
    from ._export import format_for
    from .dask import convert_logs

    try:
        fmt = format_for(args.output.rstrip("/" + os.sep) or args.output, args.format)
    except ValueError:  # no known suffix: a plain directory name
        fmt = "parquet"
    if args.output == "-" or fmt != "parquet":
        raise UsageError("several FILEs or --scheduler write a Parquet dataset: give a directory with -o DIR/")
    if args.start is not None:
        raise UsageError("--start is not supported for a Parquet dataset output; convert one FILE at a time")
    if args.window_from is not None or args.window_to is not None:
        from . import formats
        from ._source import ByteSource

        for path in [args.file, *args.more_files]:  # a capture's own times only: a dataset takes no --start
            with contextlib.suppress(OSError, ValueError):  # reported when the dataset is written
                with contextlib.closing(ByteSource(path)) as src:
                    raw = (formats.detect(src) if args.input_format == "auto"
                           else formats.by_name(args.input_format)).name == "raw"
                if raw:
                    raise UsageError(f"{path}: --from/--to on a raw log need --start, which a Parquet dataset "
                                     "does not take; convert one FILE at a time")
    missing = [m for m in ("dask", "pyarrow") if not _importable(m)]
    if missing:
        why = "--scheduler" if args.scheduler else ("several FILEs" if args.more_files else
                                                    f"-o {args.output} (a directory)")
        raise DataError(f"{why} means one Parquet dataset, a file per partition, written with Dask: that needs "
                        f"{' and '.join(missing)}: pip install \"ipsecstats[dask]\"; or give one FILE and a file name "
                        "such as -o deltas.parquet")
    try:
        with _scheduler_errors(args.scheduler):  # inside the try: its UsageError / DataError are neither OSError nor ValueError
            names = convert_logs([args.file, *args.more_files], args.output, scheduler=args.scheduler,
                                 what=args.what, stride=args.stride or 1,
                                 interval=args.interval if args.what == "rates" else None,
                                 on_decrease=args.on_decrease, allow_partial=args.allow_partial,
                                 input_format=args.input_format, window_from=args.window_from,
                                 window_to=args.window_to, **_csv_options(args))
    except (OSError, ValueError) as exc:
        _error(args, args.file, exc)
        return EXIT_DATA
    print(f"{PROG} convert: wrote {len(names)} Parquet file(s) to {args.output}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _scheduler_errors(scheduler: str | None) -> Iterator[None]:
    """--scheduler failures as one line: a malformed address or a bad IPSECSTATS_CONNECT_TIMEOUT is a
    UsageError (exit 2), a scheduler that cannot be reached a DataError (exit 1)."""
    from .dask import (
        LOCAL_SCHEDULERS,
        SchedulerAddressError,
        SchedulerConnectionError,
        connect_timeout,
    )

    if scheduler is not None and scheduler not in LOCAL_SCHEDULERS:
        try:
            connect_timeout()  # check the environment before any work
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    try:
        yield
    except SchedulerAddressError as exc:
        raise UsageError(str(exc)) from exc
    except SchedulerConnectionError as exc:
        raise DataError(str(exc)) from exc


def _convert_chunks(args: argparse.Namespace, reader: Any, bar: Progress) -> Iterator[tuple[Any, ...]]:
    """``(first_row, array, leading columns)`` of the records, deltas or rates, chunk by chunk.

    A raw log's leading columns come from the ``Layout`` (None here); a capture's from its chunks.
    """
    from ._pipeline import iter_delta_chunks, rate_rows, row_columns

    raw = reader.stride is not None
    src = reader.source
    done = src.offset
    if args.what == "records":
        for chunk in reader:
            index = np.arange(len(chunk), dtype=np.intp)
            yield chunk.start, chunk.records, None if raw else row_columns(chunk, index)
            bar.update(src.offset - done)
            done = src.offset
        return
    interval = args.interval if args.what == "rates" else None
    for d in iter_delta_chunks(reader, on_decrease=args.on_decrease, interval=interval):
        values = d.values if args.what == "deltas" else rate_rows(d, None)
        yield d.first_row, values, None if raw else d.leading_columns()
        bar.update(src.offset - done)
        done = src.offset


def cmd_plot(args: argparse.Namespace) -> int:
    from ._export import atomic_output
    from ._plot import _matplotlib, render
    from ._stats import scan

    _check_time_options(args, [args.file] if args.file else [])
    with contextlib.ExitStack() as stack:
        path = args.file
        if path is None:
            path, notes = stack.enter_context(sample_log())
            _sample_settings(args, notes)
        _refuse_overwriting(args.output, [path])
        size = _file_size(path) or 0
        try:
            reader = _open_log(args, path)  # the options' usage errors first
            try:
                _matplotlib()  # then a missing extra, before any work or progress bar
            except ImportError:
                reader.close()
                raise
            with _progress(args, size, path) as bar, _trailing_bytes([], show=True):
                stats = scan(reader, on_decrease=args.on_decrease, bins=args.bins, progress=bar.update,
                             by_instance=args.by_instance)
        except (OSError, ValueError) as exc:
            _error(args, path, exc)
            return EXIT_DATA
        try:
            with atomic_output(args.output) as f:
                render(stats, f, interval=args.interval, start=_window_start(args), title=args.title)
        except OSError as exc:
            _error(args, args.output, exc)
            return EXIT_DATA
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from ._export import atomic_output
    from ._generate import generate_blocks

    if args.records % args.instances:
        raise UsageError(f"--records ({args.records}) must be a multiple of --instances ({args.instances})")
    if args.format == "wnode":
        _check_last_time(args.start, args.interval, args.records // args.instances, args.output)
    try:
        blocks = generate_blocks(args.records, instances=args.instances, interval=args.interval,
                                 restarts=args.restarts, seed=args.seed, wrap=args.wrap)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    encode = _raw_bytes if args.format == "raw" else _wnode_encoder(args)
    need = args.records * RECORD_SIZE if args.format == "raw" else \
        len(_wnode_encoder(args)(np.zeros(args.instances, RECORD_DTYPE))) * (args.records // args.instances)
    free = _free_bytes(args.output)
    if free is not None and need > free:
        _error(args, args.output, OSError(errno.ENOSPC, f"{need:,} bytes would not fit: the file system has "
                                          f"{free:,} bytes free", args.output))
        return EXIT_DATA
    try:
        with _progress(args, args.records * RECORD_SIZE, args.output) as bar, atomic_output(args.output) as f:
            for block in blocks:
                f.write(encode(block))
                bar.update(block.nbytes)
    except OSError as exc:
        _error(args, args.output, exc)
        return EXIT_DATA
    return 0


def _free_bytes(path: str) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of ``path``'s folder."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except (OSError, AttributeError):  # no statvfs (Windows) or no such folder (open reports it)
        return None
    return st.f_bavail * st.f_frsize


def _raw_bytes(block: Any) -> Any:
    return block.view(np.uint8).data


def _wnode_encoder(args: argparse.Namespace) -> Any:
    """Blocks of interleaved records -> WNODE_ALL_DATA buffers, one per sample (``write_wnode``).

    Sample ``k`` is stamped ``start + k * interval`` (exact 100 ns FILETIME ticks); instance
    ``j`` is named ``ROOT\\ISCSIPRT\\{j:04d}_0``.
    """
    from .formats.wnode import write_wnode

    step = round(args.interval * 10**7)  # FILETIME ticks of 100 ns
    if step < 1 or abs(step * 100 - args.interval * 1e9) > 1e-6 * args.interval * 1e9:
        raise UsageError(f"--interval {args.interval:g} is not a whole number of 100 ns (a WNODE TimeStamp tick)")
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    start_ns = (args.start - epoch) // dt.timedelta(microseconds=1) * 1000
    k = args.instances
    names = [f"ROOT\\ISCSIPRT\\{j:04d}_0" for j in range(k)]
    done = [0]  # samples written so far

    def encode(block: Any) -> bytes:
        samples = block.shape[0] // k
        sample = np.repeat(np.arange(done[0], done[0] + samples, dtype=np.int64), k)
        done[0] += samples
        stamps = (start_ns + sample * (step * 100)).view("datetime64[ns]")
        return write_wnode(block, stamps, names * samples)

    return encode


# --------------------------------------------------------------------------- main


def _print_json(obj: Any) -> None:
    """The whole document, built before the first byte goes out: complete or nothing."""
    text = json.dumps(obj, indent=2, allow_nan=False)
    sys.stdout.write(text + "\n")


def _note(text: str) -> None:
    print(f"{PROG}: note: {text}", file=sys.stderr)


def _error(args: argparse.Namespace, path: str, exc: BaseException) -> str:
    """Print the one-line error about ``path`` on stderr; return its message."""
    if getattr(args, "debug", False):
        raise exc
    stride = getattr(args, "stride", None) or 1
    place = getattr(exc, "place", None)
    where = (lambda row: place) if place is not None else None
    message = describe_error(path, exc, stride, where)
    print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
    return message


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated(EXIT_TERMINATED)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *rest, **kw: _warn_line(str(message))
            return int(args.func(args))
    except UsageError as exc:
        print(f"{PROG} {args.command}: error: {exc} (see '{PROG} {args.command} --help')", file=sys.stderr)
        return EXIT_USAGE
    except DataError as exc:
        if args.debug:
            raise
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except ImportError as exc:
        if args.debug:
            raise
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except (KeyboardInterrupt, _Terminated) as exc:
        if args.debug:
            raise
        if isinstance(exc, _Terminated):
            print(f"{PROG}: terminated", file=sys.stderr)
            return EXIT_TERMINATED
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of our standard output went away (e.g. `| head`): stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
