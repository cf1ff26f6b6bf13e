"""Errors carry the field at fault (FieldError); the HTTP layer reads it, never the message text."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kayenta_py.http.errors import install_error_handlers
from kayenta_py.model.errors import FieldError, KayentaError, ThresholdsError
from kayenta_py.model.types import Thresholds


def _client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/field")
    def field() -> None:
        raise FieldError("metadata.mode", "'fast' is not fixed or sequential")

    @app.get("/text")
    def text() -> None:
        raise KayentaError("thresholds.pass: looks like a field, but the error names none")

    @app.get("/flag")
    def flag() -> None:
        raise FieldError("--pass", "not a request field")

    return TestClient(app)


def test_the_location_is_the_errors_field() -> None:
    client = _client()
    answer = client.get("/field")
    assert answer.status_code == 422
    [item] = answer.json()["detail"]
    assert item["loc"] == ["body", "metadata", "mode"]
    assert item["msg"] == "metadata.mode: 'fast' is not fixed or sequential"


def test_message_text_is_not_parsed_for_a_location() -> None:
    client = _client()
    [item] = client.get("/text").json()["detail"]
    assert item["loc"] == ["body"]
    [item] = client.get("/flag").json()["detail"]
    assert item["loc"] == ["body"]  # a CLI flag is not a body field


def test_thresholds_errors_name_the_doors_field_and_key() -> None:
    with pytest.raises(ThresholdsError) as caught:
        Thresholds().overridden({"marginal": 99}, field="scoreThresholds")
    assert (caught.value.field, caught.value.key) == ("scoreThresholds.marginal", "marginal")
    assert caught.value.problem == "99 is above scoreThresholds.pass (95)"
    options = {"pass": "--pass", "marginal": "--marginal"}
    with pytest.raises(ThresholdsError, match=r"^--marginal: 'x' is not a number$"):
        Thresholds().overridden({"pass": None, "marginal": "x"}, field=options)
