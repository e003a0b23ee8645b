"""Interop: synadm (Synapse's admin command line, from PyPI) against a real hearth.

synadm speaks Synapse's admin API; Hearth serves the same paths and JSON, so synadm's
user list, user details, password reset, deactivation, room list, room details and room
deletion work unchanged. Every effect is checked through the client API.
"""

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import HearthServer, _child_env, _free_port, _versions_status

SECRET = "synadm-interop-secret"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def hearth_admin_server(hearth_bin):
    """A hearth with shared-secret registration on, so the test can make an admin."""
    tmp = tempfile.mkdtemp(prefix="hearth-synadm-")
    data_dir = os.path.join(tmp, "data")
    os.mkdir(data_dir)
    stderr_path = os.path.join(tmp, "hearth.stderr")
    port = _free_port()
    server = HearthServer(
        base_url=f"http://127.0.0.1:{port}",
        server_name=f"localhost:{port}",
        data_dir=data_dir,
        stderr_path=stderr_path,
    )
    env = _child_env()
    env["HEARTH_REGISTRATION__SHARED_SECRET"] = SECRET
    env["HEARTH_SYNC_WRITES"] = "false"
    stderr_file = open(stderr_path, "wb")
    proc = subprocess.Popen(
        [hearth_bin, "--listen", f"127.0.0.1:{port}", "--data", data_dir,
         "--server-name", server.server_name],
        stdin=subprocess.DEVNULL, stdout=stderr_file, stderr=stderr_file,
        env=env, cwd=tmp,
    )
    try:
        deadline = time.monotonic() + 30
        while _versions_status(server.base_url) != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"hearth did not start:\n{server.stderr()}", pytrace=False)
            time.sleep(0.1)
        yield server
    finally:
        proc.kill()
        proc.wait(timeout=10)
        stderr_file.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _request(server, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.base_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _q(segment):
    return urllib.parse.quote(segment, safe="")


def _register_admin(server, name):
    _, body = _request(server, "GET", "/_synapse/admin/v1/register")
    nonce = body["nonce"]
    mac = hmac.new(SECRET.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), name.encode(), PASSWORD.encode(), b"admin"]))
    status, body = _request(server, "POST", "/_synapse/admin/v1/register", body={
        "nonce": nonce, "username": name, "password": PASSWORD, "admin": True,
        "mac": mac.hexdigest(),
    })
    assert status == 200, body
    return body["access_token"]


def _register(server, name):
    status, body = _request(server, "POST", "/_matrix/client/v3/register", body={
        "username": name, "password": PASSWORD, "auth": {"type": "m.login.dummy"},
    })
    assert status == 200, body
    return body["user_id"], body["access_token"]


def _login(server, name, password):
    return _request(server, "POST", "/_matrix/client/v3/login", body={
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": name},
        "password": password,
    })


def _synadm(server, token, tmp_path, *args):
    config = tmp_path / "synadm.yaml"
    config.write_text(json.dumps({
        "user": f"@root:{server.server_name}",
        "token": token,
        "protocol": "http",
        "base_url": server.base_url,
        "admin_path": "/_synapse/admin",
        "matrix_path": "/_matrix",
        "format": "json",
        "timeout": 30,
        "server_discovery": "well-known",
        "homeserver": server.server_name,
        "ssl_verify": False,
    }))
    result = subprocess.run(
        [sys.executable, "-m", "synadm", "--batch", "-o", "json", "-c", str(config), *args],
        capture_output=True, text=True, timeout=60, env=_child_env(),
    )
    assert result.returncode == 0, f"synadm {args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def _json_out(text):
    """synadm prints its JSON answer last; some commands print details first."""
    decoder = json.JSONDecoder()
    values, at = [], 0
    text = text.strip()
    while at < len(text):
        value, end = decoder.raw_decode(text, at)
        values.append(value)
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return values


def test_synadm_manages_users_and_rooms(hearth_admin_server, tmp_path):
    server = hearth_admin_server
    root = _register_admin(server, "root")
    alice, alice_token = _register(server, "alice")
    bob, bob_token = _register(server, "bob")
    status, body = _request(server, "POST", "/_matrix/client/v3/createRoom", alice_token,
                            {"preset": "public_chat", "name": "Lobby",
                             "room_alias_name": "lobby"})
    assert status == 200, body
    room = body["room_id"]
    status, body = _request(server, "POST", f"/_matrix/client/v3/join/{_q(room)}", bob_token, {})
    assert status == 200, body

    # user list
    users = _json_out(_synadm(server, root, tmp_path, "user", "list"))[-1]
    names = sorted(u["name"] for u in users["users"])
    assert names == sorted([alice, bob, f"@root:{server.server_name}"]), users
    assert users["total"] == 3

    # user details
    details = _json_out(_synadm(server, root, tmp_path, "user", "details", bob))[-1]
    assert details["name"] == bob
    assert details["admin"] is False
    assert details["deactivated"] is False

    # password reset: the old token is logged out, the new password works
    _synadm(server, root, tmp_path, "user", "password", bob, "-p", "a new password for bob")
    status, body = _request(server, "GET", "/_matrix/client/v3/account/whoami", bob_token)
    assert status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN", body
    status, body = _login(server, "bob", "a new password for bob")
    assert status == 200, body

    # room list and room details
    rooms = _json_out(_synadm(server, root, tmp_path, "room", "list"))[-1]
    assert rooms["total_rooms"] == 1, rooms
    assert rooms["rooms"][0]["room_id"] == room
    assert rooms["rooms"][0]["name"] == "Lobby"
    assert rooms["rooms"][0]["joined_members"] == 2
    room_details = _json_out(_synadm(server, root, tmp_path, "room", "details", room))[-1]
    assert room_details["room_id"] == room
    assert room_details["canonical_alias"] == f"#lobby:{server.server_name}"

    # deactivation: bob cannot log in and has left the room
    _synadm(server, root, tmp_path, "user", "deactivate", bob)
    status, body = _login(server, "bob", "a new password for bob")
    assert status == 403 and body["errcode"] == "M_USER_DEACTIVATED", body
    status, body = _request(server, "GET",
                            f"/_matrix/client/v3/rooms/{_q(room)}/joined_members", alice_token)
    assert status == 200, body
    assert list(body["joined"]) == [alice], body

    # room deletion: alice is out of the room, its alias resolves no more
    out = _json_out(_synadm(server, root, tmp_path, "room", "delete", room))
    assert "delete_id" in out[-1], out
    # As with Synapse, the deletion runs in the background: poll its status.
    deadline = time.monotonic() + 30
    while True:
        status_out = _json_out(
            _synadm(server, root, tmp_path, "room", "delete-status", "-r", room))[-1]
        if status_out["results"][0]["status"] != "shutting_down" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status_out["results"][0]["status"] == "complete", status_out
    status, body = _request(server, "GET", "/_matrix/client/v3/joined_rooms", alice_token)
    assert body["joined_rooms"] == [], body
    status, body = _request(server, "GET",
                            f"/_matrix/client/v3/directory/room/{_q('#lobby:' + server.server_name)}")
    assert status == 404, body
