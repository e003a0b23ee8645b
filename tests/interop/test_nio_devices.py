"""Interop: matrix-nio lists the devices of a user whose device has no name and has not
been seen yet. nio refuses a device list with `display_name`, `last_seen_ip` or
`last_seen_ts` missing, so Hearth gives them as `null`, as Synapse does."""

import asyncio
import json
import urllib.request

from nio import AsyncClient, DevicesResponse

from nio_support import PASSWORD, config


def register_unnamed(base_url: str, localpart: str) -> dict:
    body = json.dumps({
        "username": localpart,
        "password": PASSWORD,
        "auth": {"type": "m.login.dummy"},
    }).encode()
    request = urllib.request.Request(
        f"{base_url}/_matrix/client/v3/register", data=body,
        headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_nio_lists_an_unnamed_device(hearth):
    async def scenario():
        session = register_unnamed(hearth.base_url, "niodevices")
        client = AsyncClient(hearth.base_url, session["user_id"], config=config())
        client.restore_login(session["user_id"], session["device_id"], session["access_token"])
        try:
            resp = await client.devices()
            assert isinstance(resp, DevicesResponse), repr(resp)
            assert [d.id for d in resp.devices] == [session["device_id"]]
            assert resp.devices[0].display_name is None
        finally:
            await client.close()

    asyncio.run(scenario())
