"""One log record, one line: control characters in a message are escaped, never written.

Labels and names come from alerts: a newline in one would forge a log line of its own, an
ANSI escape would rewrite the terminal. The filter sits on the handlers, so it sees every
record (the bridge's, and gunicorn's error and access logs), with its arguments and its
traceback folded in, after everything else has been said.
"""

from __future__ import annotations

import logging

# C0, DEL and C1 controls; Unicode line and paragraph separators; bidirectional overrides
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_NAMED = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_TABLE = {c: _NAMED.get(c, f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROLS}
_tracebacks = logging.Formatter()


def escape(text: str) -> str:
    """repr-style escapes (\\n, \\x1b, \\u2028) for every control character; linear."""
    return text if text.isprintable() else text.translate(_TABLE)


class OneLine(logging.Filter):
    """Folds a record's arguments and traceback into its message, escaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = _tracebacks.formatException(record.exc_info)
        for extra in (record.exc_text, record.stack_info):
            if extra:
                text = f"{text}\n{extra}"
        record.msg, record.args = escape(text), None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


ONE_LINE = OneLine()


def install(handlers) -> None:
    for handler in handlers:
        handler.addFilter(ONE_LINE)  # once: addFilter skips a filter already there
