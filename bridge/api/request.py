"""Request bodies bounded by server.max_body_bytes, whatever their transfer encoding."""

from __future__ import annotations

import flask
from werkzeug.exceptions import RequestEntityTooLarge


class BoundedRequest(flask.Request):
    """Werkzeug stops a chunked body silently at max_content_length; here an overrun is a 413.

    The app's MAX_CONTENT_LENGTH is the limit plus one byte, so that an overrun can be seen.
    """

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False):
        limit = self.max_content_length
        try:
            data = super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data)
        except RequestEntityTooLarge:  # a Content-Length over it: the same message, naming the setting
            data = None
        if data is None or (limit is not None and len(data) >= limit):
            raise RequestEntityTooLarge(f"body larger than server.max_body_bytes ({limit - 1})")
        return data.decode(errors="replace") if as_text else data
