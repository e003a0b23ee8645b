"""Hearth federating with a real Synapse.

Each test gets a fresh Hearth and shares the module's Synapse (new users and rooms
per test; a new Hearth is a new destination for Synapse). Both servers serve HTTPS on
the port in their `localhost:PORT` names, with certificates from a CA made at test
time. Users act through the Client-Server API of their own server; everything is
checked on the other server's Client-Server API, polled with a deadline. A failing
test's report ends with the tail of both servers' logs.
"""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from federation_support import Client, FedServer, MatrixError, q, wait_for

# How long something may take to cross from one server to the other.
CROSS_S = 20.0


def localpart(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def message_bodies(client: Client, room_id: str) -> list[str]:
    return [
        e["content"].get("body")
        for e in client.messages(room_id)
        if e.get("type") == "m.room.message"
    ]


def wait_message(client: Client, room_id: str, body: str, timeout: float = CROSS_S) -> dict:
    """Waits until `client` sees a message with `body` in the room; returns the event."""

    def probe():
        for e in client.messages(room_id):
            if e.get("type") == "m.room.message" and e["content"].get("body") == body:
                return e
        return None

    return wait_for(f"{client.user_id} to see message {body!r} in {room_id}", probe, timeout)


def wait_membership(client: Client, room_id: str, user_id: str, membership: str) -> dict:
    """Waits until the room's state on `client`'s server has `user_id` in `membership`."""

    def probe():
        path = (
            f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.member/{q(user_id)}"
        )
        content = client.request("GET", path)
        return content if content.get("membership") == membership else None

    return wait_for(
        f"{client.server.kind} to have {user_id} {membership} in {room_id}", probe, CROSS_S
    )


def wait_ephemeral(client: Client, room_id: str, what: str, matches) -> dict:
    """Syncs (incrementally) until a joined room's `ephemeral` events hold one for
    which `matches(event)` is true; returns that event."""
    seen: list = []

    def probe():
        resp = client.sync(timeout_ms=1000)
        room = resp.get("rooms", {}).get("join", {}).get(room_id, {})
        for event in room.get("ephemeral", {}).get("events", []):
            seen.append(event)
            if matches(event):
                return event
        return None

    try:
        return wait_for(f"{client.user_id} to see {what} in {room_id}", probe, CROSS_S,
                        interval=0.0)
    except AssertionError as e:
        raise AssertionError(f"{e}\nephemeral events seen: {seen!r}") from None


def wait_left_in_sync(client: Client, room_id: str, membership: str) -> dict:
    """Syncs (incrementally: the client must have synced before) until the room shows
    under `leave` with the user's membership event `membership` (leave or ban) in its
    timeline."""

    def probe():
        resp = client.sync(timeout_ms=1000)
        room = resp.get("rooms", {}).get("leave", {}).get(room_id)
        if not room:
            return None
        for e in room.get("timeline", {}).get("events", []):
            if (e.get("type") == "m.room.member" and e.get("state_key") == client.user_id
                    and e["content"].get("membership") == membership):
                return e
        return None

    return wait_for(f"{client.user_id} to see their {membership} from {room_id} in /sync",
                    probe, CROSS_S, interval=0.0)


def wait_invite(client: Client, room_id: str) -> dict:
    def probe():
        resp = client.sync(timeout_ms=1000)
        return resp.get("rooms", {}).get("invite", {}).get(room_id)

    return wait_for(f"{client.user_id} to be invited to {room_id}", probe, CROSS_S,
                    interval=0.0)


def public_room(creator: Client, alias_localpart: str) -> tuple[str, str]:
    room_id = creator.create_room(
        preset="public_chat",
        visibility="public",
        room_alias_name=alias_localpart,
        name=f"interop {alias_localpart}",
    )
    return room_id, f"#{alias_localpart}:{creator.server.server_name}"


def assert_messages_cross(a: Client, b: Client, room_id: str) -> None:
    """A message from each side arrives on the other."""
    from_a = f"hello from {a.server.kind} {uuid.uuid4().hex[:6]}"
    a.send_text(room_id, from_a)
    event = wait_message(b, room_id, from_a)
    assert event["sender"] == a.user_id

    from_b = f"hello from {b.server.kind} {uuid.uuid4().hex[:6]}"
    b.send_text(room_id, from_b)
    event = wait_message(a, room_id, from_b)
    assert event["sender"] == b.user_id


def joined_room(owner: Client, joiner: Client, by_alias: bool) -> str:
    """`owner` creates a public room on its server; `joiner` (on the other server)
    joins it by alias or by room ID with the owner's server as `via`. Both servers
    then agree that the joiner is in."""
    room_id, alias = public_room(owner, localpart("room"))
    if by_alias:
        joined = joiner.join(alias)
    else:
        joined = joiner.join(room_id, via=[owner.server.server_name])
    assert joined == room_id
    # The joiner's own server has the room and the membership...
    assert joiner.user_id in joiner.joined_members(room_id)
    # ...and the room's server has accepted the join.
    wait_membership(owner, room_id, joiner.user_id, "join")
    return room_id


# --- 1. Synapse user in a Hearth room -------------------------------------------------


def test_synapse_user_joins_hearth_room_by_alias(hearth_fed: FedServer, synapse: FedServer):
    owner = hearth_fed.register(localpart("hana"))
    guest = synapse.register(localpart("sam"))
    room_id = joined_room(owner, guest, by_alias=True)
    assert_messages_cross(owner, guest, room_id)


def test_synapse_user_joins_hearth_room_by_id_via(hearth_fed: FedServer, synapse: FedServer):
    owner = hearth_fed.register(localpart("hana"))
    guest = synapse.register(localpart("sam"))
    room_id = joined_room(owner, guest, by_alias=False)
    assert_messages_cross(guest, owner, room_id)
    # The room's name (state from the join) reached Synapse.
    name = guest.request("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.name")
    assert name["name"].startswith("interop ")


# --- 2. Hearth user in a Synapse room -------------------------------------------------


def test_hearth_user_joins_synapse_room_by_alias(hearth_fed: FedServer, synapse: FedServer):
    owner = synapse.register(localpart("sam"))
    guest = hearth_fed.register(localpart("hana"))
    room_id = joined_room(owner, guest, by_alias=True)
    assert_messages_cross(owner, guest, room_id)


def test_hearth_user_joins_synapse_room_by_id_via(hearth_fed: FedServer, synapse: FedServer):
    owner = synapse.register(localpart("sam"))
    guest = hearth_fed.register(localpart("hana"))
    room_id = joined_room(owner, guest, by_alias=False)
    assert_messages_cross(guest, owner, room_id)
    name = guest.request("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.name")
    assert name["name"].startswith("interop ")


# --- 3. Typing and read receipts ------------------------------------------------------


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
def test_typing_crosses_both_ways(hearth_fed: FedServer, synapse: FedServer, room_on: str):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = joined_room(h, s, by_alias=False) if room_on == "hearth" else joined_room(
        s, h, by_alias=False)
    # Each side's sync position starts after the join.
    h.sync()
    s.sync()

    def typing_of(user_id):
        return lambda e: e.get("type") == "m.typing" and user_id in e["content"]["user_ids"]

    h.typing(room_id, True)
    wait_ephemeral(s, room_id, f"{h.user_id} typing", typing_of(h.user_id))
    s.typing(room_id, True)
    wait_ephemeral(h, room_id, f"{s.user_id} typing", typing_of(s.user_id))

    # Stopping crosses too: an m.typing without the user.
    h.typing(room_id, False)
    wait_ephemeral(s, room_id, f"{h.user_id} no longer typing",
                   lambda e: e.get("type") == "m.typing"
                   and h.user_id not in e["content"]["user_ids"])


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
def test_read_receipts_cross_both_ways(hearth_fed: FedServer, synapse: FedServer,
                                       room_on: str):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = joined_room(h, s, by_alias=False) if room_on == "hearth" else joined_room(
        s, h, by_alias=False)

    # Sam's message, read by Hana on Hearth; Hana's message, read by Sam on Synapse.
    body_s = f"read me, hana {uuid.uuid4().hex[:6]}"
    s.send_text(room_id, body_s)
    event_s = wait_message(h, room_id, body_s)["event_id"]
    body_h = f"read me, sam {uuid.uuid4().hex[:6]}"
    h.send_text(room_id, body_h)
    event_h = wait_message(s, room_id, body_h)["event_id"]
    h.sync()
    s.sync()

    def receipt_of(event_id, user_id):
        return lambda e: (
            e.get("type") == "m.receipt"
            and user_id in e["content"].get(event_id, {}).get("m.read", {})
        )

    h.receipt(room_id, event_s)
    wait_ephemeral(s, room_id, f"{h.user_id}'s receipt on {event_s}",
                   receipt_of(event_s, h.user_id))
    s.receipt(room_id, event_h)
    wait_ephemeral(h, room_id, f"{s.user_id}'s receipt on {event_h}",
                   receipt_of(event_h, s.user_id))


# --- 4. Invites -----------------------------------------------------------------------


def test_hearth_invites_synapse_user(hearth_fed: FedServer, synapse: FedServer):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = h.create_room(preset="private_chat", name="hearth private")
    h.invite(room_id, s.user_id)
    invite = wait_invite(s, room_id)
    # The stripped state that came with the invite names the room and the inviter.
    stripped = invite["invite_state"]["events"]
    assert any(e["type"] == "m.room.name" and e["content"].get("name") == "hearth private"
               for e in stripped), stripped
    assert any(e["type"] == "m.room.member" and e["state_key"] == s.user_id
               and e["content"]["membership"] == "invite" and e["sender"] == h.user_id
               for e in stripped), stripped
    assert s.join(room_id) == room_id
    wait_membership(h, room_id, s.user_id, "join")
    assert_messages_cross(h, s, room_id)


def test_synapse_invites_hearth_user(hearth_fed: FedServer, synapse: FedServer):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = s.create_room(preset="private_chat", name="synapse private")
    s.invite(room_id, h.user_id)
    invite = wait_invite(h, room_id)
    stripped = invite["invite_state"]["events"]
    assert any(e["type"] == "m.room.name" and e["content"].get("name") == "synapse private"
               for e in stripped), stripped
    assert h.join(room_id) == room_id
    wait_membership(s, room_id, h.user_id, "join")
    assert_messages_cross(s, h, room_id)


def test_synapse_invite_state_names_the_inviter(hearth_fed: FedServer, synapse: FedServer):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = s.create_room(preset="private_chat", name="synapse private")
    s.invite(room_id, h.user_id)
    stripped = wait_invite(h, room_id)["invite_state"]["events"]
    summary = [(e.get("type"), e.get("state_key"), e.get("content", {}).get("membership"))
               for e in stripped]
    assert any(e["type"] == "m.room.member" and e["state_key"] == h.user_id
               and e["content"]["membership"] == "invite" and e["sender"] == s.user_id
               for e in stripped), f"no invite member event in invite_state: {summary}"


def test_hearth_user_rejects_synapse_invite(hearth_fed: FedServer, synapse: FedServer):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = s.create_room(preset="private_chat")
    s.invite(room_id, h.user_id)
    wait_invite(h, room_id)
    h.leave(room_id)  # make_leave/send_leave through Synapse
    wait_membership(s, room_id, h.user_id, "leave")


def test_synapse_user_rejects_hearth_invite(hearth_fed: FedServer, synapse: FedServer):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = h.create_room(preset="private_chat")
    h.invite(room_id, s.user_id)
    wait_invite(s, room_id)
    s.leave(room_id)  # make_leave/send_leave through Hearth
    wait_membership(h, room_id, s.user_id, "leave")


# --- Kicks, state changes, history, concurrency, presence -------------------------------


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
def test_knock_then_invite_then_join(hearth_fed: FedServer, synapse: FedServer, room_on: str):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    owner, knocker = (h, s) if room_on == "hearth" else (s, h)
    room_id = owner.create_room(
        preset="private_chat", name="knock here", room_version="11",
        initial_state=[{"type": "m.room.join_rules", "state_key": "",
                        "content": {"join_rule": "knock"}}])
    path = "/_matrix/client/v3/knock/" + q(room_id)
    answer = knocker.request("POST", path, {"reason": "hello"},
                             query={"via": [owner.server.server_name]}, timeout=60)
    assert answer["room_id"] == room_id
    # The room's server has the knock; the knocker's server shows it in sync.
    member = wait_membership(owner, room_id, knocker.user_id, "knock")
    assert member.get("reason") == "hello"

    def knock_section():
        return knocker.sync(timeout_ms=1000).get("rooms", {}).get("knock", {}).get(room_id)

    knock = wait_for(f"{knocker.user_id} to see the knock in sync", knock_section, CROSS_S)
    assert any(e["type"] == "m.room.name" and e["content"].get("name") == "knock here"
               for e in knock["knock_state"]["events"]), knock
    owner.invite(room_id, knocker.user_id)
    wait_invite(knocker, room_id)
    assert knocker.join(room_id) == room_id
    wait_membership(owner, room_id, knocker.user_id, "join")
    assert_messages_cross(owner, knocker, room_id)


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
def test_kick_reaches_the_kicked_users_server(hearth_fed: FedServer, synapse: FedServer,
                                              room_on: str):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    owner, guest = (h, s) if room_on == "hearth" else (s, h)
    room_id = joined_room(owner, guest, by_alias=False)
    guest.sync()  # an initial sync leaves out rooms already left; later ones do not
    owner.request("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/kick",
                  {"user_id": guest.user_id, "reason": "interop"})
    wait_left_in_sync(guest, room_id, "leave")


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
def test_banned_remote_user_cannot_rejoin(hearth_fed: FedServer, synapse: FedServer,
                                          room_on: str):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    owner, guest = (h, s) if room_on == "hearth" else (s, h)
    room_id = joined_room(owner, guest, by_alias=False)
    guest.sync()
    owner.request("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/ban",
                  {"user_id": guest.user_id, "reason": "interop"})
    wait_left_in_sync(guest, room_id, "ban")
    # The room's server refuses the new join (make_join or send_join), and the guest's
    # server passes the refusal on.
    with pytest.raises(MatrixError) as refused:
        guest.join(room_id, via=[owner.server.server_name])
    assert refused.value.status == 403, refused.value
    assert guest.user_id not in owner.joined_members(room_id)


def test_display_name_changes_cross(hearth_fed: FedServer, synapse: FedServer):
    """A profile change is a new member event in each room the user is in."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = joined_room(h, s, by_alias=False)
    for me, other in ((h, s), (s, h)):
        name = f"{me.server.kind} renamed {uuid.uuid4().hex[:6]}"
        me.request("PUT", f"/_matrix/client/v3/profile/{q(me.user_id)}/displayname",
                   {"displayname": name})
        wait_for(f"{other.server.kind} to show {me.user_id} as {name!r}",
                 lambda me=me, other=other, name=name:
                 other.joined_members(room_id).get(me.user_id, {}).get("display_name")
                 == name,
                 CROSS_S)


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
def test_remote_member_with_power_changes_state(hearth_fed: FedServer, synapse: FedServer,
                                                room_on: str):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    owner, guest = (h, s) if room_on == "hearth" else (s, h)
    room_id = joined_room(owner, guest, by_alias=False)
    pl_path = f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.power_levels"
    levels = owner.request("GET", pl_path)
    levels.setdefault("users", {})[guest.user_id] = 100
    owner.request("PUT", pl_path, levels)
    # The guest's server has the new power levels before the guest uses them.
    wait_for(f"{guest.server.kind} to have {guest.user_id} at power 100",
             lambda: guest.request("GET", pl_path).get("users", {}).get(guest.user_id) == 100,
             CROSS_S)
    topic = f"set from {guest.server.kind} {uuid.uuid4().hex[:6]}"
    guest.request("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.topic",
                  {"topic": topic})
    wait_for(f"{owner.server.kind} to have topic {topic!r}",
             lambda: owner.request(
                 "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.topic"
             ).get("topic") == topic,
             CROSS_S)


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
def test_history_from_before_the_join(hearth_fed: FedServer, synapse: FedServer,
                                      room_on: str):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    owner, guest = (h, s) if room_on == "hearth" else (s, h)
    room_id, _ = public_room(owner, localpart("room"))
    owner.request("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/state/"
                  "m.room.history_visibility", {"history_visibility": "shared"})
    early = f"before you came {uuid.uuid4().hex[:6]}"
    owner.send_text(room_id, early)
    assert guest.join(room_id, via=[owner.server.server_name]) == room_id
    event = wait_message(guest, room_id, early, timeout=5)
    assert event["sender"] == owner.user_id


def test_concurrent_messages_converge(hearth_fed: FedServer, synapse: FedServer):
    """Both sides send at once, so each side's events have prev_events the other has
    not seen yet and the room's DAG forks and merges; both end with all messages."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = joined_room(h, s, by_alias=False)
    tag = uuid.uuid4().hex[:6]
    sent = set()
    for i in range(5):
        for c in (h, s):
            body = f"{c.server.kind} {tag} #{i}"
            c.send_text(room_id, body)
            sent.add(body)

    def all_seen(c):
        def probe():
            got = set(message_bodies(c, room_id)) & sent
            return got == sent
        return probe

    for c in (h, s):
        try:
            wait_for(f"{c.server.kind} to have all {len(sent)} messages", all_seen(c),
                     CROSS_S)
        except AssertionError as e:
            missing = sorted(sent - set(message_bodies(c, room_id)))
            raise AssertionError(f"{e}\nmissing on {c.server.kind}: {missing}") from None
    # After the merge, a further message from each side still crosses.
    assert_messages_cross(h, s, room_id)


def test_presence_crosses_both_ways(hearth_fed: FedServer, synapse: FedServer):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    joined_room(h, s, by_alias=False)  # presence is shared with users in a room with you
    for me, other in ((h, s), (s, h)):
        status = f"{me.server.kind} status {uuid.uuid4().hex[:6]}"
        me.request("PUT", f"/_matrix/client/v3/presence/{q(me.user_id)}/status",
                   {"presence": "online", "status_msg": status})

        def probe(me=me, other=other, status=status):
            p = other.request("GET", f"/_matrix/client/v3/presence/{q(me.user_id)}/status")
            return p.get("presence") == "online" and p.get("status_msg") == status

        wait_for(f"{other.server.kind} to see {me.user_id} online with {status!r}", probe,
                 CROSS_S)


@pytest.mark.parametrize("redactor", ["hearth", "synapse"])
def test_redaction_crosses(hearth_fed: FedServer, synapse: FedServer, redactor: str):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = joined_room(h, s, by_alias=False)
    author, other = (h, s) if redactor == "hearth" else (s, h)
    body = f"regrettable {uuid.uuid4().hex[:6]}"
    event_id = author.send_text(room_id, body)
    wait_message(other, room_id, body)
    author.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{q(room_id)}/redact/{q(event_id)}/{uuid.uuid4().hex}",
        {"reason": "interop"},
    )

    def redacted():
        event = other.request("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/"
                              f"{q(event_id)}")
        return event if "body" not in event.get("content", {}) else None

    event = wait_for(f"{other.server.kind} to redact {event_id}", redacted, CROSS_S)
    assert event["content"] == {}
    assert event.get("unsigned", {}).get("redacted_because", {}).get("type") == \
        "m.room.redaction"


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
def test_leave_and_rejoin(hearth_fed: FedServer, synapse: FedServer, room_on: str):
    """The guest leaves (make_leave/send_leave through the room's server), so the
    guest's server is out of the room entirely and misses a message; then the guest
    joins again, which takes a new join through the room's server."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    owner, guest = (h, s) if room_on == "hearth" else (s, h)
    room_id = joined_room(owner, guest, by_alias=False)
    guest.leave(room_id)
    wait_membership(owner, room_id, guest.user_id, "leave")
    missed = f"while you were out {uuid.uuid4().hex[:6]}"
    owner.send_text(room_id, missed)
    assert guest.join(room_id, via=[owner.server.server_name]) == room_id
    wait_membership(owner, room_id, guest.user_id, "join")
    assert guest.user_id in guest.joined_members(room_id)
    assert_messages_cross(owner, guest, room_id)


def test_synapse_lists_hearth_public_rooms(hearth_fed: FedServer, synapse: FedServer):
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id, alias = public_room(h, localpart("listed"))

    def listed():
        resp = s.request("GET", "/_matrix/client/v3/publicRooms",
                         query={"server": hearth_fed.server_name, "limit": "20"})
        return next((r for r in resp["chunk"] if r["room_id"] == room_id), None)

    entry = wait_for(f"Synapse to list {room_id} from {hearth_fed.server_name}", listed,
                     CROSS_S)
    assert entry.get("canonical_alias") == alias
    assert entry.get("num_joined_members") == 1


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
def test_restricted_join_through_the_rooms_server(hearth_fed: FedServer, synapse: FedServer,
                                                  room_on: str):
    """A room open to members of another room: the guest's join needs the room's server
    to vouch for it (join_authorised_via_users_server, signed by that server)."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    owner, guest = (h, s) if room_on == "hearth" else (s, h)
    space = joined_room(owner, guest, by_alias=False)
    inner = owner.create_room(
        preset="private_chat",
        name="members of the space only",
        initial_state=[{
            "type": "m.room.join_rules",
            "state_key": "",
            "content": {
                "join_rule": "restricted",
                "allow": [{"type": "m.room_membership", "room_id": space}],
            },
        }],
    )
    assert guest.join(inner, via=[owner.server.server_name]) == inner
    member = wait_membership(owner, inner, guest.user_id, "join")
    assert member.get("join_authorised_via_users_server") == owner.user_id
    assert_messages_cross(guest, owner, inner)


