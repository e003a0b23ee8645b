"""HTTP pushers at a push gateway built on Twisted's web server, the stack Sygnal (the
Matrix project's push gateway) runs on.

Hearth sends the notify requests of the pushers of one gateway together, pipelined on one
connection (src/service/pushers/origin.rs); Twisted must answer each of them, in order.
Sygnal itself is not on the package index these tests install from (Twisted comes with
Synapse). The gateway here answers as Sygnal does: after a delay that stands for its wait
on the phone vendor's service, with `{"rejected": []}`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from federation_support import FedServer

APP_ID = "org.example.hearth.phone"


class Gateway(Resource):
    """`POST /_matrix/push/v1/notify`, answered `delay` seconds later; records every
    notification and how many requests were in progress at once."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.url = ""
        self.delay = 0.0
        self.lock = threading.Lock()
        self.received: list[dict] = []
        self.in_progress = 0
        self.most_in_progress = 0

    def render_POST(self, request):
        body = json.loads(request.content.read())
        with self.lock:
            self.received.append(body["notification"])
            self.in_progress += 1
            self.most_in_progress = max(self.most_in_progress, self.in_progress)

        def answer():
            with self.lock:
                self.in_progress -= 1
            request.setHeader(b"Content-Type", b"application/json")
            request.write(b'{"rejected": []}')
            request.finish()

        reactor.callLater(self.delay, answer)
        return NOT_DONE_YET

    def reset(self, delay: float) -> None:
        with self.lock:
            self.delay = delay
            self.received = []
            self.most_in_progress = 0

    def wait_for(self, n: int, timeout: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
                got = len(self.received)
            if time.monotonic() > deadline:
                raise AssertionError(f"only {got} of {n} notifications arrived")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def gateway():
    """One Twisted reactor (it cannot be restarted) serving the gateway on loopback for
    this module's tests."""
    resource = Gateway()
    root, matrix, push, v1 = Resource(), Resource(), Resource(), Resource()
    root.putChild(b"_matrix", matrix)
    matrix.putChild(b"push", push)
    push.putChild(b"v1", v1)
    v1.putChild(b"notify", resource)
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    thread = threading.Thread(
        target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
    )
    thread.start()
    resource.url = f"http://127.0.0.1:{port.getHost().port}/_matrix/push/v1/notify"
    yield resource
    reactor.callFromThread(reactor.stop)
    thread.join(timeout=10)


def members_with_pushers(server: FedServer, url: str, count: int):
    """A room of alice and `count` others, each of them with a pusher at `url`."""
    suffix = uuid.uuid4().hex[:6]
    alice = server.register(f"alice{suffix}")
    room = alice.create_room(preset="public_chat")
    others = []
    for n in range(count):
        member = server.register(f"m{n}{suffix}")
        member.join(room)
        member.request(
            "POST",
            "/_matrix/client/v3/pushers/set",
            {
                "kind": "http",
                "app_id": APP_ID,
                "pushkey": f"key{n}{suffix}",
                "app_display_name": "Phone",
                "device_display_name": "Phone",
                "lang": "en",
                "data": {"url": url, "format": "event_id_only"},
            },
        )
        others.append(f"key{n}{suffix}")
    return alice, room, others


def check_each_in_order(received: list[dict], keys: list[str], events: list[str]) -> None:
    for key in keys:
        own = [
            n["event_id"]
            for n in received
            if n["devices"][0]["pushkey"] == key and "event_id" in n
        ]
        assert own == events, (key, own)


@pytest.mark.parametrize("delay", [0.0, 0.2], ids=["answers-at-once", "answers-late"])
def test_every_pusher_of_a_twisted_gateway_gets_its_notifications_in_order(
    hearth_fed: FedServer, gateway: Gateway, delay: float
):
    gateway.reset(delay)
    alice, room, keys = members_with_pushers(hearth_fed, gateway.url, 6)
    events = [alice.send_text(room, f"message {n}") for n in range(5)]
    received = gateway.wait_for(6 * 5)
    check_each_in_order(received, keys, events)
    # Nothing more: another message is pushed once to each.
    last = alice.send_text(room, "last")
    received = gateway.wait_for(6 * 6)
    time.sleep(0.5 + delay)
    assert len(gateway.received) == 6 * 6
    check_each_in_order(received, keys, events + [last])
    if delay:
        # A gateway that takes its time per request is not sent everything on one
        # connection, where it would answer one request after the other: batches of
        # two at first, then one per connection (`Pace`), so several are in progress.
        assert gateway.most_in_progress >= 3, gateway.most_in_progress
