"""CSV exports for spreadsheets: a cell that a spreadsheet would read as a formula is written as text."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

# What makes Excel, LibreOffice and Google Sheets evaluate a cell (tab and CR are stripped before the check).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral_cell(value: Any) -> Any:
    """The value itself, except text that a spreadsheet would evaluate, which gets a leading apostrophe.
    Numbers stay numbers: -3.5 is a value, not a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class CsvWriter:
    """`csv.writer` whose every cell goes through `neutral_cell`: the one writer every export uses."""

    def __init__(self, stream: TextIO) -> None:
        self._writer = csv.writer(stream)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutral_cell(value) for value in row])


def csv_writer(stream: TextIO) -> CsvWriter:
    return CsvWriter(stream)
