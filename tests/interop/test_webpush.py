"""Web Push pushers (MSC4174, `kind: "webpush"`) delivered by Hearth itself.

A test push service (an HTTPS server in this process, with a certificate from the test
CA that Hearth trusts, on loopback that Hearth is allowed to reach) stands in for a
browser vendor's. What it receives is checked with implementations that are not
Hearth's: the body is decrypted with `http_ece` (RFC 8188/8291, `aes128gcm`) using the
subscription's private key and authentication secret made here, and the VAPID token
(RFC 8292) is verified with `py_vapid` against the key `/capabilities` advertises.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import py_vapid
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from federation_support import Client, FedServer, TestCa, free_port, q, wait_for

APP_ID = "org.example.hearth.web"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Subscription:
    """A browser's side of a push subscription: its P-256 key pair and auth secret."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.p256dh = b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def pusher(self) -> dict:
        return {
            "kind": "webpush",
            "app_id": APP_ID,
            "pushkey": self.p256dh,
            "app_display_name": "Hearth",
            "device_display_name": "Browser",
            "lang": "en",
            "data": {
                "url": self.endpoint,
                "auth": b64url(self.auth),
                "default_payload": {"source": "hearth-test"},
            },
        }

    def decrypt(self, body: bytes) -> dict:
        plain = http_ece.decrypt(
            body,
            private_key=self.private_key,
            auth_secret=self.auth,
            version="aes128gcm",
        )
        return json.loads(plain)


