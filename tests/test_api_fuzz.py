"""Schemathesis against the served OpenAPI document: no server error, no answer that breaks it.

Fixed seed (derandomize) and a bounded number of examples per operation, so CI runs it quickly.
Each operation is fuzzed with the admin token and with a webhook token.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bridge.api import create_app
from bridge.config import Config, validate
from tests.conftest import InProcessBridge
from tests.harness.bridge_process import ADMIN_TOKEN, WEBHOOK_TOKEN

FUZZ = settings(max_examples=30, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


# the document as the app serves it; the cases then run against a bridge with a database
schema = schemathesis.openapi.from_wsgi(
    "/v1/openapi.json", create_app(Config(data=validate({}), webhook_tokens={}, admin_tokens={}), store=None))


@pytest.fixture
def app(tmp_path):
    return InProcessBridge(tmp_path).client.application


def call_and_validate(case, app, token: str) -> None:
    # a webhook body is the source's own payload, which the document leaves open (type: object):
    # an object the source's parser rejects is a 400 there, not a break of the document
    excluded = [positive_data_acceptance] if case.operation.path == "/v1/alerts/{source}" else []
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {token}"}, excluded_checks=excluded)


@schema.parametrize()
@FUZZ
def test_with_the_admin_token(case, app):
    call_and_validate(case, app, ADMIN_TOKEN)


@schema.parametrize()
@FUZZ
def test_with_a_webhook_token(case, app):
    call_and_validate(case, app, WEBHOOK_TOKEN)
