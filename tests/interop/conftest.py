"""Fixtures for interop tests that run third-party Matrix clients against a
real `hearth` process.

The binary is taken from the HEARTH_BIN environment variable, e.g.

    HEARTH_BIN=target/debug/hearth python -m pytest tests/interop -q
"""

import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from federation_support import FedServer, TestCa, free_port, start_hearth, start_synapse

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HearthServer:
    base_url: str  # e.g. "http://127.0.0.1:41234"
    server_name: str  # e.g. "localhost:41234"
    data_dir: str
    stderr_path: str

    def stderr(self) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError as e:
            return f"<could not read hearth stderr: {e}>"


_free_port = free_port


# Tests register, join and send faster than any person, all from one address: the
# per-user and per-address rate limits (spec/limits.md) are raised out of the way.
RAISED_LIMITS = {
    f"HEARTH_LIMITS__{family}_BURST": "1000000"
    for family in ("MESSAGES", "JOINS", "INVITES", "REGISTRATIONS", "SEARCH")
}


def _child_env() -> dict:
    # Hearth reads HEARTH_<SECTION>__<KEY> variables as configuration; don't let
    # anything from the caller's environment (including HEARTH_BIN itself)
    # change the server under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update(RAISED_LIMITS)
    return env


def _versions_status(base_url: str) -> int | None:
    try:
        with urllib.request.urlopen(
            f"{base_url}/_matrix/client/versions", timeout=2
        ) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


@pytest.fixture(scope="session")
def hearth_bin() -> str:
    path = os.environ.get("HEARTH_BIN")
    if not path:
        pytest.fail(
            "HEARTH_BIN is not set: point it at a built hearth binary, e.g. "
            "HEARTH_BIN=/root/.cache/hearth-target/debug/hearth "
            "python -m pytest tests/interop",
            pytrace=False,
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"HEARTH_BIN={path!r} is not an executable file", pytrace=False)
    return path


@pytest.fixture
def hearth(hearth_bin):
    """Start a fresh hearth (own port, own empty data dir) for one test.

    Yields a HearthServer; kills the process and removes the data dir
    afterwards. If the test fails, the server's stderr is added to the failure
    report (see pytest_runtest_makereport below).
    """
    tmp = tempfile.mkdtemp(prefix="hearth-interop-")
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

    stderr_file = open(stderr_path, "wb")
    proc = subprocess.Popen(
        [
            hearth_bin,
            "--listen",
            f"127.0.0.1:{port}",
            "--data",
            data_dir,
            "--server-name",
            server.server_name,
        ],
        stdin=subprocess.DEVNULL,
        stdout=stderr_file,
        stderr=stderr_file,
        env=_child_env(),
        cwd=tmp,
    )

    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = None
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"hearth exited with code {proc.returncode} before becoming "
                    f"ready.\n--- hearth stderr ---\n{server.stderr()}",
                    pytrace=False,
                )
            last = _versions_status(server.base_url)
            if last == 200:
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"hearth not ready after {READY_TIMEOUT_S:.0f}s "
                    f"(last GET /_matrix/client/versions status: {last}).\n"
                    f"--- hearth stderr ---\n{server.stderr()}",
                    pytrace=False,
                )
            time.sleep(0.1)

        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        stderr_file.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # When a test using the `hearth` fixture fails, show what the server logged.
    rep = yield
    if rep.failed and rep.when == "call":
        server = getattr(item, "funcargs", {}).get("hearth")
        if isinstance(server, HearthServer):
            rep.sections.append(
                (f"hearth stderr ({server.base_url})", server.stderr())
            )
    if rep.failed or (rep.when == "call" and hasattr(rep, "wasxfail")):
        # Federation tests: the tail of each server's log, from this test's start.
        shown = set()
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, FedServer) and id(value) not in shown:
                shown.add(id(value))
                rep.sections.append(
                    (f"{value.kind} log tail ({value.server_name})", value.log_tail())
                )
    return rep


# --- federation with Synapse (see federation_support.py) ---------------------------


@pytest.fixture(scope="session")
def fed_root():
    root = tempfile.mkdtemp(prefix="hearth-fed-interop-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def fed_ca(fed_root) -> TestCa:
    return TestCa(fed_root)


@pytest.fixture(scope="module")
def synapse_server(fed_ca, fed_root):
    server = start_synapse(fed_ca, fed_root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def synapse(synapse_server) -> FedServer:
    """The module's Synapse (started once per module: each test uses new users and
    rooms, and each test's Hearth is a new destination for it). Its log in failure
    reports starts at this test."""
    synapse_server.mark_log()
    return synapse_server


@pytest.fixture
def synapse_slow_retry(fed_ca, fed_root):
    """A Synapse of its own for one test, which backs off from an unreachable server
    for two hours: longer than the hour after which Synapse stops queueing events for
    it and later only sends it each room's newest events ("catch-up" mode)."""
    server = start_synapse(
        fed_ca,
        fed_root,
        {"destination_min_retry_interval": "2h", "destination_max_retry_interval": "4h"},
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hearth_fed(hearth_bin, fed_ca, fed_root):
    """A fresh Hearth named localhost:PORT serving HTTPS on that port, trusting the
    test CA and allowing loopback peers, for one test."""
    server = start_hearth(hearth_bin, fed_ca, fed_root)
    try:
        yield server
    finally:
        server.stop()
