"""Email (spec/email.md) against a real SMTP server: `aiosmtpd` runs in this process on
loopback and receives what Hearth sends (plain SMTP, `email.smtp_security = "none"`).

The tests read the mails as a person would: the link in the verification mail is
followed (its page, then its confirm button), the address is added, a password is
reset by email, and digests of missed messages arrive (or do not) with short delays
set through the configuration; the unsubscribe link in a digest stops them.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from aiosmtpd.controller import Controller

from federation_support import (
    PASSWORD,
    FedServer,
    MatrixError,
    _hearth_env,
    free_port,
    q,
    wait_for,
)

# Digests: a notification is mailed once it is this old and still unread, and a user
# gets at most one digest per interval.
NOTIF_DELAY_SECS = 2
NOTIF_INTERVAL_SECS = 2
# Long enough for the worker to have sent a digest it was going to send.
QUIET_SECS = 3 * NOTIF_DELAY_SECS + NOTIF_INTERVAL_SECS + 2


class Mailbox:
    """What the SMTP server received: (recipients, parsed message)."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def wait_for_mail(self, after: int, timeout: float = 30.0):
        """The first message received after the first `after` ones."""
        def probe():
            with self.lock:
                return self.messages[after] if len(self.messages) > after else None
        return wait_for(f"mail #{after + 1}", probe, timeout=timeout)


def parts(message) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def link_in(text: str, path: str) -> str:
    match = re.search(r"https://\S*" + re.escape(path) + r"\?\S+", text)
    assert match, f"no {path} link in:\n{text}"
    return match.group(0)


@pytest.fixture
def smtp():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, mailbox
    finally:
        controller.stop()


def start_hearth_with_email(hearth_bin, ca, root, smtp_port: int | None) -> FedServer:
    workdir = tempfile.mkdtemp(prefix="hearth-email-", dir=root)
    data = os.path.join(workdir, "data")
    os.mkdir(data)
    cert, key = ca.issue(workdir)
    port = free_port()
    server = FedServer("hearth", port, workdir, os.path.join(workdir, "hearth.log"), ca)
    env = _hearth_env()
    env.update({
        "RUST_LOG": os.environ.get("HEARTH_INTEROP_RUST_LOG", "info"),
        "HEARTH_SYNC_WRITES": "false",
        "HEARTH_PUBLIC_BASEURL": f"https://localhost:{port}",
        "HEARTH_FEDERATION__ENABLED": "false",
        "NO_COLOR": "1",
    })
    if smtp_port is not None:
        env.update({
            "HEARTH_EMAIL__SMTP_HOST": "127.0.0.1",
            "HEARTH_EMAIL__SMTP_PORT": str(smtp_port),
            "HEARTH_EMAIL__SMTP_SECURITY": "none",
            "HEARTH_EMAIL__FROM": "Hearth <hearth@example.org>",
            "HEARTH_EMAIL__NOTIF_DELAY_SECS": str(NOTIF_DELAY_SECS),
            "HEARTH_EMAIL__NOTIF_INTERVAL_SECS": str(NOTIF_INTERVAL_SECS),
        })
    server.argv = [
        hearth_bin, "--listen", f"127.0.0.1:{port}", "--data", data,
        "--server-name", server.server_name, "--tls-cert", cert, "--tls-key", key,
    ]
    server.env = env
    server.stdio_path = server.log_path
    server.start()
    return server


@pytest.fixture
def mail_hearth(hearth_bin, fed_ca, fed_root, smtp):
    controller, mailbox = smtp
    server = start_hearth_with_email(hearth_bin, fed_ca, fed_root, controller.port)
    try:
        yield server, mailbox
    finally:
        server.stop()


def page(server: FedServer, url: str, form: dict | None = None) -> tuple[int, str, dict]:
    """GET (or POST a form to) one of Hearth's pages: status, body, headers (lower-cased
    names)."""
    data = None if form is None else urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(url, data=data, method="GET" if form is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(
        NoRedirect, urllib.request.HTTPSHandler(context=server.ca.ssl_context())
    )
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), {k.lower(): v for k, v in e.headers.items()}


