"""The two consoles every command prints to: results on standard output, errors and progress
on standard error."""

from __future__ import annotations

import os

from rich.console import Console

# No markup and no emoji codes: names and texts from user files ("[/x]", "openai:m:") are printed
# as they are, never parsed.
console = Console(markup=False, emoji=False)
err = Console(stderr=True, markup=False, emoji=False)
_COLUMNS = os.environ.get("COLUMNS", "")
for _console in (console, err):
    if _COLUMNS.isdigit() and int(_COLUMNS) >= 40:
        _console.width = int(_COLUMNS)
    elif _COLUMNS or not _console.is_terminal:
        # A log file has no width to fit: tables of long names stay whole instead of wrapping
        # at rich's 80 columns. A COLUMNS that is no width ("abc", "0") is one too: rich would
        # print nothing at width 0.
        _console.width = 120
