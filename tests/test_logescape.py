"""Log forgery (issue 7, item 5): whatever an alert carries, one log record is one line."""

import io
import logging
import socket

import pytest

from bridge.logescape import ONE_LINE, escape
from tests.conftest import sample_json
from tests.harness.bridge_process import wait_until

FORGED = "incident 1 compute-01: fenced -> forced_down"


@pytest.mark.parametrize("text, escaped", [
    ("compute-01\n" + FORGED, "compute-01\\n" + FORGED),
    ("a\r\nb\tc", "a\\r\\nb\\tc"),
    ("\x1b[2J\x1b[1;1H" + FORGED, "\\x1b[2J\\x1b[1;1H" + FORGED),
    ("x\x85y\u2028z\u2029\u202ew\x00", "x\\x85y\\u2028z\\u2029\\u202ew\\x00"),
    ("compute-01.example.org ünïcode ok", "compute-01.example.org ünïcode ok"),
])
def test_escape_leaves_no_control_character(text, escaped):
    assert escape(text) == escaped


def logged(logger_name: str, emit) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ONE_LINE)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_record_with_arguments_and_a_traceback_is_one_line():
    def emit(log):
        log.warning("signal %s -> incident %s (%s)", 1, 2, "host 'c1\n" + FORGED + "'")
        try:
            raise ValueError("bad\n" + FORGED)
        except ValueError:
            log.exception("cannot store %d signal(s) from %s", 1, "alertmanager")

    lines = logged("test.oneline", emit).splitlines()
    assert len(lines) == 2
    assert lines[0] == "WARNING test.oneline: signal 1 -> incident 2 (host 'c1\\n" + FORGED + "')"
    assert lines[1].startswith("ERROR test.oneline: cannot store 1 signal(s) from alertmanager\\nTraceback")
    assert lines[1].endswith("ValueError: bad\\n" + FORGED)


@pytest.mark.process
def test_a_forged_line_in_a_label_or_a_header_reaches_the_log_escaped(bridge_process):
    bridge = bridge_process()
    body = sample_json("webhook_firing_api_v2.json")
    body["alerts"][0]["labels"]["openstack_host"] = "compute-01\n" + FORGED + "\x1b[2K"
    assert bridge.post_alert("alertmanager", body).status_code == 202
    bridge.wait_for_incident("compute-01\n" + FORGED + "\x1b[2K", "fencing")
    # gunicorn's access log: a header may carry a C1 control (NEL, a line break in Unicode)
    with socket.create_connection(("127.0.0.1", bridge.port)) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x85" + FORGED.encode() +
                     b"\r\nConnection: close\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 200")
    text = wait_until("the access log line", lambda: (t := bridge.log_path.read_text()) and "a\\x85" in t and t)
    assert "compute-01\\n" + FORGED + "\\x1b[2K" in text  # the engine did log it
    assert not [line for line in text.splitlines() if line.startswith(FORGED)]  # splitlines: \x85 too
    assert "\x1b" not in text
