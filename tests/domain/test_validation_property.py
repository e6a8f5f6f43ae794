"""Property: validation takes any JSON value and either returns fields the journal can
store (UTF-8 JSON) or raises ValidationError whose errors can themselves be encoded
(issue 10). Bounded (200 examples each, no deadline) so the suite stays fast.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contacts_cli.domain import ValidationError, validate_new, validate_patch
from contacts_cli.domain.model import EDITABLE_FIELDS

BOUNDED = settings(max_examples=200, deadline=None)

any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
contact_like = st.dictionaries(
    st.sampled_from(EDITABLE_FIELDS) | any_text,
    json_values | st.lists(any_text, max_size=3),
    max_size=6,
)


def check(raw: Any, patch: bool) -> None:
    try:
        fields = (validate_patch if patch else validate_new)(raw)
    except ValidationError as exc:
        json.dumps(exc.to_list(), ensure_ascii=False).encode("utf-8")
        str(exc).encode("utf-8")
        return
    json.dumps(fields, ensure_ascii=False).encode("utf-8")


@BOUNDED
@given(raw=st.one_of(contact_like, json_values), patch=st.booleans())
def test_any_json_value_is_validated_or_refused_encodably(raw: Any, patch: bool) -> None:
    check(raw, patch)
