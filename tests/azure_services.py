"""The real services behind the Azure stand-in: Azurite (Azure Storage) and an MLflow tracking server.

`make install` puts Azurite under `.tools/node_modules` (npm) and MLflow in its own virtual
environment `.tools/mlflow` (PyPI; MLflow 3.17 pins pyarrow<26, fmbot needs pyarrow>=26, so the two
cannot share `.venv`). Both run as child processes on free loopback ports, once per test session.

Blob uploads keep Azure's own URLs (`https://<account>.blob.core.windows.net/...`): the SDK builds
them itself, so they are routed with an HTTPS proxy (`HTTPS_PROXY`, honoured by requests) that
tunnels `*.blob.core.windows.net` to Azurite and refuses everything else. A service that cannot be
started raises `ServiceUnavailable` with the reason; tests that need one fail with it, never skip.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import BaseRequestHandler, ThreadingTCPServer
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AZURITE = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
MLFLOW = ROOT / ".tools" / "mlflow" / "bin" / "mlflow"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development account key (the same in every Azurite install).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BLOB_SUFFIX = ".blob.core.windows.net"
START_SECONDS = 90


class ServiceUnavailable(RuntimeError):
    """A real service the Azure tests need could not be started; the message says why and how to fix it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with {process.returncode}: {log.read_text()[-2000:]}")
        if check():
            return
        time.sleep(0.2)
    process.kill()
    raise ServiceUnavailable(f"{what} did not answer within {START_SECONDS}s: {log.read_text()[-2000:]}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Azurite:
    """Azurite's blob service over HTTPS with the stand-in's certificate (which names *.blob.core.windows.net)."""

    folder: Path
    cert: Path
    key: Path
    port: int = 0
    process: subprocess.Popen | None = None

    def start(self) -> Azurite:
        if not AZURITE.exists():
            raise ServiceUnavailable(f"Azurite is not installed at {AZURITE}: run `make install` (npm install azurite)")
        if shutil.which("node") is None:
            raise ServiceUnavailable("Azurite needs Node.js (`node`) on PATH")
        self.port = free_port()
        log = self.folder / "azurite.log"
        self.process = subprocess.Popen(
            [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(self.folder),
             "--cert", str(self.cert), "--key", str(self.key), "--skipApiVersionCheck", "--loose", "--silent"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        _wait(lambda: _listening(self.port), self.process, "Azurite", log)
        return self

    def stop(self) -> None:
        _stop(self.process)


@dataclass
class MlflowServer:
    """`mlflow server` with a SQLite store: the tracking REST API Azure ML's MLflow endpoint also answers."""

    folder: Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        if not MLFLOW.exists():
            raise ServiceUnavailable(f"MLflow is not installed at {MLFLOW}: run `make install` (pip install mlflow into .tools/mlflow)")
        self.port = free_port()
        log = self.folder / "mlflow.log"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--artifacts-destination", str(self.folder / "artifacts")],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        _wait(healthy, self.process, "the MLflow tracking server", log)
        return self

    def stop(self) -> None:
        _stop(self.process)


def _stop(process: subprocess.Popen | None) -> None:
    """The service and the workers it spawned: each was started in a session of its own."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class _Tunnel(BaseRequestHandler):
    """One CONNECT tunnel: Azure Storage hosts go to Azurite, anything else is refused (no internet in tests)."""

    server: BlobProxy

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, *_ = head.split(b"\r\n", 1)[0].decode().split()
        host = target.rsplit(":", 1)[0]
        if method != "CONNECT" or not host.endswith(BLOB_SUFFIX):
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.hosts.append(host)
        upstream = socket.create_connection(("127.0.0.1", self.server.azurite_port))
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        sockets = [self.request, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.request else self.request).sendall(data)
        finally:
            upstream.close()


class BlobProxy(ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, azurite_port: int):
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.azurite_port = azurite_port
        self.hosts: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@dataclass
class AzureServices:
    """What one test session shares: Azurite behind the blob proxy, and MLflow."""

    folder: Path
    cert: Path
    key: Path
    azurite: Azurite | None = None
    mlflow: MlflowServer | None = None
    proxy: BlobProxy | None = None
    errors: list[str] = field(default_factory=list)

    def start(self) -> AzureServices:
        """Both at once: MLflow takes seconds to import and open its store."""
        def run(name: str, starter: Any) -> None:
            try:
                starter()
            except ServiceUnavailable as exc:
                self.errors.append(f"{name}: {exc}")

        threads = [threading.Thread(target=run, args=item) for item in
                   (("azurite", self._start_azurite), ("mlflow", self._start_mlflow))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self

    def _start_azurite(self) -> None:
        folder = self.folder / "azurite"
        folder.mkdir(exist_ok=True)
        self.azurite = Azurite(folder, self.cert, self.key).start()
        self.proxy = BlobProxy(self.azurite.port)

    def blob_service(self) -> Any:
        """A client of Azurite as Azure Storage (its production URL, through the proxy)."""
        from azure.storage.blob import BlobServiceClient

        self.require("azurite")
        return BlobServiceClient(f"https://{AZURITE_ACCOUNT}{BLOB_SUFFIX}",
                                 credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY},
                                 connection_verify=str(self.cert), proxies={"https": self.proxy.url})

    def create_container(self, name: str) -> None:
        """Azure creates a workspace's blob container with the workspace; Azurite starts empty."""
        from azure.core.exceptions import ResourceExistsError

        try:
            self.blob_service().create_container(name)
        except ResourceExistsError:
            pass

    def _start_mlflow(self) -> None:
        folder = self.folder / "mlflow"
        folder.mkdir(exist_ok=True)
        self.mlflow = MlflowServer(folder).start()

    def require(self, name: str) -> None:
        """Fails the calling test with the reason when `name` ("azurite" or "mlflow") did not start."""
        for error in self.errors:
            if error.startswith(f"{name}:"):
                raise ServiceUnavailable(error)

    def environment(self) -> dict[str, str]:
        """Blob traffic through the proxy; ARM and MLflow calls to loopback go direct."""
        if self.proxy is None:
            return {}
        return {"HTTPS_PROXY": self.proxy.url, "https_proxy": self.proxy.url,
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    def stop(self) -> None:
        if self.proxy:
            self.proxy.shutdown()
            self.proxy.server_close()
        for service in (self.azurite, self.mlflow):
            if service:
                service.stop()
