"""The HTTP API: Flask application factory and blueprints."""

from __future__ import annotations

from datetime import datetime

from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from bridge.api import alerts, health, hosts, incidents, pause, ratelimit
from bridge.api.request import BoundedRequest
from bridge.engine import utcnow
from bridge.inventory import Inventory


class JSONProvider(DefaultJSONProvider):
    sort_keys = False

    @staticmethod
    def default(o):
        if isinstance(o, datetime):
            return o.isoformat().replace("+00:00", "Z")
        return DefaultJSONProvider.default(o)


class AsciiIntegerConverter(IntegerConverter):
    """<int:...> of ASCII digits only: werkzeug's \\d+ also takes '\uff11' or '\u0661' as 1."""
    regex = r"[0-9]+"


def create_app(config, store, engine=None, clock=utcnow, inventory: Inventory | None = None) -> Flask:
    """The app serves requests; `engine` (optional) is woken after every write. Host names
    resolve through `inventory` (the engine's, or one without a cloud)."""
    if inventory is None:
        inventory = engine.inventory if engine is not None else \
            Inventory(store, None, ttl=config["nova"]["inventory_ttl"], clock=clock)
    app = Flask("bridge")
    app.url_map.converters["int"] = AsciiIntegerConverter
    app.json = JSONProvider(app)
    app.request_class = BoundedRequest
    app.config["MAX_CONTENT_LENGTH"] = config["server"]["max_body_bytes"] + 1  # see BoundedRequest
    app.extensions["bridge"] = {"config": config, "store": store, "engine": engine, "clock": clock,
                                "inventory": inventory}
    app.extensions["bridge"]["webhooks"] = alerts.Webhooks(config, store, engine, clock, app.json.dumps)
    rates = config["server"]["rate_limit"]
    if rates["enabled"]:
        ratelimit.install(app, rates, admin_blueprints=[incidents.bp, hosts.bp, pause.bp])
    for module in (alerts, incidents, hosts, pause, health):
        app.register_blueprint(module.bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = jsonify(error=exc.name, message=exc.description)
        response.status_code = exc.code
        for name, value in exc.get_headers():  # Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        if exc.code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    return app
