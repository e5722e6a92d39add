"""Specs whose worker pods the API server would refuse are refused by the model (what the operator
checks), each with a message that says what is wrong. The same table goes to the real API server at
`kubectl apply` in tests/operator/test_refused_at_apply.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from edge_inference_api.models import InferenceJobSpec
from pydantic import ValidationError
from support.refused_specs import ACCEPTED, REFUSED, RefusedSpec, spec_with


def test_the_review_table_is_all_here() -> None:
    assert len(REFUSED) >= 13


@pytest.mark.parametrize("row", REFUSED, ids=[r.id for r in REFUSED])
def test_the_model_refuses_specs_whose_pods_the_api_server_would_refuse(row: RefusedSpec) -> None:
    with pytest.raises(ValidationError) as refused:
        InferenceJobSpec.model_validate(spec_with(row.path, row.value))
    assert row.message in str(refused.value)


@pytest.mark.parametrize(("path", "value"), [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_the_model_accepts_what_kubernetes_accepts(path: str, value: Any) -> None:
    InferenceJobSpec.model_validate(spec_with(path, value))
