"""Federation interop support: a test certificate authority, a Hearth and a Synapse
that serve HTTPS on the port of their `localhost:PORT` server names and trust each
other, and a small Client-Server API client for driving either of them.

Both servers are real processes on loopback. A server name with an explicit port is
contacted over TLS on that port, so each server's one listener serves the client and
the federation APIs over TLS with a certificate for `localhost` and `127.0.0.1`,
issued by a CA made here at test time.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
PASSWORD = "correct horse battery staple"
LOG_TAIL_LINES = 150

# Servers stopped during this run, whose names log tails leave out.
STOPPED_SERVER_NAMES: set[str] = set()


def _ephemeral_ports() -> tuple[int, int]:
    """The range the kernel takes outgoing connections' source ports from."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(n) for n in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port nothing listens on now, for a server about to start on it.

    It is chosen below the ephemeral range: a port the kernel handed out (binding port 0)
    comes from the range outgoing connections take their source ports from, so a
    client's connection could take it between this check and the server's bind, and the
    server would fail to start.
    """
    low, _ = _ephemeral_ports()
    floor = 10000 if low > 11000 else 1024
    for _ in range(200):
        port = random.randrange(floor, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    # A machine whose low ports are all taken: the kernel's choice.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- certificates -------------------------------------------------------------------


class TestCa:
    """A certificate authority that issues server certificates for localhost."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: str):
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hearth interop test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._name = name
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_path = os.path.join(directory, "ca.pem")
        with open(self.ca_path, "wb") as f:
            f.write(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, directory: str) -> tuple[str, str]:
        """Writes a certificate for localhost/127.0.0.1 and its key into `directory`;
        returns (cert_path, key_path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_path = os.path.join(directory, "cert.pem")
        key_path = os.path.join(directory, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return cert_path, key_path

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_path)


# --- Client-Server API --------------------------------------------------------------


class MatrixError(Exception):
    def __init__(self, method: str, url: str, status: int, body: Any):
        self.method, self.url, self.status, self.body = method, url, status, body
        super().__init__(f"{method} {url} -> {status}: {body}")

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


class Client:
    """A logged-in user on one server, over HTTPS."""

    def __init__(self, server: "FedServer", user_id: str, access_token: str):
        self.server = server
        self.user_id = user_id
        self.access_token = access_token
        self.next_batch: str | None = None

    def request(self, method: str, path: str, body: Any = None, query: dict | None = None,
                timeout: float = 30.0) -> Any:
        return self.server.request(method, path, body, query, token=self.access_token,
                                   timeout=timeout)

    # rooms

    def create_room(self, **content) -> str:
        return self.request("POST", "/_matrix/client/v3/createRoom", content)["room_id"]

    def join(self, room_id_or_alias: str, via: list[str] | None = None) -> str:
        query = {"server_name": via} if via else None
        path = "/_matrix/client/v3/join/" + urllib.parse.quote(room_id_or_alias, safe="")
        return self.request("POST", path, {}, query=query, timeout=60)["room_id"]

    def invite(self, room_id: str, user_id: str) -> None:
        self.request("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/invite",
                     {"user_id": user_id}, timeout=60)

    def leave(self, room_id: str) -> None:
        self.request("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/leave", {}, timeout=60)

    def send_text(self, room_id: str, body: str) -> str:
        txn = uuid.uuid4().hex
        return self.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/{txn}",
            {"msgtype": "m.text", "body": body},
        )["event_id"]

    def typing(self, room_id: str, typing: bool = True, timeout_ms: int = 30000) -> None:
        content: dict = {"typing": typing}
        if typing:
            content["timeout"] = timeout_ms
        self.request("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/typing/{q(self.user_id)}",
                     content)

    def receipt(self, room_id: str, event_id: str) -> None:
        self.request("POST",
                     f"/_matrix/client/v3/rooms/{q(room_id)}/receipt/m.read/{q(event_id)}", {})

    def messages(self, room_id: str, limit: int = 50) -> list[dict]:
        return self.request("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/messages",
                            query={"dir": "b", "limit": str(limit)})["chunk"]

    def joined_members(self, room_id: str) -> dict:
        return self.request("GET",
                            f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members")["joined"]

    def set_alias(self, alias: str, room_id: str) -> None:
        self.request("PUT", "/_matrix/client/v3/directory/room/" + q(alias),
                     {"room_id": room_id})

    def sync(self, timeout_ms: int = 0) -> dict:
        query = {"timeout": str(timeout_ms)}
        if self.next_batch:
            query["since"] = self.next_batch
        resp = self.request("GET", "/_matrix/client/v3/sync", query=query,
                            timeout=timeout_ms / 1000 + 30)
        self.next_batch = resp.get("next_batch")
        return resp


def q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


# --- servers ------------------------------------------------------------------------


@dataclass
class FedServer:
    """A running homeserver named localhost:PORT, serving HTTPS on that port."""

    kind: str  # "hearth" or "synapse"
    port: int
    workdir: str
    log_path: str
    ca: TestCa
    proc: subprocess.Popen | None = None
    # How the process is started: command line, environment, and the file its
    # stdout/stderr go to (appended, so a restart keeps the earlier output).
    argv: list[str] = field(default_factory=list)
    env: dict = field(default_factory=dict, repr=False)
    stdio_path: str = ""
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)
    _log_mark: int = 0

    @property
    def server_name(self) -> str:
        return f"localhost:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    def mark_log(self) -> None:
        """From now on, log() starts here (a server shared by several tests)."""
        try:
            self._log_mark = os.path.getsize(self.log_path)
        except OSError:
            self._log_mark = 0

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_mark)
                return f.read().decode("utf-8", errors="replace")
        except OSError as e:
            return f"<could not read {self.kind} log: {e}>"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        # Leave out the lines about servers of earlier tests, which are gone (a shared
        # Synapse keeps retrying them).
        gone = [name for name in STOPPED_SERVER_NAMES if name != self.server_name]
        kept = [
            line for line in self.log().splitlines()
            if not any(name in line for name in gone)
        ]
        return "\n".join(kept[-lines:])

    def request(self, method: str, path: str, body: Any = None, query: dict | None = None,
                token: str | None = None, timeout: float = 30.0) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if self._ssl is None:
            self._ssl = self.ca.ssl_context()
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            raise MatrixError(method, path, e.code, parsed) from None
        return json.loads(raw) if raw else {}

    def register(self, localpart: str) -> Client:
        body = {
            "username": localpart,
            "password": PASSWORD,
            "auth": {"type": "m.login.dummy"},
            "initial_device_display_name": "interop",
        }
        try:
            resp = self.request("POST", "/_matrix/client/v3/register", body)
        except MatrixError as e:
            # User-interactive auth: repeat with the session the server gave.
            if e.status != 401 or not isinstance(e.body, dict) or "session" not in e.body:
                raise
            body["auth"]["session"] = e.body["session"]
            resp = self.request("POST", "/_matrix/client/v3/register", body)
        return Client(self, resp["user_id"], resp["access_token"])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: Any = None
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with code {self.proc.returncode} before becoming "
                    f"ready.\n--- {self.kind} log ---\n{self.log_tail()}"
                )
            try:
                self.request("GET", "/_matrix/client/versions", timeout=2)
                # Federation must be up too: the server's own key.
                self.request("GET", "/_matrix/key/v2/server", timeout=2)
                return
            except (MatrixError, urllib.error.URLError, OSError) as e:
                last = e
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.kind} not ready after {READY_TIMEOUT_S:.0f}s (last: {last!r})."
                    f"\n--- {self.kind} log ---\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def start(self) -> None:
        """Starts the process and waits until it serves both APIs."""
        with open(self.stdio_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env,
                cwd=self.workdir,
            )
        try:
            self.wait_ready()
        except BaseException:
            self._terminate()
            raise

    def restart(self) -> None:
        """Stops the process and starts it again with the same name, port and data."""
        self._terminate()
        self.start()

    def down(self) -> None:
        """Stops the process for now (see restart)."""
        self._terminate()

    def stop(self) -> None:
        """Stops the process for good."""
        STOPPED_SERVER_NAMES.add(self.server_name)
        self._terminate()

    def _terminate(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def _hearth_env() -> dict:
    # Hearth reads HEARTH_<SECTION>__<KEY> variables; only ours may reach it, with the
    # rate limits raised as in conftest.
    from conftest import RAISED_LIMITS

    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(RAISED_LIMITS)
    return env


def start_hearth(hearth_bin: str, ca: TestCa, root: str) -> FedServer:
    workdir = tempfile.mkdtemp(prefix="hearth-", dir=root)
    data = os.path.join(workdir, "data")
    os.mkdir(data)
    cert, key = ca.issue(workdir)
    port = free_port()
    server = FedServer("hearth", port, workdir, os.path.join(workdir, "hearth.log"), ca)
    env = _hearth_env()
    env.update(
        {
            "RUST_LOG": os.environ.get("HEARTH_INTEROP_RUST_LOG", "info"),
            "HEARTH_SYNC_WRITES": "false",
            "HEARTH_LOG_FORMAT": "pretty",
            "HEARTH_FEDERATION__EXTRA_CA_FILES": json.dumps([ca.ca_path]),
            "HEARTH_FEDERATION__IP_RANGE_DENYLIST": "[]",
            "HEARTH_FEDERATION__MAX_RETRY_INTERVAL_SECS": "2",
            "NO_COLOR": "1",
        }
    )
    server.argv = [
        hearth_bin,
        "--listen", f"127.0.0.1:{port}",
        "--data", data,
        "--server-name", server.server_name,
        "--tls-cert", cert,
        "--tls-key", key,
    ]
    server.env = env
    server.stdio_path = server.log_path
    server.start()
    return server


SYNAPSE_LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s %(levelname)s %(name)s %(request)s - %(message)s'
filters:
  context:
    (): synapse.logging.context.LoggingContextFilter
    request: ""
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {log_path}
    filters: [context]
loggers:
  synapse.storage.SQL:
    level: WARNING
  synapse.access.http:
    level: INFO
  twisted:
    level: WARNING
root:
  level: {level}
  handlers: [file]
disable_existing_loggers: false
"""

