"""The MSiSCSI_MMIPSECStats record: one definition, imported by every backend.

A record is the WMI data block of class ``MSiSCSI_MMIPSECStats`` (iscsiprf.h, GUID
36b58ea2-c461-4bb0-ac8e-952f59d251ed): 21 little-endian ``uint64`` items in
WmiDataId order, 8 bytes each, no padding, 168 bytes in all.

Every item is declared ``PERF_COUNTER_LARGE_RAWCOUNT``, so the metadata does not say
which items are levels and which are running totals; the split below (5 gauges, 16
counters) follows the MOF descriptions. Callers can override it per call (``kinds=``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

__all__ = [
    "COUNTERS",
    "FIELDS",
    "FIELD_NAMES",
    "GAUGES",
    "NFIELDS",
    "RECORD_DTYPE",
    "RECORD_SIZE",
    "Field",
    "Kind",
]

Kind = Literal["counter", "gauge"]


class Field(NamedTuple):
    """One item of the record (immutable)."""

    name: str
    wmi_id: int
    offset: int
    kind: Kind
    description: str


# (name, kind, description) in WmiDataId order; ids and offsets follow from the order.
_LAYOUT: tuple[tuple[str, Kind, str], ...] = (
    ("ActiveAcquire", "gauge", "Outstanding plus queued acquire requests (typically 1)."),
    ("ActiveReceive", "gauge", "IKE messages queued for processing."),
    ("AcquireFailures", "counter", "Times an acquire request has failed."),
    ("ReceiveFailures", "counter", "TCP stack failures while receiving IKE messages."),
    ("SendFailures", "counter", "TCP stack failures while sending IKE messages."),
    ("AcquireHeapSize", "gauge", "Entries in the acquire heap; rises under load, then decays."),
    ("ReceiveHeapSize", "gauge", "Entries in the IKE receive buffers."),
    ("NegotiationFailures", "counter", "Main-mode plus quick-mode negotiation failures."),
    ("AuthenticationFailures", "counter", "Identity authentication failures (Kerberos, certificate, PSK)."),
    ("InvalidCookiesReceived", "counter", "Received messages whose cookie matches no active main mode."),
    ("TotalGetSPI", "counter", "SPI requests."),
    ("KeyAdditions", "counter", "Outbound quick-mode SAs added."),
    ("KeyUpdates", "counter", "Inbound quick-mode SAs added."),
    ("GetSPIFailures", "counter", "Failed SPI requests."),
    ("KeyAdditionFailures", "counter", "Outbound quick-mode SAs that failed to be added."),
    ("KeyUpdateFailures", "counter", "Inbound quick-mode SAs that failed to be added."),
    ("ConnectionListSize", "gauge", "Quick-mode state entries."),
    ("OakleyMainMode", "counter", "Successful main-mode SAs."),
    ("OakleyQuickMode", "counter", "Successful quick-mode SAs."),
    ("InvalidPackets", "counter", "Invalid IKE messages received."),
    ("SoftAssociations", "counter", "Negotiations that fell back to plaintext (soft SAs)."),
)

ITEM_SIZE = 8
NFIELDS = len(_LAYOUT)
RECORD_SIZE = NFIELDS * ITEM_SIZE

FIELDS: tuple[Field, ...] = tuple(
    Field(name, i + 1, i * ITEM_SIZE, kind, text) for i, (name, kind, text) in enumerate(_LAYOUT)
)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
COUNTERS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind == "counter")
GAUGES: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind == "gauge")

RECORD_DTYPE = np.dtype({
    "names": list(FIELD_NAMES),
    "formats": ["<u8"] * NFIELDS,
    "offsets": [f.offset for f in FIELDS],
    "itemsize": RECORD_SIZE,
})

assert RECORD_SIZE == 168 and len(COUNTERS) == 16 and len(GAUGES) == 5