def test_restricted_join_refused_to_a_non_member(hearth_fed: FedServer, synapse: FedServer):
    """Synapse refuses a Hearth user who is not in the allowed room; Hearth's /join
    reports the refusal and the user is not in the room on either side."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    space = s.create_room(preset="private_chat")
    inner = s.create_room(
        preset="private_chat",
        initial_state=[{
            "type": "m.room.join_rules",
            "state_key": "",
            "content": {
                "join_rule": "restricted",
                "allow": [{"type": "m.room_membership", "room_id": space}],
            },
        }],
    )
    with pytest.raises(MatrixError) as refused:
        h.join(inner, via=[synapse.server_name])
    assert refused.value.status == 403, refused.value
    assert h.user_id not in s.joined_members(inner)


def test_unusual_content_keeps_its_signatures(hearth_fed: FedServer, synapse: FedServer):
    """Canonical JSON, hashes and signatures agree on both sides for content with
    non-ASCII (including astral and escaped) characters, key order by code point, nested
    objects, empty values and large integers: the event crosses both ways unchanged."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = joined_room(h, s, by_alias=False)
    for sender, receiver in ((h, s), (s, h)):
        tag = uuid.uuid4().hex[:6]
        content = {
            "msgtype": "m.text",
            "body": f"odd {tag} h\u00e9llo \U0001F30D \u2028 \"quoted\" \\\\ \t tab \u0000 nul",
            "format": "org.matrix.custom.html",
            "formatted_body": "<b>\u00e9</b> &amp; <i>\U0001F600</i>",
            "org.example.nested": {
                "\uffff": 1, "\U0001F600": 2, "\u00e9": 3, "a": 4, "A": 5, "": 6,
                "big": 9007199254740991, "neg": -9007199254740991,
                "empty": {}, "list": [], "null": None, "bools": [True, False],
            },
        }
        event_id = sender.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/{uuid.uuid4().hex}",
            content,
        )["event_id"]
        got = wait_for(
            f"{receiver.server.kind} to receive {event_id}",
            lambda: receiver.request(
                "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/{q(event_id)}"),
            CROSS_S,
        )
        assert got["content"] == content
        assert got["sender"] == sender.user_id


