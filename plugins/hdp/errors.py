"""Error text that is safe to store and log: it never quotes a value.

PostgreSQL's messages quote values (`invalid input syntax for type date: "<value>"`) and its
CONTEXT lines quote a COPY's failing line; both can be patient data. Audit tables, task logs
and alerts get the error's class, SQLSTATE and first line with every quoted part replaced.
"""

from __future__ import annotations

import re

QUOTED = re.compile(r'"[^"]*"|\'[^\']*\'')


def safe_error(exc: BaseException) -> str:
    """An error's class, SQLSTATE and first line, quoted parts replaced by "…"."""
    primary = getattr(getattr(exc, "diag", None), "message_primary", None) or str(exc)
    first = QUOTED.sub('"…"', primary.splitlines()[0] if primary else "")[:300]
    code = getattr(exc, "pgcode", None)
    return f"{type(exc).__name__}{f' (SQLSTATE {code})' if code else ''}: {first}"
