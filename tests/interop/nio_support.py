"""What every matrix-nio interop test needs: a client that fails rather than hangs,
registered on the hearth under test."""

from nio import AsyncClient, AsyncClientConfig, RegisterResponse

PASSWORD = "correct horse battery staple"


def config() -> AsyncClientConfig:
    # Bounded retries: a broken server fails the test instead of stalling it.
    return AsyncClientConfig(
        max_timeouts=2,
        request_timeout=30,
        max_limit_exceeded=0,
        encryption_enabled=False,
        store_sync_tokens=False,
    )


async def registered(hearth, localpart: str, device_name: str = "nio test") -> AsyncClient:
    """A new account, with nio holding its session."""
    client = AsyncClient(hearth.base_url, localpart, config=config())
    resp = await client.register(localpart, PASSWORD, device_name=device_name)
    assert isinstance(resp, RegisterResponse), f"register failed: {resp!r}"
    assert client.access_token, "nio did not adopt the registration's session"
    return client
