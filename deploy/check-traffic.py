#!/usr/bin/env python3
"""Real client traffic through a reverse proxy to Hearth, for deploy/check.

Speaks HTTPS to the proxy at 127.0.0.1 while naming the virtual hosts of the deploy
files (matrix.example.org, example.org), trusting only the test CA. Python's standard
library only, so it runs on a bare Debian machine. Exits non-zero with one line saying
what failed.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import uuid


class Conn(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI and Host set to a virtual host name."""

    def __init__(self, name, port, context, timeout=90):
        super().__init__(name, port, context=context, timeout=timeout)

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Failure(Exception):
    pass


class Client:
    def __init__(self, name, port, context):
        self.name, self.port, self.context = name, port, context
        self.token = None

    def request(self, method, path, body=None, raw=None, content_type="application/json"):
        conn = Conn(self.name, self.port, self.context)
        headers = {}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        return response.status, response.headers, payload

    def json(self, method, path, body=None, expect=200, **kw):
        status, _, payload = self.request(method, path, body, **kw)
        try:
            value = json.loads(payload)
        except ValueError:
            raise Failure(f"{method} {path} on {self.name}: {status}, not JSON: {payload[:200]!r}")
        if expect is not None and status != expect:
            raise Failure(f"{method} {path} on {self.name}: {status} {value}")
        return value


def register(client, username, password, token):
    body = {"username": username, "password": password}
    for _ in range(4):
        status, _, payload = client.request("POST", "/_matrix/client/v3/register", body)
        answer = json.loads(payload)
        if status == 200:
            client.token = answer["access_token"]
            return answer
        if status != 401 or "flows" not in answer:
            raise Failure(f"register: {status} {answer}")
        done = set(answer.get("completed", []))
        stage = next(s for s in answer["flows"][0]["stages"] if s not in done)
        auth = {"type": stage, "session": answer["session"]}
        if stage == "m.login.registration_token":
            auth["token"] = token
        body["auth"] = auth
    raise Failure("register: the interactive authentication did not finish")


def long_poll(client, room_id):
    """A /sync held open by the proxy until a message arrives."""
    first = client.json("GET", "/_matrix/client/v3/sync?timeout=0")
    since = first["next_batch"]
    result = {}

    def poll():
        try:
            result["sync"] = client.json(
                "GET", f"/_matrix/client/v3/sync?since={since}&timeout=60000"
            )
            result["at"] = time.monotonic()
        except Exception as e:  # reported below
            result["error"] = e

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(1.5)
    if "sync" in result or "error" in result:
        raise Failure(f"the long-poll /sync returned before there was news: {result}")
    sent_at = time.monotonic()
    event_id = send_text(client, room_id, "through the long-poll")
    thread.join(70)
    if "error" in result:
        raise Failure(f"long-poll /sync: {result['error']}")
    if "sync" not in result:
        raise Failure("the long-poll /sync did not return after a message")
    events = result["sync"].get("rooms", {}).get("join", {}).get(room_id, {})
    ids = [e["event_id"] for e in events.get("timeline", {}).get("events", [])]
    if event_id not in ids:
        raise Failure(f"the long-poll /sync returned without the message: {result['sync']}")
    return result["at"] - sent_at


def send_text(client, room_id, text):
    txn = uuid.uuid4().hex
    answer = client.json(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": text},
    )
    return answer["event_id"]


class WebSocket:
    def __init__(self, client, path):
        sock = socket.create_connection(("127.0.0.1", client.port), 30)
        self.sock = client.context.wrap_socket(sock, server_hostname=client.name)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {client.name}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {client.token}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise Failure(f"the socket closed during the upgrade: {head!r}")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise Failure(f"the WebSocket upgrade was answered {status!r}")
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        )
        if accept not in head:
            raise Failure("the WebSocket upgrade has a wrong Sec-WebSocket-Accept")

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise Failure("the WebSocket closed")
            data += chunk
        return data

    def receive(self):
        """The next text message, as JSON."""
        while True:
            b0, b1 = self._exact(2)
            opcode, length = b0 & 0x0F, b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._exact(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._exact(8))
            payload = self._exact(length)
            if opcode == 1:
                return json.loads(payload)
            if opcode == 8:
                raise Failure(f"the server closed the WebSocket: {payload!r}")

    def send(self, value):
        payload = json.dumps(value).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)


