"""The second example: a storm's central pressure (hPa) from its track and winds.

NOAA's Atlantic storm tracks 1975-2020 (11,859 six-hourly observations), as shipped in the
`datar` package (dplyr's `storms`). One table, a regression, the platform's default model: the
only code a problem of this shape needs is naming its key. The file's first column holds row
numbers without a header, which pandas reads as the index; `records` makes it the `id` column.
"""

from __future__ import annotations

import pandas as pd


def records(tables: dict[str, pd.DataFrame], params: dict) -> pd.DataFrame:
    """The storms table with its unnamed row number as the integer key `id`."""
    return tables["storms"].rename_axis("id").reset_index()
