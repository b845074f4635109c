"""Words for messages: lists of names written as a reader reads them, not as Python prints them.

An error line that says `missing ['label']; found ['a', 'b']` or `(('.csv', '.xlsx'))` shows the
reader a Python value; `missing label; found a, b` and `.csv, .xlsx` say the same in words.
"""

from __future__ import annotations

from collections.abc import Iterable


def listing(items: Iterable, limit: int | None = 12, empty: str = "none") -> str:
    """`items` as "a, b, c", the first `limit` of them then "(+N more)"; `empty` for none.

    Example:
        >>> listing(["time", "ax", "ay"])
        'time, ax, ay'
        >>> listing(range(20), limit=3)
        '0, 1, 2 (+17 more)'
    """
    names = [str(item) for item in items]
    if not names:
        return empty
    shown = names if limit is None else names[:limit]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more else "")
