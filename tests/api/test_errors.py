"""One rendering of a pydantic ValidationError into one line."""

from __future__ import annotations

import pytest
from edge_inference_api.errors import dotted, one_line
from pydantic import BaseModel, ValidationError


class Inner(BaseModel):
    count: int


class Outer(BaseModel):
    inner: Inner
    name: str


def error_of(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(data)
    return caught.value


def test_each_problem_is_named_by_its_path() -> None:
    line = one_line(error_of({"inner": {"count": "many"}}), dotted("spec"))
    assert line.startswith("spec.inner.count: Input should be a valid integer")
    assert "; spec.name: Field required" in line and "\n" not in line


def test_the_object_itself_is_named_by_the_root() -> None:
    assert one_line(error_of("text"), dotted("spec")).startswith("spec: ")


def test_limit_and_custom_names() -> None:
    error = error_of({"inner": {"count": "many"}})
    assert one_line(error, lambda loc: "_".join(map(str, loc)).upper(), limit=1) == (
        "INNER_COUNT: Input should be a valid integer, unable to parse string as an integer"
    )
