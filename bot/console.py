"""How every ``voicebot`` command talks to the terminal when something goes wrong.

Exit status: 0 success, 1 a runtime failure (e.g. the model refused), 2 a usage or
configuration error, 130 interrupted; errors are one line on stderr.
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # a usage or configuration error
EXIT_INTERRUPTED = 130


def fail(line: str) -> None:
    """One error line on stderr, as every command prints it."""
    print(f"voicebot: {line}", file=sys.stderr)