@pytest.mark.parametrize("room_on", ["hearth", "synapse"])
@pytest.mark.parametrize("version", ["10", "11"])
def test_older_room_versions(hearth_fed: FedServer, synapse: FedServer, room_on: str,
                             version: str):
    """The default is 12 on both servers; 10 and 11 (IDs with a server name, `redacts`
    at the top level in 10) work across too."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    owner, guest = (h, s) if room_on == "hearth" else (s, h)
    room_id = owner.create_room(preset="public_chat", room_version=version)
    assert guest.join(room_id, via=[owner.server.server_name]) == room_id
    wait_membership(owner, room_id, guest.user_id, "join")
    create = guest.request("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/"
                           "m.room.create")
    assert create.get("room_version") == version
    assert_messages_cross(owner, guest, room_id)
    # A redaction in this room version crosses too.
    body = f"gone soon {uuid.uuid4().hex[:6]}"
    event_id = guest.send_text(room_id, body)
    wait_message(owner, room_id, body)
    guest.request("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/redact/{q(event_id)}/"
                  f"{uuid.uuid4().hex}", {})
    wait_for(f"{owner.server.kind} to redact {event_id}",
             lambda: "body" not in owner.request(
                 "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/{q(event_id)}"
             ).get("content", {"body": None}), CROSS_S)


def test_hearth_catches_up_after_a_short_outage(hearth_fed: FedServer, synapse: FedServer):
    """Synapse sends two messages while Hearth is down; Synapse keeps them queued and
    retries, and Hearth gets both once it is back."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = joined_room(s, h, by_alias=False)
    assert_messages_cross(s, h, room_id)
    hearth_fed.down()
    tag = uuid.uuid4().hex[:6]
    missed = [f"while hearth was down {tag} #{i}" for i in range(2)]
    s.send_text(room_id, missed[0])
    wait_for("Synapse to fail sending to the stopped Hearth",
             lambda: f"TX [{hearth_fed.server_name}] Failed to send transaction"
             in synapse.log(), CROSS_S)
    s.send_text(room_id, missed[1])
    hearth_fed.restart()
    # Hearth's own message tells Synapse it is back (and crosses on its own).
    back = f"hearth is back {tag}"
    h.send_text(room_id, back)
    wait_message(s, room_id, back)
    for body in missed:
        wait_message(h, room_id, body)
    assert_messages_cross(s, h, room_id)


