"""Interop: matrix-nio (a third-party client library) against a real hearth.

Covers the account lifecycle Hearth implements today: register (UIA with the
m.login.dummy stage), password login, whoami, logout, and the errors a client
sees for a revoked token and for a wrong password. Only nio's public API is
used to talk to the server, so these tests check what a real client sees.
"""

import asyncio

from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    LoginResponse,
    LogoutResponse,
    RegisterResponse,
    WhoamiResponse,
)

PASSWORD = "correct horse battery staple"


def _client(hearth, user: str = "") -> AsyncClient:
    # Bound nio's retry loops: by default it retries connection errors and
    # timeouts forever, which would hang the test run instead of failing it.
    config = AsyncClientConfig(
        max_timeouts=2,
        request_timeout=15,
        max_limit_exceeded=0,
        encryption_enabled=False,
        store_sync_tokens=False,
    )
    return AsyncClient(hearth.base_url, user, config=config)


def _http_status(resp) -> int | None:
    transport = getattr(resp, "transport_response", None)
    return None if transport is None else transport.status


async def _register(hearth, localpart: str) -> RegisterResponse:
    client = _client(hearth)
    try:
        resp = await client.register(localpart, PASSWORD, device_name="nio register")
    finally:
        await client.close()
    assert isinstance(resp, RegisterResponse), f"register failed: {resp!r}"
    return resp


def test_register_login_whoami_logout(hearth):
    async def scenario():
        localpart = "niouser"
        expected_user_id = f"@{localpart}:{hearth.server_name}"

        # 1. Register with nio's register(), which completes UIA with
        #    m.login.dummy.
        reg = await _register(hearth, localpart)
        assert reg.user_id == expected_user_id
        assert reg.access_token, "register returned an empty access_token"
        assert reg.device_id, "register returned an empty device_id"

        # 2. Log in with the password on a separate client.
        client = _client(hearth, localpart)
        try:
            login = await client.login(PASSWORD, device_name="nio login")
            assert isinstance(login, LoginResponse), f"login failed: {login!r}"
            assert login.user_id == expected_user_id
            assert login.device_id, "login returned an empty device_id"
            assert login.access_token, "login returned an empty access_token"
            # A password login creates a new device and a new token.
            assert login.device_id != reg.device_id
            assert login.access_token != reg.access_token
            # nio adopted the session.
            assert client.access_token == login.access_token
            assert client.device_id == login.device_id

            # 3. whoami with the login's token.
            who = await client.whoami()
            assert isinstance(who, WhoamiResponse), f"whoami failed: {who!r}"
            assert who.user_id == expected_user_id
            assert who.device_id == login.device_id

            # 4. Log out.
            out = await client.logout()
            assert isinstance(out, LogoutResponse), f"logout failed: {out!r}"
            assert client.access_token == "", "nio did not drop the token"

            # 5. The logged-out token no longer works.
            client.access_token = login.access_token
            after = await client.whoami()
            assert isinstance(after, ErrorResponse), (
                f"whoami with a logged-out token succeeded: {after!r}"
            )
            assert after.status_code == "M_UNKNOWN_TOKEN", repr(after)
            assert _http_status(after) == 401, repr(after)
        finally:
            await client.close()

        # 6. Logging out one device left the registration's device alone.
        reg_client = _client(hearth)
        reg_client.restore_login(reg.user_id, reg.device_id, reg.access_token)
        try:
            who = await reg_client.whoami()
            assert isinstance(who, WhoamiResponse), (
                f"registration token stopped working after another device "
                f"logged out: {who!r}"
            )
            assert who.user_id == expected_user_id
            assert who.device_id == reg.device_id
        finally:
            await reg_client.close()

    asyncio.run(scenario())


def test_login_wrong_password_is_forbidden(hearth):
    async def scenario():
        localpart = "niowrongpw"
        await _register(hearth, localpart)

        client = _client(hearth, localpart)
        try:
            resp = await client.login("not the password", device_name="nio")
            assert isinstance(resp, ErrorResponse), (
                f"login with a wrong password succeeded: {resp!r}"
            )
            assert resp.status_code == "M_FORBIDDEN", repr(resp)
            assert _http_status(resp) == 403, repr(resp)
            assert not client.access_token, "nio stored a token after a failed login"

            # The right password still works afterwards.
            ok = await client.login(PASSWORD, device_name="nio")
            assert isinstance(ok, LoginResponse), f"login failed: {ok!r}"
            assert ok.user_id == f"@{localpart}:{hearth.server_name}"
        finally:
            await client.close()

    asyncio.run(scenario())
