"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user (a file, a field, a value); the message says which and why."""

    exit_code = 2


# What to do when the disk refuses a write (full, read-only, over quota): answers are committed
# one by one, so nothing asked before is lost and the same command resumes.
STORAGE_ADVICE = (
    "free space, or make the directory writable (or choose another --out), then rerun the same "
    "command to resume"
)
