"""Interop: profiles through matrix-nio against a real hearth.

Sets a display name and an avatar URL with nio and reads them back, as the user and
as someone else. The avatar is only an `mxc://` URI here: uploading the image is the
media repository's business.
"""

import asyncio

from nio_support import registered
from nio import (
    ProfileGetAvatarResponse,
    ProfileGetDisplayNameResponse,
    ProfileGetResponse,
    ProfileSetAvatarError,
    ProfileSetAvatarResponse,
    ProfileSetDisplayNameResponse,
)


def test_set_and_read_back_display_name_and_avatar(hearth):
    async def scenario():
        alice = await registered(hearth, "nioprofilealice", "nio profile")
        bob = await registered(hearth, "nioprofilebob", "nio profile")
        try:
            # A new account is named after its localpart.
            fresh = await alice.get_profile()
            assert isinstance(fresh, ProfileGetResponse), repr(fresh)
            assert fresh.displayname == "nioprofilealice", repr(fresh)
            assert fresh.avatar_url is None, repr(fresh)

            avatar = f"mxc://{hearth.server_name}/NioAvatar01"
            resp = await alice.set_displayname("Alice via nio")
            assert isinstance(resp, ProfileSetDisplayNameResponse), repr(resp)
            resp = await alice.set_avatar(avatar)
            assert isinstance(resp, ProfileSetAvatarResponse), repr(resp)

            own = await alice.get_profile()
            assert isinstance(own, ProfileGetResponse), repr(own)
            assert (own.displayname, own.avatar_url) == ("Alice via nio", avatar)

            seen = await bob.get_profile(alice.user_id)
            assert isinstance(seen, ProfileGetResponse), repr(seen)
            assert (seen.displayname, seen.avatar_url) == ("Alice via nio", avatar)
            name = await bob.get_displayname(alice.user_id)
            assert isinstance(name, ProfileGetDisplayNameResponse), repr(name)
            assert name.displayname == "Alice via nio"
            picture = await bob.get_avatar(alice.user_id)
            assert isinstance(picture, ProfileGetAvatarResponse), repr(picture)
            assert picture.avatar_url == avatar

            # Only mxc:// URIs are avatars; the refusal leaves the old one in place.
            refused = await alice.set_avatar("https://example.org/alice.png")
            assert isinstance(refused, ProfileSetAvatarError), repr(refused)
            assert refused.status_code == "M_INVALID_PARAM", repr(refused)
            again = await bob.get_profile(alice.user_id)
            assert again.avatar_url == avatar, repr(again)
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())
