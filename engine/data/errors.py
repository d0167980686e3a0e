"""The one error type of the data pipeline."""

from __future__ import annotations


class DataError(ValueError):
    """Unusable market data or an impossible request.

    The message names the file (where there is one), the row (0-based position in the file, where
    relevant) and the column, e.g. ``es.parquet: row 17, column 'close': NaN price``.
    """

    def __init__(self, message: str, *, path: object = None, row: int | None = None,
                 column: str | None = None) -> None:
        parts = []
        if path is not None:
            parts.append(str(path))
        if row is not None:
            parts.append(f"row {row}")
        if column is not None:
            parts.append(f"column {column!r}")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.row = row
        self.column = column
