"""End-to-end encryption between Hearth and a real Synapse: key queries and one-time
key claims forwarded to the user's server (each side serving `/user/keys/query` and
`/user/keys/claim` to the other), to-device messages both ways (`m.direct_to_device`),
and device-list changes reaching the other server's `/sync` (`m.device_list_update`,
with Synapse resyncing through Hearth's `/user/devices` as it sees fit).
"""

from __future__ import annotations

import uuid

import nacl.signing
from signedjson.key import encode_verify_key_base64
from signedjson.sign import sign_json

from federation_support import Client, FedServer, q, wait_for

CROSS_S = 20.0


def localpart(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Device:
    """A client device with a real Ed25519 key that signs what it uploads."""

    def __init__(self, client: Client):
        self.client = client
        self.device_id = client.request("GET", "/_matrix/client/v3/account/whoami")["device_id"]
        self.key = nacl.signing.SigningKey.generate()
        self.key.version = self.device_id
        self.key.alg = "ed25519"

    @property
    def public(self) -> str:
        return encode_verify_key_base64(self.key.verify_key)

    def sign(self, value: dict) -> dict:
        return sign_json(value, self.client.user_id, self.key)

    def upload(self, otks: int = 0, prefix: str = "A") -> dict:
        keys = self.sign({
            "user_id": self.client.user_id,
            "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                f"curve25519:{self.device_id}": f"curve-{uuid.uuid4().hex}",
                f"ed25519:{self.device_id}": self.public,
            },
        })
        one_time = {
            f"signed_curve25519:{prefix}{i}": self.sign({"key": f"otk-{prefix}{i}"})
            for i in range(otks)
        }
        return self.client.request("POST", "/_matrix/client/v3/keys/upload",
                                   {"device_keys": keys, "one_time_keys": one_time})


def shared_room(hearth: Client, synapse: Client) -> str:
    room_id = hearth.create_room(preset="public_chat")
    assert synapse.join(room_id, via=[hearth.server.server_name]) == room_id

    def joined():
        content = hearth.request(
            "GET",
            f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.member/{q(synapse.user_id)}")
        return content.get("membership") == "join"

    wait_for("the Synapse user to be joined on Hearth", joined, CROSS_S)
    return room_id


def query_keys(client: Client, user_id: str) -> dict:
    return client.request("POST", "/_matrix/client/v3/keys/query",
                          {"device_keys": {user_id: []}})


def claim(client: Client, user_id: str, device_id: str) -> dict:
    body = client.request("POST", "/_matrix/client/v3/keys/claim",
                          {"one_time_keys": {user_id: {device_id: "signed_curve25519"}}})
    return body.get("one_time_keys", {}).get(user_id, {}).get(device_id, {})


def sync_until(client: Client, what: str, probe) -> object:
    def step():
        return probe(client.sync(timeout_ms=1000))

    return wait_for(f"{client.user_id} to see {what}", step, CROSS_S, interval=0.0)


def to_device_texts(resp: dict) -> list[str] | None:
    texts = [e["content"].get("text") for e in resp.get("to_device", {}).get("events", [])
             if e.get("type") == "m.test"]
    return texts or None


def test_keys_claims_to_device_and_device_lists_cross_with_synapse(
        hearth_fed: FedServer, synapse: FedServer):
    alice = hearth_fed.register(localpart("alice"))
    bob = synapse.register(localpart("bob"))
    shared_room(alice, bob)
    alice_dev = Device(alice)
    bob_dev = Device(bob)
    alice_dev.upload(otks=2)
    bob_dev.upload(otks=2)

    # Each server's user gets the other's keys through their own server.
    body = query_keys(bob, alice.user_id)
    assert body["device_keys"][alice.user_id][alice_dev.device_id]["keys"][
        f"ed25519:{alice_dev.device_id}"] == alice_dev.public, body
    body = query_keys(alice, bob.user_id)
    assert body["device_keys"][bob.user_id][bob_dev.device_id]["keys"][
        f"ed25519:{bob_dev.device_id}"] == bob_dev.public, body
    assert body["failures"] == {}

    # One-time keys claimed across, each once.
    claimed = [list(claim(bob, alice.user_id, alice_dev.device_id)) for _ in range(2)]
    assert sorted(k for ks in claimed for k in ks) == [
        "signed_curve25519:A0", "signed_curve25519:A1"], claimed
    claimed = [list(claim(alice, bob.user_id, bob_dev.device_id)) for _ in range(2)]
    assert sorted(k for ks in claimed for k in ks) == [
        "signed_curve25519:A0", "signed_curve25519:A1"], claimed

    # To-device messages both ways.
    alice.sync()
    bob.sync()
    alice.request("PUT", f"/_matrix/client/v3/sendToDevice/m.test/{uuid.uuid4().hex}",
                  {"messages": {bob.user_id: {bob_dev.device_id: {"text": "from hearth"}}}})
    assert sync_until(bob, "Alice's to-device message", to_device_texts) == ["from hearth"]
    bob.request("PUT", f"/_matrix/client/v3/sendToDevice/m.test/{uuid.uuid4().hex}",
                {"messages": {alice.user_id: {"*": {"text": "from synapse"}}}})
    assert sync_until(alice, "Bob's to-device message", to_device_texts) == ["from synapse"]

    # New keys on one server show as a device-list change on the other.
    alice_dev.upload()
    sync_until(bob, "Alice's device-list change",
               lambda r: alice.user_id in r.get("device_lists", {}).get("changed", []) or None)
    bob_dev.upload()
    sync_until(alice, "Bob's device-list change",
               lambda r: bob.user_id in r.get("device_lists", {}).get("changed", []) or None)
    body = query_keys(bob, alice.user_id)
    assert alice_dev.device_id in body["device_keys"][alice.user_id], body