class PushService:
    """An HTTPS push service: records every POST and answers 201, or what is scripted."""

    def __init__(self, ca: TestCa, directory: str, port: int = 0):
        self.received: list[dict] = []
        self.answers: list[int] = []
        self.lock = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with outer.lock:
                    status = outer.answers.pop(0) if outer.answers else 201
                    outer.received.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    outer.lock.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        cert, key = ca.issue(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/push/{name}"

    def wait_for(self, n: int, timeout: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.received)} of {n} pushes arrived"
                self.lock.wait(left)
            return list(self.received)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def raw(server: FedServer, client: Client, method: str, path: str, body=None):
    """(status, JSON body) of a request, whatever the status."""
    req = urllib.request.Request(
        server.base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {client.access_token}",
                 "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30, context=server.ca.ssl_context()) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def vapid_key(client: Client) -> str:
    caps = client.request("GET", "/_matrix/client/v3/capabilities")["capabilities"]
    assert caps["m.webpush"]["enabled"] is True
    assert caps["org.matrix.msc4174.webpush"] == caps["m.webpush"]
    return caps["m.webpush"]["vapid"]


def check_request(push: dict, service: PushService, vapid: str, urgency: str) -> None:
    """The RFC 8030/8291/8292 headers of one push, the VAPID token verified."""
    headers = {k.lower(): v for k, v in push["headers"].items()}
    assert headers["content-encoding"] == "aes128gcm"
    assert int(headers["ttl"]) > 0
    assert headers["urgency"] == urgency
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == vapid, "the token is signed with the advertised key"
    signed, _, signature = parts["t"].rpartition(".")
    key = py_vapid.Vapid02.from_raw_public(parts["k"].encode())
    assert key.verify_token(validation_token=signed.encode(), verification_token=signature)
    claims = json.loads(unb64url(signed.split(".")[1]))
    header = json.loads(unb64url(signed.split(".")[0]))
    assert header["alg"] == "ES256"
    assert claims["aud"] == f"https://127.0.0.1:{service.port}"
    now = time.time()
    assert now < claims["exp"] <= now + 24 * 3600
    assert claims["sub"].startswith(("mailto:", "https://"))


def set_and_activate(server: FedServer, user: Client, sub: Subscription,
                     service: PushService, vapid: str, before_ack=None) -> None:
    """Sets the pusher (201), receives the validation push and acks its token
    (calling `before_ack` first)."""
    before = len(service.received)
    status, body = raw(server, user, "POST", "/_matrix/client/v3/pushers/set", sub.pusher())
    assert status == 201, body
    pushers = user.request("GET", "/_matrix/client/v3/pushers")["pushers"]
    assert [p["activated"] for p in pushers] == [False]
    validation = service.wait_for(before + 1)[before]
    check_request(validation, service, vapid, "high")
    message = sub.decrypt(validation["body"])
    assert message["app_id"] == APP_ID
    uuid.UUID(message["ack_token"])  # a UUID, as the MSC recommends
    if before_ack is not None:
        before_ack()

    status, body = raw(server, user, "POST", "/_matrix/client/v3/pushers/ack",
                       {"app_id": APP_ID, "ack_token": str(uuid.uuid4())})
    assert (status, body.get("errcode")) == (400, "M_UNKNOWN_ACTIVATION_TOKEN"), body
    status, body = raw(server, user, "POST", "/_matrix/client/v3/pushers/ack",
                       {"app_id": "org.example.other", "ack_token": message["ack_token"]})
    assert (status, body.get("errcode")) == (404, "M_NOT_FOUND"), body
    status, body = raw(server, user, "POST", "/_matrix/client/v3/pushers/ack",
                       {"app_id": APP_ID, "ack_token": message["ack_token"]})
    assert status == 200, body
    pushers = user.request("GET", "/_matrix/client/v3/pushers")["pushers"]
    assert [p["activated"] for p in pushers] == [True]


def three_in_a_room(server: FedServer, **content) -> tuple[Client, Client, Client, str]:
    """bob's room with alice and carol in it (three members: plain messages notify
    without sound, so a highlight stands out)."""
    suffix = uuid.uuid4().hex[:6]
    alice = server.register(f"alice{suffix}")
    bob = server.register(f"bob{suffix}")
    carol = server.register(f"carol{suffix}")
    room = bob.create_room(preset="public_chat", **content)
    alice.join(room)
    carol.join(room)
    return alice, bob, carol, room


def test_web_push_messages_decrypt_and_carry_a_valid_vapid_signature(
    hearth_fed: FedServer, fed_ca: TestCa, tmp_path
):
    service = PushService(fed_ca, str(tmp_path))
    try:
        alice, bob, _carol, room = three_in_a_room(hearth_fed, name="general")
        vapid = vapid_key(alice)
        assert len(unb64url(vapid)) == 65

        sub = Subscription(service.url("alice"))

        def before_ack():
            # Sent while the pusher waits for its activation: never pushed.
            bob.send_text(room, "before the ack")
            time.sleep(1.5)
            assert len(service.received) == 1

        set_and_activate(hearth_fed, alice, sub, service, vapid, before_ack)

        event_id = bob.send_text(room, "hello")
        push = service.wait_for(2)[1]
        assert push["path"] == "/push/alice"
        check_request(push, service, vapid, "normal")
        message = sub.decrypt(push["body"])
        assert message["event_id"] == event_id
        assert message["room_id"] == room
        assert message["room_name"] == "general"
        assert message["sender"] == bob.user_id
        assert message["sender_display_name"] == bob.user_id[1:].split(":")[0]
        assert message["content"] == {"msgtype": "m.text", "body": "hello"}
        assert message["counts"]["unread"] >= 1
        assert message["source"] == "hearth-test", "data.default_payload is merged"

        # A mention is a highlight: urgent.
        mention = bob.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{uuid.uuid4().hex}",
            {"msgtype": "m.text", "body": "alice: look",
             "m.mentions": {"user_ids": [alice.user_id]}},
        )["event_id"]
        push = service.wait_for(3)[2]
        check_request(push, service, vapid, "high")
        assert sub.decrypt(push["body"])["event_id"] == mention

        # An encrypted room: nothing readable beyond the IDs and counts.
        secret = bob.create_room(
            preset="public_chat",
            name="secret plans",
            initial_state=[{"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        )
        alice.join(secret)
        encrypted = bob.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{q(secret)}/send/m.room.encrypted/{uuid.uuid4().hex}",
            {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn", "sender_key": "k",
             "session_id": "s", "device_id": "D"},
        )["event_id"]
        push = service.wait_for(4)[3]
        message = sub.decrypt(push["body"])
        assert message["event_id"] == encrypted
        assert message["room_id"] == secret
        assert message["type"] == "m.room.encrypted"
        for hidden in ("sender", "sender_display_name", "room_name", "content"):
            assert hidden not in message, message
        assert "secret plans" not in json.dumps(message)

        # 410 Gone: the subscription expired and the pusher goes.
        service.answers.append(410)
        bob.send_text(room, "into the void")
        service.wait_for(5)
        wait_for(
            "the pusher's removal",
            lambda: alice.request("GET", "/_matrix/client/v3/pushers")["pushers"] == [],
        )
    finally:
        service.stop()


def test_web_push_is_retried_after_the_push_service_was_down_and_the_key_kept(
    hearth_fed: FedServer, fed_ca: TestCa, tmp_path
):
    service = PushService(fed_ca, str(tmp_path))
    port = service.port
    try:
        alice, bob, _carol, room = three_in_a_room(hearth_fed)
        vapid = vapid_key(alice)
        sub = Subscription(service.url("alice"))
        set_and_activate(hearth_fed, alice, sub, service, vapid)

        service.stop()
        event_id = bob.send_text(room, "while it was down")
        time.sleep(2)  # at least one attempt fails with the connection refused
        service = PushService(fed_ca, str(tmp_path), port)
        push = service.wait_for(1)[0]
        assert sub.decrypt(push["body"])["event_id"] == event_id

        # The VAPID key survives a restart, and so does the activated pusher.
        hearth_fed.restart()
        assert vapid_key(alice) == vapid
        event_id = bob.send_text(room, "after the restart")
        push = service.wait_for(2)[1]
        check_request(push, service, vapid, "normal")
        assert sub.decrypt(push["body"])["event_id"] == event_id
    finally:
        service.stop()
