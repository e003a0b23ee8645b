"""Interop: rooms through matrix-nio against a real hearth.

Room creation, invites, joins, sends and event lookups, plus a direct-message
room, using only nio's public API. Hearth has no /sync yet, so nio's own room
bookkeeping is not exercised; each step is checked through the responses.
"""

import asyncio
import uuid

from nio_support import registered
from nio import (
    AsyncClient,
    JoinResponse,
    JoinedMembersResponse,
    JoinedRoomsResponse,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomInviteResponse,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
)


async def _send_text(client: AsyncClient, room_id: str, body: str) -> str:
    resp = await client.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        tx_id=str(uuid.uuid4()),
    )
    assert isinstance(resp, RoomSendResponse), f"room_send failed: {resp!r}"
    assert resp.event_id.startswith("$"), repr(resp)
    return resp.event_id


async def _joined_rooms(client: AsyncClient) -> list[str]:
    resp = await client.joined_rooms()
    assert isinstance(resp, JoinedRoomsResponse), f"joined_rooms failed: {resp!r}"
    return resp.rooms


def test_create_invite_join_send_and_fetch(hearth):
    async def scenario():
        alice = await registered(hearth, "nioalice", "nio rooms")
        bob = await registered(hearth, "niobob", "nio rooms")
        try:
            created = await alice.room_create(name="nio room", topic="interop")
            assert isinstance(created, RoomCreateResponse), repr(created)
            room_id = created.room_id
            assert room_id.startswith("!"), room_id
            assert room_id in await _joined_rooms(alice)

            name = await alice.room_get_state_event(room_id, "m.room.name")
            assert isinstance(name, RoomGetStateEventResponse), repr(name)
            assert name.content == {"name": "nio room"}

            invited = await alice.room_invite(room_id, bob.user_id)
            assert isinstance(invited, RoomInviteResponse), repr(invited)
            assert room_id not in await _joined_rooms(bob)

            joined = await bob.join(room_id)
            assert isinstance(joined, JoinResponse), repr(joined)
            assert joined.room_id == room_id
            assert room_id in await _joined_rooms(bob)

            members = await alice.joined_members(room_id)
            assert isinstance(members, JoinedMembersResponse), repr(members)
            assert sorted(m.user_id for m in members.members) == sorted(
                [alice.user_id, bob.user_id]
            )

            sent = []
            for i in range(3):
                for client in (alice, bob):
                    body = f"from {client.user_id} {i}"
                    event_id = await _send_text(client, room_id, body)
                    sent.append((client.user_id, body, event_id))

            # Each side reads every message, its own and the other's.
            for reader in (alice, bob):
                for sender, body, event_id in sent:
                    got = await reader.room_get_event(room_id, event_id)
                    assert isinstance(got, RoomGetEventResponse), repr(got)
                    event = got.event
                    assert isinstance(event, RoomMessageText), repr(event)
                    assert event.event_id == event_id
                    assert event.sender == sender
                    assert event.body == body
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())


def test_direct_message_room(hearth):
    async def scenario():
        alice = await registered(hearth, "niodmalice", "nio rooms")
        bob = await registered(hearth, "niodmbob", "nio rooms")
        try:
            created = await alice.room_create(
                is_direct=True,
                invite=[bob.user_id],
                preset=RoomPreset.trusted_private_chat,
            )
            assert isinstance(created, RoomCreateResponse), repr(created)
            room_id = created.room_id

            invite = await alice.room_get_state_event(
                room_id, "m.room.member", bob.user_id
            )
            assert isinstance(invite, RoomGetStateEventResponse), repr(invite)
            assert invite.content.get("membership") == "invite", invite.content
            assert invite.content.get("is_direct") is True, invite.content

            joined = await bob.join(room_id)
            assert isinstance(joined, JoinResponse), repr(joined)
            assert room_id in await _joined_rooms(bob)

            # trusted_private_chat makes bob as powerful as alice: he may rename the DM.
            renamed = await bob.room_put_state(room_id, "m.room.name", {"name": "ours"})
            assert hasattr(renamed, "event_id"), repr(renamed)

            event_id = await _send_text(bob, room_id, "hello alice")
            got = await alice.room_get_event(room_id, event_id)
            assert isinstance(got, RoomGetEventResponse), repr(got)
            assert got.event.body == "hello alice"
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())
