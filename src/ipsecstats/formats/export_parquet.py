"""Parquet written by ``ipsecstats convert --what records`` as input (needs pyarrow: the ``arrow`` extra).

The writer's file: one row group per chunk; ``record`` and the 21 fields ``uint64``; a raw
log's ``instance`` ``uint64`` and ``time`` ``timestamp[ns, UTC]``; a capture's
``timestamp`` ``timestamp[ns, UTC]`` (null: no time), ``host`` and ``instance``
dictionary-encoded strings; the schema metadata key ``ipsecstats`` holds JSON with
``what``, ``input_format`` and ``stride`` (a raw log's). Anything but ``what: records``
is refused, since inputs are records.

Read with ``ParquetFile.iter_batches``: a batch of ``chunk_records`` rows at a time,
columns to numpy without a Python object per value; names once per dictionary entry.
Parquet keeps its index at the end of the file, so the source must be a file (a path,
or bytes), not a pipe. Sniff: the magic ``PAR1``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._capture import Capture
from .._checks import check_chunk_records
from .._schema import FIELD_NAMES, RECORD_DTYPE
from .._source import ByteSource
from ._base import Format
from ._exported import INPUTS_ARE_RECORDS, Assembler, ExportFormatError, Rows, Texts, plan_columns

__all__ = ["FORMAT", "ParquetExportReader", "accept"]

CHUNK_RECORDS = 16384
_NAT = np.iinfo(np.int64).min


def accept(prefix: bytes) -> bool:
    """The Parquet magic ``PAR1``."""
    return prefix[:4] == b"PAR1"


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError('reading Parquet needs pyarrow: pip install "ipsecstats[arrow]"') from None
    return pa, pq


class ParquetExportReader:
    """Chunks of an ipsecstats Parquet export (see the module docstring)."""

    format = "ipsecstats-parquet"

    def __init__(self, source: ByteSource, *, chunk_records: int | None = None):
        self.source = source
        self.name = source.name
        self.chunk_records = check_chunk_records(CHUNK_RECORDS if chunk_records is None else chunk_records)
        try:
            self._pa, pq = _pyarrow()
            self._file = pq.ParquetFile(self._open(), memory_map=False)
            schema = self._file.schema_arrow
            meta = self._metadata(schema)
            what = meta.get("what", "records")
            if what != "records":
                raise ExportFormatError(f"{self.name}: a {what} table (its metadata says so): {INPUTS_ARE_RECORDS}")
            self.plan = plan_columns(list(schema.names), self.name, "the schema")
            self._check_types(schema)
            numbered = "instance" in schema.names and self._pa.types.is_integer(schema.field("instance").type)
            shape = "raw" if numbered or meta.get("stride") is not None else self.plan.shape or "capture"
            self._instances = None if shape == "raw" else Texts()
            self._hosts = Texts() if self.plan.has("host") else None
            self._asm = Assembler(self.name, self.plan, "row", self._instances, self._hosts, shape)
            self._rows = self._asm.open(self._batches())
            stride = meta.get("stride")
            if shape == "raw" and isinstance(stride, int) and self._asm.stride != stride:
                if self._asm.stride is not None and self._asm.stride > stride:
                    raise ExportFormatError(f"{self.name}: the instance column gives stride {self._asm.stride}, "
                                            f"the metadata {stride}")
                self._asm.stride = stride  # fewer records than one sample: the metadata knows the stride
        except BaseException:
            source.close()
            raise
        raw = shape == "raw"
        self.stride = self._asm.stride if raw else None
        self.has_timestamps = not raw and self.plan.time is not None
        self.has_hosts = self.plan.has("host")

    @property
    def start(self) -> np.datetime64 | None:
        return self._asm.start

    @property
    def interval(self) -> float | None:
        return self._asm.interval

    def _open(self) -> Any:
        src = self.source
        if src.regular:
            return src.name
        if src.size is not None:  # bytes in memory
            data = bytearray(src.size)
            src.readinto(data)
            return self._pa.BufferReader(bytes(data))
        raise ExportFormatError(f"{self.name}: Parquet keeps its index at the end of the file: read it from a file, "
                                "not a pipe")

    def _metadata(self, schema: Any) -> dict[str, Any]:
        raw = (schema.metadata or {}).get(b"ipsecstats")
        if raw is None:
            return {}
        try:
            meta = json.loads(raw)
        except ValueError:
            raise ExportFormatError(f"{self.name}: the 'ipsecstats' metadata is not JSON") from None
        return meta if isinstance(meta, dict) else {}

    def _check_types(self, schema: Any) -> None:
        pa = self._pa
        for field in schema:
            t = field.type
            if field.name in ("time", "timestamp"):
                ok = pa.types.is_timestamp(t)
            elif field.name in ("host",) or (field.name == "instance" and not pa.types.is_integer(t)):
                ok = pa.types.is_string(t) or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))
            else:
                ok = t == pa.uint64()
            if not ok:
                hint = ""
                if field.name in FIELD_NAMES and (pa.types.is_signed_integer(t) or pa.types.is_floating(t)):
                    hint = f" (a deltas or rates table: {INPUTS_ARE_RECORDS})"
                raise ExportFormatError(f"{self.name}: column {field.name!r} is {t}, not the type ipsecstats "
                                        f"writes{hint}", field=field.name)

    def _batches(self) -> Iterator[Rows]:
        pa = self._pa
        first = 1
        for batch in self._file.iter_batches(batch_size=self.chunk_records):
            n = batch.num_rows
            cols = dict(zip(batch.schema.names, batch.columns))
            for name, col in cols.items():
                if col.null_count and name not in ("time", "timestamp"):
                    i = int(np.argmax(np.asarray(col.is_null())))
                    raise ExportFormatError(f"{self.name}: row {first + i}, column {name!r}: empty (null)",
                                            line=first + i, field=name)
            records = np.empty(n, RECORD_DTYPE)
            for name in FIELD_NAMES:
                records[name] = cols[name].to_numpy()
            stamps = None
            if self.plan.time is not None:
                stamps = np.asarray(cols[self.plan.time].cast(pa.int64()).fill_null(_NAT)).astype(np.int64)
            inst = None
            if "instance" in cols:
                inst = self._ids(cols["instance"], self._instances) if self._instances is not None \
                    else cols["instance"].to_numpy()
            hosts = self._ids(cols["host"], self._hosts) if self._hosts is not None else None
            yield Rows(cols["record"].to_numpy(), stamps, inst, hosts, records,
                       np.arange(first, first + n, dtype=np.int64))
            first += n

    def _ids(self, col: Any, texts: Texts | None) -> Any:
        """Text ids of a string column: one lookup per dictionary entry."""
        assert texts is not None
        pa = self._pa
        if not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        lut = np.array([texts.id(s) for s in col.dictionary.to_pylist()] or [0], np.intp)
        return lut[col.indices.to_numpy(zero_copy_only=False).astype(np.intp)]

    def __iter__(self) -> Iterator[Capture]:
        try:
            for rows in self._rows:
                yield self._asm.capture(rows)
        finally:
            self.close()

    def close(self) -> None:
        close = getattr(getattr(self, "_file", None), "close", None)
        if close is not None:
            close()
        self.source.close()


FORMAT = Format("ipsecstats-parquet", "an ipsecstats Parquet export", accept, ParquetExportReader)
