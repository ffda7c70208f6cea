"""Shim: the CIM CSV reader lives in ``ipsecstats.formats.cimcsv``; ``_log`` still imports it from here."""

from .formats.cimcsv import CimCsvFormatError, read_cim_csv

__all__ = ["CimCsvFormatError", "read_cim_csv"]