def test_hearth_catches_up_after_a_long_outage(hearth_fed: FedServer,
                                               synapse_slow_retry: FedServer):
    synapse = synapse_slow_retry
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    room_id = joined_room(s, h, by_alias=False)
    assert_messages_cross(s, h, room_id)
    hearth_fed.down()
    tag = uuid.uuid4().hex[:6]
    missed = [f"while hearth was down {tag} #{i}" for i in range(2)]
    s.send_text(room_id, missed[0])
    wait_for("Synapse to fail sending to the stopped Hearth",
             lambda: f"TX [{hearth_fed.server_name}] Failed to send transaction"
             in synapse.log(), CROSS_S)
    # Now backing off for two hours, Synapse no longer queues events for Hearth; it
    # only notes that Hearth needs catching up.
    s.send_text(room_id, missed[1])
    hearth_fed.restart()
    # A request from Hearth makes Synapse try again at once.
    back = f"hearth is back {tag}"
    h.send_text(room_id, back)
    wait_message(s, room_id, back)
    # The room goes on: a new message from Synapse reaches Hearth...
    after = f"after the outage {tag}"
    s.send_text(room_id, after)
    wait_message(h, room_id, after, timeout=5)
    # ...and so does what was sent while Hearth was down.
    for body in missed:
        wait_message(h, room_id, body, timeout=5)


