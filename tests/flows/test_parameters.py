"""The flows' parameters are typed, so the Prefect UI renders the settings as a form."""

from __future__ import annotations

import pytest
from prefect.utilities.callables import parameter_schema

from flows.full import glasses
from flows.retrain import retrain


@pytest.mark.parametrize("flow", [glasses, retrain])
def test_overrides_are_a_form_of_every_section(flow) -> None:
    schema = parameter_schema(flow).model_dump()
    assert schema["properties"]["profile"]["enum"] == ["paper", "quick", "tiny"]
    overrides = schema["properties"]["overrides"]["anyOf"][0]["$ref"].split("/")[-1]
    sections = schema["definitions"][overrides]["properties"]
    assert {"data", "cnn", "scatnet", "sweep", "xai", "runtime"} <= set(sections)
    optimiser = schema["definitions"]["OptimiserOverrides"]["properties"]
    assert optimiser["steps"]["description"].startswith("Most optimiser steps")
