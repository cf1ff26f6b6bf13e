"""schemathesis against the service's own OpenAPI document, through a real uvicorn server.

Every documented operation is called with generated inputs (valid and invalid ones), on SQLite
and on PostgreSQL, with a valid write token and with none. Each answer must be no server error,
carry a documented status, content type and headers, and match its documented schema.
``SCHEMATHESIS_EXAMPLES`` sets the examples per operation and mode (default 12).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from conftest import fresh_postgres_database
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from live_server import LiveServer
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kayenta_py.service.settings import Settings

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
WRITER = "schemathesis-writer"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _serve(url: str, tmp: Path) -> Iterator[LiveServer]:
    settings = Settings(
        database_url=url,
        data_dir=tmp,
        api_tokens=f"write:{WRITER},read:schemathesis-reader",
        default_source="demo",
    )
    with LiveServer(settings) as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server on a fresh SQLite file, then on a fresh PostgreSQL database."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    if request.param == "sqlite":
        yield from _serve(f"sqlite:///{tmp}/k.db", tmp)
    else:
        for url in fresh_postgres_database():
            yield from _serve(url, tmp)


@pytest.mark.parametrize("token", ["write-token", "no-token"])
def test_every_operation_conforms_to_the_openapi_document(server: LiveServer, token: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {WRITER}"} if token == "write-token" else {}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema raises here
        operations += 1
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @given(case=strategy)
        @settings(
            max_examples=2 * EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)

        try:
            call()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failures, not only the first
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 30, f"only {operations} operations in the OpenAPI document"
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
