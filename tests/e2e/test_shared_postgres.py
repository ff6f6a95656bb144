"""Two corral processes on one PostgreSQL enforce one set of limits."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import openai
import pytest

from tests.conftest import (
    MODEL,
    LiveServer,
    _postgres_available,
    fresh_postgres_database,
)
from tests.e2e.test_accounts import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, LiveServer, str]]:
    if not _postgres_available():
        if os.environ.get("CORRAL_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL required but not reachable")
        pytest.skip("no PostgreSQL reachable")
    url, drop = fresh_postgres_database()
    env = {"CORRAL_DATABASE_URL": url, "CORRAL_SECRET_KEY": "shared-hmac-secret-for-replicas"}
    key = cli(
        tmp_path_factory.mktemp("cli"),
        "keys",
        "create",
        "--project",
        "shared",
        "--rpm",
        "4",
        env=env,
    )
    servers = [LiveServer(tmp_path_factory.mktemp(f"replica{i}"), env=env) for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1], key
    finally:
        for server in servers:
            server.stop()
        drop()


def test_rpm_is_shared_across_replicas(two_servers: tuple[LiveServer, LiveServer, str]) -> None:
    a, b, key = two_servers
    clients = [openai.OpenAI(base_url=s.url + "/v1", api_key=key, max_retries=0) for s in (a, b)]

    def ask(c: openai.OpenAI) -> None:
        c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )

    # Limits count in fixed one-minute windows: start where the six requests fit in one.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)
    for c in clients + clients:  # 2 on each replica: 4 in all, the key's limit
        ask(c)
    for c in clients:
        with pytest.raises(openai.RateLimitError):
            ask(c)