def follow(server: FedServer, link: str) -> tuple[int, str, dict]:
    """Opens a mailed link and presses its confirm button, as a person would."""
    status, body, _ = page(server, link)
    assert status == 200, body
    assert "<form" in body and 'method="post"' in body
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))
    return page(server, link.split("?")[0], form=params)


def uia(client, method: str, path: str, body: dict) -> dict:
    """A request behind user-interactive auth with the user's password."""
    try:
        return client.request(method, path, body)
    except MatrixError as e:
        assert e.status == 401, e
        session = e.body["session"]
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": client.user_id},
        "password": PASSWORD,
        "session": session,
    }
    return client.request(method, path, {**body, "auth": auth})


def add_address(server, mailbox, client, address: str) -> None:
    secret = "secret-" + os.urandom(6).hex()
    before = mailbox.count()
    sid = client.request("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {
        "client_secret": secret, "email": address, "send_attempt": 1,
    })["sid"]
    rcpt, message = mailbox.wait_for_mail(before)
    assert rcpt == [address]
    text, _ = parts(message)
    status, body, _ = follow(server, link_in(text, "/_hearth/client/v1/email/validate"))
    assert status == 200, body
    uia(client, "POST", "/_matrix/client/v3/account/3pid/add",
        {"sid": sid, "client_secret": secret})


def mention(sender, room_id: str, user_id: str, body: str) -> str:
    return sender.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/{os.urandom(8).hex()}",
        {"msgtype": "m.text", "body": body, "m.mentions": {"user_ids": [user_id]}},
    )["event_id"]


