"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class UserError(Exception):
    """Bad input from the user (a file, a field, a value); the message says which and why."""

    exit_code = 2


def setting_error(exc: ValidationError, as_flag: bool) -> UserError:
    """A setting a pydantic model refused, as one line naming it the way the caller gave it:
    ``--max-tokens: …`` on the command line, ``max_tokens: …`` in Python."""
    first = exc.errors()[0]
    name = ".".join(map(str, first["loc"]))
    if not name:
        return UserError(f"{exc.title}: {first['msg']}")
    where = "--" + name.replace("_", "-") if as_flag else name
    return UserError(f"{where}: {first['msg']} (got {first.get('input')!r})")


# What to do when the disk refuses a write (full, read-only, over quota): answers are committed
# one by one, so nothing asked before is lost and the same command resumes.
STORAGE_ADVICE = (
    "free space, or make the directory writable (or choose another --out), then rerun the same "
    "command to resume"
)
