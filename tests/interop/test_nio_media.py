"""Interop: matrix-nio uploads a file and another user downloads it back.

nio 0.26 uploads with POST /_matrix/media/v3/upload and downloads through the
authenticated /_matrix/client/v1/media/download endpoint (it passes the access
token), so the server runs with its default settings: the unauthenticated
legacy endpoints stay frozen.
"""

import asyncio
import hashlib
import os
import tempfile

from nio_support import registered
from nio import (
    ContentRepositoryConfigResponse,
    DownloadError,
    MemoryDownloadResponse,
    UploadResponse,
)


def test_nio_upload_and_download_round_trip(hearth):
    async def scenario():
        alice = await registered(hearth, "mediaalice", "nio media")
        bob = await registered(hearth, "mediabob", "nio media")
        try:
            data = os.urandom(3 * 1024 * 1024 + 17)
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.seek(0)
                uploaded, _ = await alice.upload(
                    f,
                    content_type="application/zip",
                    filename="archive €.zip",
                    filesize=len(data),
                )
            assert isinstance(uploaded, UploadResponse), f"upload failed: {uploaded!r}"
            assert uploaded.content_uri.startswith(f"mxc://{hearth.server_name}/")

            got = await bob.download(uploaded.content_uri)
            assert isinstance(got, MemoryDownloadResponse), f"download failed: {got!r}"
            assert len(got.body) == len(data)
            assert hashlib.sha256(got.body).digest() == hashlib.sha256(data).digest()
            assert got.content_type == "application/zip"
            # Sent as filename*=UTF-8''... since it is not plain ASCII.
            assert got.filename == "archive €.zip"

            renamed = await bob.download(uploaded.content_uri, filename="renamed.zip")
            assert isinstance(renamed, MemoryDownloadResponse), f"{renamed!r}"
            assert renamed.filename == "renamed.zip"
            assert renamed.body == data

            config = await alice.content_repository_config()
            assert isinstance(config, ContentRepositoryConfigResponse), f"{config!r}"
            assert config.upload_size == 50 * 1024 * 1024

            missing = await bob.download(f"mxc://{hearth.server_name}/NoSuchMedia")
            assert isinstance(missing, DownloadError), f"{missing!r}"
            assert missing.status_code == "M_NOT_FOUND"
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())