def websocket_sync(client, room_id):
    ws = WebSocket(client, "/_matrix/client/unstable/org.hearth.sync/ws")
    first = ws.receive()
    if first.get("type") != "sync":
        raise Failure(f"the first WebSocket frame is not a sync: {first}")
    ws.send({"type": "send", "request_id": "r1", "room_id": room_id,
             "event_type": "m.room.message", "txn_id": uuid.uuid4().hex,
             "content": {"msgtype": "m.text", "body": "through the socket"}})
    event_id, seen = None, False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (event_id and seen):
        frame = ws.receive()
        if frame.get("type") == "response" and frame.get("request_id") == "r1":
            event_id = frame["body"]["event_id"]
        elif frame.get("type") == "error":
            raise Failure(f"the WebSocket answered an error: {frame}")
        elif frame.get("type") == "sync":
            timeline = frame["body"].get("rooms", {}).get("join", {}).get(room_id, {})
            for event in timeline.get("timeline", {}).get("events", []):
                if event["content"].get("body") == "through the socket":
                    seen = True
    ws.sock.close()
    if not (event_id and seen):
        raise Failure("a message sent on the WebSocket did not come back as a sync frame")


def upload(client, mib):
    data = os.urandom(1 << 20) * mib
    started = time.monotonic()
    answer = client.json(
        "POST", "/_matrix/media/v3/upload?filename=big.bin", raw=data,
        content_type="application/octet-stream",
    )
    uri = answer["content_uri"]
    server, media_id = uri[len("mxc://"):].split("/", 1)
    status, _, payload = client.request(
        "GET", f"/_matrix/client/v1/media/download/{server}/{media_id}"
    )
    if status != 200 or hashlib.sha256(payload).digest() != hashlib.sha256(data).digest():
        raise Failure(f"the {mib} MiB upload did not come back intact ({status}, {len(payload)} bytes)")
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ca", required=True)
    parser.add_argument("--port", type=int, required=True, help="the proxy's HTTPS port")
    parser.add_argument("--federation-port", type=int, help="the proxy's port 8448 stand-in")
    parser.add_argument("--client-host", default="matrix.example.org")
    parser.add_argument("--delegation-host", default="example.org")
    parser.add_argument("--server-name", default="example.org")
    parser.add_argument("--delegated-to", default="matrix.example.org:443")
    parser.add_argument("--registration-token", required=True)
    parser.add_argument("--upload-mib", type=int, default=50)
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=args.ca)
    client = Client(args.client_host, args.port, context)
    base = client.json("GET", "/_matrix/client/versions")
    if "v1.1" not in base.get("versions", []):
        raise Failure(f"/versions through the proxy: {base}")

    # Discovery on the bare domain: what clients and other servers look up first.
    domain = Client(args.delegation_host, args.port, context)
    well_known = domain.json("GET", "/.well-known/matrix/client")
    if well_known.get("m.homeserver", {}).get("base_url") != f"https://{args.client_host}":
        raise Failure(f"/.well-known/matrix/client: {well_known}")
    delegation = domain.json("GET", "/.well-known/matrix/server")
    if delegation != {"m.server": args.delegated_to}:
        raise Failure(f"/.well-known/matrix/server: {delegation}")

    # Federation both ways the files offer it: through the delegated name and port 443,
    # and on port 8448 of the server name.
    ports = [(args.client_host, args.port)]
    if args.federation_port:
        ports.append((args.server_name, args.federation_port))
    for host, port in ports:
        fed = Client(host, port, context)
        version = fed.json("GET", "/_matrix/federation/v1/version")
        if "server" not in version:
            raise Failure(f"federation /version on {host}:{port}: {version}")
        keys = fed.json("GET", "/_matrix/key/v2/server")
        if keys.get("server_name") != args.server_name:
            raise Failure(f"/_matrix/key/v2/server on {host}:{port}: {keys}")

    user = "deploy" + uuid.uuid4().hex[:8]
    register(client, user, "a long test password", args.registration_token)
    room_id = client.json("POST", "/_matrix/client/v3/createRoom", {"name": "deploy"})["room_id"]
    held = long_poll(client, room_id)
    websocket_sync(client, room_id)
    took = upload(client, args.upload_mib) if args.upload_mib else 0.0
    print(f"registration, long-poll /sync (answered {held * 1000:.0f} ms after the send), "
          f"WebSocket sync, {args.upload_mib} MiB upload and download ({took:.1f} s), "
          f".well-known and federation answers: ok")


if __name__ == "__main__":
    try:
        main()
    except (Failure, OSError, ssl.SSLError, http.client.HTTPException) as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