# --- media ----------------------------------------------------------------------------


def upload_media(client: Client, data: bytes, content_type: str, filename: str) -> str:
    """Uploads `data` to the client's server; returns the mxc:// URI."""
    url = (f"{client.server.base_url}/_matrix/media/v3/upload?"
           + urllib.parse.urlencode({"filename": filename}))
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", content_type)
    req.add_header("Authorization", f"Bearer {client.access_token}")
    with urllib.request.urlopen(req, timeout=30, context=client.server.ca.ssl_context()) as r:
        return json.loads(r.read())["content_uri"]


def get_media(client: Client, kind: str, mxc: str, query: dict | None = None
              ) -> tuple[int, dict, bytes]:
    """GET /_matrix/client/v1/media/{kind}/{server}/{id} on the client's own server;
    returns (status, lowercase headers, body)."""
    server_name, media_id = mxc.removeprefix("mxc://").split("/", 1)
    url = (f"{client.server.base_url}/_matrix/client/v1/media/{kind}/"
           f"{q(server_name)}/{q(media_id)}")
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url)
    req.add_header("Authorization", f"Bearer {client.access_token}")
    try:
        with urllib.request.urlopen(req, timeout=60,
                                    context=client.server.ca.ssl_context()) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def disposition_filename(value: str) -> str | None:
    """The file name of a Content-Disposition header (`filename*` or `filename`)."""
    for param in value.split(";")[1:]:
        name, _, raw = param.strip().partition("=")
        if name.lower() == "filename*":
            return urllib.parse.unquote(raw.split("''", 1)[1])
    for param in value.split(";")[1:]:
        name, _, raw = param.strip().partition("=")
        if name.lower() == "filename":
            return raw.strip('"')
    return None


