"""A SeaweedFS S3 store for a test session: every emulator in the tests keeps its S3 data there,
as every local deployment does (moto's in-memory S3 is not used by any fixture)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smgt.embedded import free_port
from smgt.local.emulator import S3Store
from smgt.local.seaweedfs import SeaweedFS


@contextmanager
def seaweedfs_store(data_dir: Path) -> Iterator[S3Store]:
    """Start SeaweedFS on a free port in `data_dir`; yield its endpoint and keys; stop it after."""
    store = SeaweedFS(data_dir, s3_port=free_port(), access_key="test" + secrets.token_hex(6),
                      secret_key=secrets.token_urlsafe(24))
    store.start()
    try:
        yield S3Store(store.endpoint_url, store.access_key, store.secret_key)
    finally:
        store.stop()