_HIGH_RATE = {"per_second": 1000, "burst_count": 1000}


def synapse_config(port: int, workdir: str, ca: TestCa, cert: str, key: str,
                   log_config: str) -> dict:
    return {
        "server_name": f"localhost:{port}",
        "pid_file": os.path.join(workdir, "homeserver.pid"),
        "report_stats": False,
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": True,
                "x_forwarded": False,
                "resources": [{"names": ["client", "federation"], "compress": False}],
            }
        ],
        "tls_certificate_path": cert,
        "tls_private_key_path": key,
        "federation_verify_certificates": True,
        "federation_custom_ca_list": [ca.ca_path],
        # Loopback is where the other server is.
        "ip_range_blacklist": [],
        "federation_ip_range_blacklist": [],
        "database": {
            "name": "sqlite3",
            "args": {"database": os.path.join(workdir, "homeserver.db")},
        },
        "log_config": log_config,
        "media_store_path": os.path.join(workdir, "media"),
        "signing_key_path": os.path.join(workdir, "signing.key"),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "macaroon_secret_key": uuid.uuid4().hex,
        "form_secret": uuid.uuid4().hex,
        "registration_shared_secret": uuid.uuid4().hex,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "allow_public_rooms_over_federation": True,
        "presence": {"enabled": True},
        # Retry a failing destination after seconds, not the default ten minutes.
        "federation": {
            "destination_min_retry_interval": "1s",
            "destination_max_retry_interval": "30s",
            "max_short_retry_delay": "1s",
            "max_long_retry_delay": "1s",
            # A transaction fails after one retry, so an unreachable destination puts
            # Synapse in its catch-up mode in seconds (as a long outage would).
            "max_long_retries": 1,
        },
        "rc_message": _HIGH_RATE,
        "rc_registration": _HIGH_RATE,
        "rc_login": {"address": _HIGH_RATE, "account": _HIGH_RATE, "failed_attempts": _HIGH_RATE},
        "rc_joins": {"local": _HIGH_RATE, "remote": _HIGH_RATE},
        "rc_joins_per_room": _HIGH_RATE,
        "rc_invites": {"per_room": _HIGH_RATE, "per_user": _HIGH_RATE, "per_issuer": _HIGH_RATE},
        "rc_federation": {
            "window_size": 1000,
            "sleep_limit": 1000,
            "sleep_delay": 1,
            "reject_limit": 1000,
            "concurrent": 100,
        },
        "rc_presence": {"per_user": _HIGH_RATE},
        "rc_delayed_event_mgmt": _HIGH_RATE,
    }