def png_bytes(width: int, height: int) -> bytes:
    from PIL import Image  # a Synapse dependency

    image = Image.new("RGB", (width, height))
    image.putdata([((x * 7) % 256, (y * 3) % 256, 120)
                   for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size


@pytest.mark.parametrize("uploader", ["hearth", "synapse"])
def test_media_downloads_across_servers(hearth_fed: FedServer, synapse: FedServer,
                                        uploader: str):
    """A user uploads a file and an image on one server; a user of the other server
    downloads the file (bytes, type and name as uploaded) and a thumbnail of the image
    through their own server, which fetches them over federation."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    up, down = (h, s) if uploader == "hearth" else (s, h)
    data = os.urandom(300_000)
    mxc = upload_media(up, data, "application/pdf", "Report 2026.pdf")
    assert mxc.startswith(f"mxc://{up.server.server_name}/")

    status, headers, body = get_media(down, "download", mxc)
    assert status == 200, (status, body[:500])
    assert body == data
    assert headers["content-type"] == "application/pdf"
    assert disposition_filename(headers.get("content-disposition", "")) == "Report 2026.pdf", \
        headers

    picture = upload_media(up, png_bytes(400, 300), "image/png", "picture.png")
    status, headers, body = get_media(
        down, "thumbnail", picture, {"width": "64", "height": "64", "method": "scale"})
    assert status == 200, (status, body[:500])
    assert headers["content-type"] in ("image/png", "image/jpeg"), headers
    width, height = image_size(body)
    # Hearth and Synapse both pick a listed size at least as large as asked, never the
    # full image here.
    assert 64 <= max(width, height) < 400, (width, height)

    # Through the v1.11 federation endpoints, not the legacy fallback: Synapse logs the
    # request it answered (from Hearth) or made (to Hearth), with its status.
    # (Both make thumbnails of remote images from the original they fetched.)
    lines = synapse.log().splitlines()
    for media in (mxc, picture):
        path = "/_matrix/federation/v1/media/download/" + media.rsplit("/", 1)[1]
        fetched = [line for line in lines if path in line]
        assert any("200" in line for line in fetched), fetched

    # allow_remote=false: from the cache, which both now have; never asking the remote.
    status, _, body = get_media(down, "download", mxc, {"allow_remote": "false"})
    assert (status, body) == (200, data), (status, body[:500])
    never_fetched = f"mxc://{up.server.server_name}/neverFetched{uuid.uuid4().hex[:6]}"
    status, _, body = get_media(down, "download", never_fetched, {"allow_remote": "false"})
    assert status == 404, (status, body[:500])


def test_hearth_serves_synapse_media_from_its_cache_once_fetched(hearth_fed: FedServer,
                                                                 synapse: FedServer):
    """Media of Synapse that Hearth fetched once is served again without Synapse, and an
    unknown media ID of Synapse's is 404 on Hearth."""
    h = hearth_fed.register(localpart("hana"))
    s = synapse.register(localpart("sam"))
    data = b"cached on hearth " + os.urandom(1000)
    mxc = upload_media(s, data, "text/plain", "note.txt")
    status, _, body = get_media(h, "download", mxc)
    assert (status, body) == (200, data)
    # A restart of Hearth keeps the cache.
    hearth_fed.restart()
    status, _, body = get_media(h, "download", mxc)
    assert (status, body) == (200, data)
    unknown = f"mxc://{synapse.server_name}/noSuchMedia{uuid.uuid4().hex[:6]}"
    status, _, body = get_media(h, "download", unknown)
    assert status == 404, (status, body[:500])
    assert json.loads(body)["errcode"] == "M_NOT_FOUND"
