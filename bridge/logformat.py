"""Log output: plain text for a terminal, or one JSON object per line for a log pipeline.

Both are one line per record. Text escapes control characters (bridge/logescape.py); JSON
escapes them by itself, and every non-ASCII character too (`ensure_ascii`), so no alert's
text can break a line or reorder a terminal in either. A record with a `decision` (the
engine's transitions, bridge/observe.py) carries its fields at the top level of the JSON
object: incident, host, from_state, to_state, cause, effect, result, gate.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from bridge.logescape import install as one_line

TEXT, JSON = "text", "json"
TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
_format = TEXT  # what configure() chose; gunicorn's own loggers follow it (bridge/serve.py)


class JSONLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "decision", None) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=True, default=str)


def apply(handlers) -> None:
    """Give these handlers the chosen format (the root's, and gunicorn's error and access logs)."""
    handlers = list(handlers)
    if _format == JSON:
        for handler in handlers:
            handler.setFormatter(JSONLines())
    else:
        one_line(handlers)


def configure(level: str, fmt: str = TEXT) -> None:
    global _format
    _format = fmt
    logging.basicConfig(level=level, format=TEXT_FORMAT)
    apply(logging.getLogger().handlers)
