#!/usr/bin/env python3
"""A backup taken under load, for deploy/check-package (standard library only).

  check-backup.py load --port P --user U --password W --hearthctl PATH --state FILE
      logs in as the server admin U, uploads a file and sends messages to a new room
      without pause; once 30 are acknowledged, runs `hearthctl backup` against the
      server while they keep going, then stops 5 messages later. FILE gets the room,
      the acknowledged event IDs in order, how many were acknowledged before the backup
      was asked for and when it answered, the media ID and the backup's path (printed).
  check-backup.py verify --port P --user U --password W --state FILE
      against the server restored from that backup: every message acknowledged before
      the backup was asked for is in the room, none sent after it answered (but the one
      in flight) is, the file downloads, and the server takes a new message.
Prints one line; exits 1 with the reason on failure.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

MEDIA = b"a file kept by the backup"


class Client:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.token = None

    def call(self, method, path, body=None, raw=None, content_type="application/json"):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, method, path, body=None, expect=200):
        status, answer = self.call(method, path, body if body is not None else ({} if method != "GET" else None))
        if status != expect:
            raise SystemExit(f"{method} {path}: {status} {answer[:300]!r}")
        return json.loads(answer)

    def login(self, user, password):
        answer = self.json("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        })
        self.token = answer["access_token"]
        return answer


def room_path(room, rest):
    return f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/{rest}"


def load(args):
    client = Client(args.port)
    client.login(args.user, args.password)
    status, answer = client.call("POST", "/_matrix/media/v3/upload", raw=MEDIA, content_type="text/plain")
    if status != 200:
        raise SystemExit(f"upload: {status} {answer[:300]!r}")
    media = json.loads(answer)["content_uri"].removeprefix("mxc://")
    room = client.json("POST", "/_matrix/client/v3/createRoom", {"name": "backup under load"})["room_id"]

    acknowledged = []
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def send():
        writer = Client(args.port)
        writer.token = client.token
        n = 0
        try:
            while not stop.is_set():
                answer = writer.json("PUT", room_path(room, f"send/m.room.message/load-{n}"),
                                     {"msgtype": "m.text", "body": f"message {n}"})
                with lock:
                    acknowledged.append(answer["event_id"])
                n += 1
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    def count():
        with lock:
            return len(acknowledged)

    def wait_for(n):
        while count() < n:
            if errors:
                raise SystemExit(f"sending stopped: {errors[0]}")
            time.sleep(0.005)

    writer = threading.Thread(target=send)
    writer.start()
    try:
        wait_for(30)
        before = count()
        with tempfile.NamedTemporaryFile("w", delete=False) as token_file:
            token_file.write(client.token)
        try:
            backup = subprocess.run(
                [args.hearthctl, "--server", client.base, "--token-file", token_file.name, "backup"],
                capture_output=True, text=True, timeout=300,
                env={k: v for k, v in os.environ.items() if not k.startswith("HEARTH")},
            )
        finally:
            os.unlink(token_file.name)
        after = count()
        if backup.returncode != 0:
            raise SystemExit(f"hearthctl backup: {backup.stderr.strip()}")
        wait_for(after + 5)
    finally:
        stop.set()
        writer.join()
    if errors:
        raise SystemExit(f"sending stopped: {errors[0]}")
    path = backup.stdout.strip()
    with open(args.state, "w") as f:
        json.dump({"room": room, "acknowledged": acknowledged, "before": before,
                   "after": after, "media": media, "backup": path}, f)
    print(path)


def verify(args):
    with open(args.state) as f:
        state = json.load(f)
    client = Client(args.port)
    client.login(args.user, args.password)
    room = state["room"]
    restored = set()
    token = ""
    while True:
        page = client.json("GET", room_path(room, f"messages?dir=b&limit=100{token}"))
        restored.update(event["event_id"] for event in page["chunk"])
        if not page["chunk"] or "end" not in page:
            break
        token = "&from=" + urllib.parse.quote(page["end"])
    acknowledged, before, after = state["acknowledged"], state["before"], state["after"]
    missing = [e for e in acknowledged[:before] if e not in restored]
    if missing:
        raise SystemExit(f"{len(missing)} of {before} messages acknowledged before the backup are missing, e.g. {missing[0]}")
    later = [e for e in acknowledged[after + 1:] if e in restored]
    if later:
        raise SystemExit(f"{len(later)} messages sent after the backup answered are in it")
    status, body = client.call("GET", f"/_matrix/client/v1/media/download/{state['media']}")
    if status != 200 or body != MEDIA:
        raise SystemExit(f"the uploaded file did not come back: {status} {body[:100]!r}")
    client.json("PUT", room_path(room, "send/m.room.message/after-restore"),
                {"msgtype": "m.text", "body": "after the restore"})
    print(f"all {before} messages acknowledged before the backup (of {len(acknowledged)} sent) "
          f"and the file are back; the restored server takes writes")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["load", "verify"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--hearthctl", default="hearthctl")
    args = parser.parse_args()
    (load if args.mode == "load" else verify)(args)


if __name__ == "__main__":
    try:
        main()
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            sys.exit(1)
        raise