def start_synapse(ca: TestCa, root: str, federation_overrides: dict | None = None
                  ) -> FedServer:
    """Starts a Synapse; `federation_overrides` change its `federation:` settings."""
    import yaml  # a Synapse dependency
    from signedjson.key import generate_signing_key, write_signing_keys

    workdir = tempfile.mkdtemp(prefix="synapse-", dir=root)
    cert, key = ca.issue(workdir)
    port = free_port()
    log_path = os.path.join(workdir, "homeserver.log")
    server = FedServer("synapse", port, workdir, log_path, ca)
    log_config = os.path.join(workdir, "log.yaml")
    with open(log_config, "w") as f:
        f.write(SYNAPSE_LOG_CONFIG.format(
            log_path=log_path, level=os.environ.get("SYNAPSE_INTEROP_LOG_LEVEL", "INFO")))
    config = synapse_config(port, workdir, ca, cert, key, log_config)
    config["federation"].update(federation_overrides or {})
    with open(config["signing_key_path"], "w") as f:
        write_signing_keys(f, [generate_signing_key("a_" + uuid.uuid4().hex[:4])])
    config_path = os.path.join(workdir, "homeserver.yaml")
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f)
    server.argv = [sys.executable, "-m", "synapse.app.homeserver", "-c", config_path]
    server.env = dict(os.environ)
    server.stdio_path = os.path.join(workdir, "stdio.log")
    try:
        server.start()
    except BaseException:
        # Start-up errors go to stdout/stderr before logging is set up.
        try:
            with open(server.stdio_path, errors="replace") as f:
                sys.stderr.write(f.read()[-5000:])
        except OSError:
            pass
        raise
    return server


# --- polling ------------------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0,
             interval: float = 0.25) -> Any:
    """Calls `probe` until it returns something truthy, or fails after `timeout`
    seconds with the last value or error seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except MatrixError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; "
                                 f"last: {last!r}")
        time.sleep(interval)
