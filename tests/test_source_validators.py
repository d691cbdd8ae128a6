"""Each source's schema is checked by jsonschema-rs first; jsonschema only words the error. The
two must agree on what a schema accepts, or a body would pass one and fail the other."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sources import alertmanager, nagios, zabbix

VALIDATORS = {"alertmanager": alertmanager.VALIDATOR, "nagios": nagios.VALIDATOR,
              "zabbix": zabbix.VALIDATOR, "zabbix tags": zabbix.TAGS_VALIDATOR}
KEYS = st.sampled_from(["version", "status", "alerts", "labels", "annotations", "startsAt", "fingerprint",
                        "truncatedAlerts", "event_tags", "tag", "value", "host", "state", "x"])
SCALARS = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | \
    st.sampled_from(["4", "firing", "resolved", "", "HostDown", "DOWN", "HARD", "0"]) | st.text(max_size=8)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                    max_leaves=20)


@pytest.mark.parametrize("name", sorted(VALIDATORS))
@settings(max_examples=100, deadline=None)
@given(document=JSON)
def test_the_fast_and_the_wording_validator_agree(name, document):
    validator = VALIDATORS[name]
    assert validator.fast.is_valid(document) == validator.full.is_valid(document)