def test_add_address_and_digests(mail_hearth):
    server, mailbox = mail_hearth
    alice = server.register("alice")
    bob = server.register("bob")
    caps = alice.request("GET", "/_matrix/client/v3/capabilities")["capabilities"]
    assert caps["m.3pid_changes"] == {"enabled": True}

    # The verification mail and its link.
    secret = "s3cret"
    sid = alice.request("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {
        "client_secret": secret, "email": "Alice@Example.org", "send_attempt": 1,
        "next_link": "https://client.example.org/done",
    })["sid"]
    rcpt, message = mailbox.wait_for_mail(0)
    assert rcpt == ["alice@example.org"]
    assert "hearth@example.org" in message["From"]
    text, html = parts(message)
    link = link_in(text, "/_hearth/client/v1/email/validate")
    assert "href=" in html
    # The same request again: the same session, no second mail.
    again = alice.request("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {
        "client_secret": secret, "email": "alice@example.org", "send_attempt": 1,
    })
    assert again["sid"] == sid
    # Before the link is followed, the address cannot be added.
    with pytest.raises(MatrixError) as refused:
        uia(alice, "POST", "/_matrix/client/v3/account/3pid/add",
            {"sid": sid, "client_secret": secret})
    assert refused.value.body["errcode"] == "M_THREEPID_AUTH_FAILED"
    # Opening the link (what a mail scanner does) validates nothing: only the button does.
    status, body, headers = page(server, link)
    assert status == 200 and "Confirm" in body
    assert "default-src 'none'" in headers.get("content-security-policy", "")
    with pytest.raises(MatrixError):
        uia(alice, "POST", "/_matrix/client/v3/account/3pid/add",
            {"sid": sid, "client_secret": secret})
    status, body, headers = follow(server, link)
    assert status == 302, body
    assert headers["location"] == "https://client.example.org/done"
    # The token is single use.
    status, body, _ = follow_again = page(
        server, link.split("?")[0],
        form=dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query)),
    )
    assert status == 400 and "M_THREEPID_AUTH_FAILED" in body, follow_again
    uia(alice, "POST", "/_matrix/client/v3/account/3pid/add",
        {"sid": sid, "client_secret": secret})
    threepids = alice.request("GET", "/_matrix/client/v3/account/3pid")["threepids"]
    assert [(t["medium"], t["address"]) for t in threepids] == [("email", "alice@example.org")]
    pushers = alice.request("GET", "/_matrix/client/v3/pushers")["pushers"]
    assert [(p["kind"], p["app_id"], p["pushkey"]) for p in pushers] == [
        ("email", "m.email", "alice@example.org")
    ]
    # Bob cannot take the address: he gets the same answer and no mail.
    before = mailbox.count()
    bob.request("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {
        "client_secret": "bobs", "email": "alice@example.org", "send_attempt": 1,
    })

    # A missed mention: one digest, with everything from users escaped.
    room = bob.create_room(name='<b>Bob & "co"</b>', preset="public_chat")
    alice.join(room)
    bob.request("PUT", f"/_matrix/client/v3/profile/{q(bob.user_id)}/displayname",
                {"displayname": "Bob <i>the builder</i>"})
    mention(bob, room, alice.user_id, "hello alice <script>alert(1)</script>")
    rcpt, digest = mailbox.wait_for_mail(before)
    assert rcpt == ["alice@example.org"]
    assert digest["Subject"] == f"You have 1 unread message on {server.server_name}"
    text, html = parts(digest)
    assert 'Bob <i>the builder</i> in <b>Bob & "co"</b>: hello alice <script>alert(1)</script>' in text
    for raw in ["<script>", "<i>the builder</i>", '<b>Bob & "co"</b>']:
        assert raw not in html, html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Bob &amp; &quot;co&quot;&lt;/b&gt;" in html
    unsubscribe = link_in(text, "/_hearth/client/v1/email/unsubscribe")
    assert digest["List-Unsubscribe"] == f"<{unsubscribe}>"

    # A mention Alice reads in time is not mailed.
    after_first = mailbox.count()
    event = mention(bob, room, alice.user_id, "read this one")
    alice.receipt(room, event)
    time.sleep(QUIET_SECS)
    assert mailbox.count() == after_first

    # An unread one is, in the next digest.
    mention(bob, room, alice.user_id, "second missed")
    _, digest = mailbox.wait_for_mail(after_first)
    text, _ = parts(digest)
    assert "second missed" in text and "read this one" not in text and "hello alice" not in text

    # A direct chat (in Alice's m.direct) that is encrypted: counted, nothing shown.
    dm = bob.create_room(preset="trusted_private_chat", is_direct=True, invite=[alice.user_id],
                         initial_state=[{"type": "m.room.encryption", "state_key": "",
                                         "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    alice.join(dm)
    alice.request("PUT", f"/_matrix/client/v3/user/{q(alice.user_id)}/account_data/m.direct",
                  {bob.user_id: [dm]})
    after_second = mailbox.count()
    bob.request("PUT", f"/_matrix/client/v3/rooms/{q(dm)}/send/m.room.encrypted/{os.urandom(8).hex()}",
                {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "c2VjcmV0IHRleHQ",
                 "device_id": "BOBDEVICE", "sender_key": "key", "session_id": "session"})
    _, digest = mailbox.wait_for_mail(after_second)
    text, html = parts(digest)
    assert "You have 1 encrypted message." in text and "You have 1 encrypted message." in html
    assert "c2VjcmV0IHRleHQ" not in text and "c2VjcmV0IHRleHQ" not in html

    # The unsubscribe link: a wrong signature is refused; the right one ends digests.
    bad = re.sub(r"sig=[0-9a-f]+", "sig=" + "0" * 64, unsubscribe)
    status, _, _ = page(server, bad)
    assert status == 403
    status, body, _ = follow(server, unsubscribe)
    assert status == 200, body
    assert alice.request("GET", "/_matrix/client/v3/pushers")["pushers"] == []
    count = mailbox.count()
    mention(bob, room, alice.user_id, "after unsubscribing")
    time.sleep(QUIET_SECS)
    assert mailbox.count() == count

    # Removing the address.
    alice.request("POST", "/_matrix/client/v3/account/3pid/delete",
                  {"medium": "email", "address": "alice@example.org"})
    assert alice.request("GET", "/_matrix/client/v3/account/3pid")["threepids"] == []


def test_password_reset_by_email(mail_hearth):
    server, mailbox = mail_hearth
    alice = server.register("alice")
    add_address(server, mailbox, alice, "alice@example.org")
    requested = mailbox.count()

    # An unknown address gets an answer of the same shape, and no mail.
    unknown = server.request("POST", "/_matrix/client/v3/account/password/email/requestToken", {
        "client_secret": "nobody", "email": "nobody@example.org", "send_attempt": 1,
    })
    assert set(unknown) == {"sid"}

    sid = server.request("POST", "/_matrix/client/v3/account/password/email/requestToken", {
        "client_secret": "reset-secret", "email": "alice@example.org", "send_attempt": 1,
    })["sid"]
    rcpt, message = mailbox.wait_for_mail(requested)
    assert rcpt == ["alice@example.org"]
    assert mailbox.count() == requested + 1, "a mail went to the unknown address"
    text, _ = parts(message)
    link = link_in(text, "/_hearth/client/v1/email/validate")
    auth = {"type": "m.login.email.identity",
            "threepid_creds": {"sid": sid, "client_secret": "reset-secret"}}
    new_password = "a brand new password"
    # Without a token the flow offered is the email one.
    with pytest.raises(MatrixError) as challenge:
        server.request("POST", "/_matrix/client/v3/account/password",
                       {"new_password": new_password})
    assert challenge.value.status == 401
    assert challenge.value.body["flows"] == [{"stages": ["m.login.email.identity"]}]
    session = challenge.value.body["session"]
    # Not yet validated.
    with pytest.raises(MatrixError) as early:
        server.request("POST", "/_matrix/client/v3/account/password",
                       {"new_password": new_password, "auth": {**auth, "session": session}})
    assert early.value.status == 401
    assert early.value.body["errcode"] == "M_THREEPID_AUTH_FAILED"
    status, body, _ = follow(server, link)
    assert status == 200, body
    server.request("POST", "/_matrix/client/v3/account/password",
                   {"new_password": new_password, "auth": {**auth, "session": session}})

    def login(password):
        return server.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": password,
        })

    assert login(new_password)["user_id"] == alice.user_id
    with pytest.raises(MatrixError) as old:
        login(PASSWORD)
    assert old.value.status == 403
    # The old device was logged out.
    with pytest.raises(MatrixError) as gone:
        alice.request("GET", "/_matrix/client/v3/account/whoami")
    assert gone.value.status == 401
    # The session is used up.
    with pytest.raises(MatrixError):
        server.request("POST", "/_matrix/client/v3/account/password",
                       {"new_password": "another one!", "auth": auth})

    # Deactivating the account frees the address: someone else can verify it.
    token = login(new_password)["access_token"]
    try:
        server.request("POST", "/_matrix/client/v3/account/deactivate", {}, token=token)
    except MatrixError as e:
        assert e.status == 401, e
        server.request("POST", "/_matrix/client/v3/account/deactivate", {"auth": {
            "type": "m.login.password", "session": e.body["session"], "password": new_password,
            "identifier": {"type": "m.id.user", "user": "alice"},
        }}, token=token)
    bob = server.register("bob")
    before = mailbox.count()
    bob.request("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {
        "client_secret": "bobs", "email": "alice@example.org", "send_attempt": 1,
    })
    rcpt, _ = mailbox.wait_for_mail(before)
    assert rcpt == ["alice@example.org"]


def test_without_email_the_endpoints_refuse(hearth_bin, fed_ca, fed_root):
    server = start_hearth_with_email(hearth_bin, fed_ca, fed_root, None)
    try:
        alice = server.register("alice")
        for path, client in [
            ("/_matrix/client/v3/account/3pid/email/requestToken", alice),
            ("/_matrix/client/v3/account/password/email/requestToken", server),
        ]:
            with pytest.raises(MatrixError) as refused:
                client.request("POST", path, {
                    "client_secret": "x", "email": "alice@example.org", "send_attempt": 1,
                })
            assert refused.value.status == 403
            assert refused.value.body["errcode"] == "M_THREEPID_DENIED"
        caps = alice.request("GET", "/_matrix/client/v3/capabilities")["capabilities"]
        assert caps["m.3pid_changes"] == {"enabled": False}
        assert alice.request("GET", "/_matrix/client/v3/account/3pid") == {"threepids": []}
    finally:
        server.stop()
