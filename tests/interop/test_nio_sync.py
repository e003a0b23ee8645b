"""Interop: matrix-nio's own sync loop against a real hearth.

Bob's nio client follows /sync the way nio applications do (its next_batch,
its room bookkeeping, its event callbacks) and must see Alice's invite,
message, typing and presence as they happen.
"""

import asyncio
import uuid

from nio_support import registered
from nio import (
    AsyncClient,
    InviteMemberEvent,
    JoinResponse,
    PresenceEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    TypingNoticeEvent,
)


async def _sync_until(client: AsyncClient, seen, what: str, rounds: int = 10):
    """Long-polls with nio's own token until `seen()` holds; each round is
    answered by a change, not a timeout, when hearth wakes syncs properly."""
    for _ in range(rounds):
        resp = await client.sync(timeout=10_000)
        assert isinstance(resp, SyncResponse), f"sync failed: {resp!r}"
        if seen():
            return
    raise AssertionError(f"bob's nio client never saw {what}")


def test_nio_sync_sees_invite_message_typing_and_presence(hearth):
    async def scenario():
        alice = await registered(hearth, "syncalice", "nio sync")
        bob = await registered(hearth, "syncbob", "nio sync")
        got = {"invite": [], "message": [], "typing": [], "presence": []}
        bob.add_event_callback(
            lambda room, event: got["invite"].append(room.room_id), InviteMemberEvent
        )
        bob.add_event_callback(
            lambda room, event: got["message"].append((event.sender, event.body)),
            RoomMessageText,
        )
        bob.add_ephemeral_callback(
            lambda room, event: got["typing"].append(list(event.users)),
            TypingNoticeEvent,
        )
        bob.add_presence_callback(
            lambda event: got["presence"].append(
                (event.user_id, event.presence, event.status_msg)
            ),
            PresenceEvent,
        )
        try:
            first = await bob.sync(timeout=0, full_state=True)
            assert isinstance(first, SyncResponse), repr(first)

            created = await alice.room_create(name="sync room", invite=[bob.user_id])
            assert isinstance(created, RoomCreateResponse), repr(created)
            room_id = created.room_id
            await _sync_until(bob, lambda: room_id in got["invite"], "the invite")
            assert room_id in bob.invited_rooms

            joined = await bob.join(room_id)
            assert isinstance(joined, JoinResponse), repr(joined)
            await _sync_until(bob, lambda: room_id in bob.rooms, "the joined room")

            sent = await alice.room_send(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": "hello through sync"},
                tx_id=str(uuid.uuid4()),
            )
            assert isinstance(sent, RoomSendResponse), repr(sent)
            await _sync_until(
                bob,
                lambda: (alice.user_id, "hello through sync") in got["message"],
                "alice's message",
            )

            await alice.room_typing(room_id, typing_state=True, timeout=20_000)
            await _sync_until(
                bob, lambda: [alice.user_id] in got["typing"], "alice typing"
            )
            assert alice.user_id in bob.rooms[room_id].typing_users

            await alice.set_presence("online", "writing tests")
            await _sync_until(
                bob,
                lambda: (alice.user_id, "online", "writing tests") in got["presence"],
                "alice's presence",
            )
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())
