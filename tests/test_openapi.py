"""The OpenAPI document and the app describe the same endpoints."""

import re

from bridge.api.health import openapi_document
from bridge.sources import PARSERS


def test_every_route_is_documented_and_every_documented_path_exists(bridge):
    app = bridge.client.application
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule).replace("{incident_id}", "{id}")
        if "{action}" in path:  # any(retry, close, approve, cancel)
            routes |= {path.replace("{action}", a) for a in ("retry", "close", "approve", "cancel")}
        else:
            routes.add(path)
    documented = set(openapi_document()["paths"])
    assert routes == documented


def test_documented_sources_are_the_parsers():
    param = openapi_document()["paths"]["/v1/alerts/{source}"]["post"]["parameters"][0]
    assert sorted(param["schema"]["enum"]) == sorted(PARSERS)
