"""Local endpoints: a record in Redis per endpoint, served by detached processes (see `serving.py`).

Redis keys (platforms import nothing from workers, so they are built here; `workers/keys.py` lists
them with every other key fmbot writes):

    fmbot:endpoint:{name}       JSON EndpointRecord of one local endpoint (its key's hash, never the key)
    fmbot:endpoints             set of local endpoint names
    fmbot:endpoint:key:{name}   the key of a new (or rotated) endpoint until its owner picks it up (GETDEL; expires)

The record, not the process that deployed it, is the source of truth: a worker that restarts finds
its endpoints again, and an endpoint whose process is gone (or stops answering) is reported as
stopped (or unhealthy) until someone deletes it, never silently dropped. The name is claimed with
SET NX before anything starts, so two deploys of one name cannot both win. The record names the host
its processes run on: only a process on that host can stop them, so deleting one from elsewhere is a
job on that host's queue (`workers.queues.host_queue`).

Keys: the plaintext key exists once, in a pickup slot its owner reads and deletes in one GETDEL
(rotating writes a new one). The record and the serving processes hold only its SHA-256 hash, the
processes in a 0600 file next to the endpoint's state that they re-read when it changes, so a
rotation takes effect at once without a restart and a Redis dump or a process's environment
gives nobody a working key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, model_validator
from redis import Redis

from platforms.base import DeploySpec, EndpointInfo, EndpointState, ModelCard, PlatformError
from platforms.local.library_logs import route_library_logs
from platforms.local.task_contract import TaskModule
from platforms.local.task_modules import TASK_MODULES
from platforms.tasks import Task

log = logging.getLogger(__name__)
PREFIX = "fmbot"
KEY_PICKUP_SECONDS = 24 * 3600  # an owner who misses the pickup rotates the key to get one
PROJECT_ROOT = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 15.0


def endpoint_key(name: str) -> str:
    return f"{PREFIX}:endpoint:{name}"


def endpoints_key() -> str:
    return f"{PREFIX}:endpoints"


def key_pickup_key(name: str) -> str:
    return f"{PREFIX}:endpoint:key:{name}"


def hash_key(key: str) -> str:
    """SHA-256 of an endpoint key, unsalted and fast on purpose: a key is 32 random bytes
    (`secrets.token_urlsafe(32)`), so there is nothing to guess and nothing for a slow or salted
    password hash to protect; what matters is that the stored hash opens nothing."""
    return hashlib.sha256(key.encode()).hexdigest()


def write_key_hash(path: Path, key_hash: str) -> None:
    """Replace the hash file atomically (a reader sees the old hash or the new, never half of one),
    readable by this user only."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key_hash)
    tmp.replace(path)


class KeyHashFile:
    """The serving processes' view of an endpoint's key: its hash file, re-read whenever it was
    replaced (its inode or mtime changed), so a rotated key works, and the old one fails, from the
    next request on. One `stat` per request is the cost."""

    def __init__(self, path: Path):
        self.path, self.seen, self.key_hash = Path(path), None, ""

    def matches(self, key: str) -> bool:
        try:
            stat = self.path.stat()
            if (stat.st_ino, stat.st_mtime_ns) != self.seen:
                self.key_hash, self.seen = self.path.read_text().strip(), (stat.st_ino, stat.st_mtime_ns)
        except FileNotFoundError:
            self.key_hash, self.seen = "", None
        return bool(self.key_hash) and hmac.compare_digest(hash_key(key).encode(), self.key_hash.encode())


def predictor_module(task: Task) -> TaskModule:
    """The local task module that predicts for `task`; chat-completion is served by text-generation."""
    route_library_logs()
    module = TASK_MODULES.get(task)
    if module is None and task == Task.CHAT_COMPLETION:
        module = TASK_MODULES.get(Task.TEXT_GENERATION)
    if module is None or not hasattr(module, "load_predictor"):
        served = ", ".join(t for t, m in TASK_MODULES.items() if hasattr(m, "load_predictor"))
        raise PlatformError(f"the local platform cannot run {task} models yet", hint=f"It runs: {served}")
    return module


def input_limit(model_dir: Path, wanted: int = 256) -> int:
    """`wanted`, capped at the tokenizer's own `model_max_length`: truncating to more positions than a
    model has (128 for small test models) would crash it on long inputs instead of cutting them."""
    try:
        limit = json.loads((Path(model_dir) / "tokenizer_config.json").read_text()).get("model_max_length")
    except (FileNotFoundError, json.JSONDecodeError):
        return wanted
    return min(wanted, int(limit)) if isinstance(limit, (int, float)) and 0 < limit < 1_000_000 else wanted


class EndpointRecord(BaseModel):
    name: str
    model: str
    task: Task
    instances: int
    key_hash: str
    owner: str | None = None
    host: str | None = None  # where its processes run: their pids mean nothing on another host
    phase: Literal["creating", "running"] = "creating"
    port: int | None = None
    pid: int | None = None
    log_file: str
    state_file: str
    created_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _hash_a_stored_key(cls, data: Any) -> Any:
        """A record written before keys were hashed holds the key itself: it is read as its hash
        (and `LocalEndpoints._load` writes it back so)."""
        if isinstance(data, dict) and "key" in data and "key_hash" not in data:
            data = {**data, "key_hash": hash_key(data.pop("key"))}
        return data

    @property
    def key_file(self) -> Path:
        return Path(self.state_file).with_suffix(".key")


# What a serving process needs from the worker's environment: the system's, Python's, the model
# libraries' and the accelerator's. Never Slack tokens, Redis URLs or Azure credentials: a model's
# own code runs in that process.
SERVING_ENV_PREFIXES = ("HF_", "TRANSFORMERS_", "TOKENIZERS_", "TORCH", "CUDA_", "NVIDIA_", "OMP_", "MKL_", "LC_",
                        "PYTHON", "VIRTUAL_ENV")
SERVING_ENV_NAMES = {"PATH", "HOME", "LANG", "TMPDIR", "TZ", "USER", "LD_LIBRARY_PATH", "FMBOT_LOG_LEVEL"}


def serving_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k in SERVING_ENV_NAMES or k.startswith(SERVING_ENV_PREFIXES)}


def _alive(pid: int | None) -> bool:
    """Whether `pid` is still one of our serving processes (reaping it first if it is our own child)."""
    if not pid:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return b"platforms.local.serving" in cmdline.read_bytes()
    except FileNotFoundError:
        return not Path("/proc").is_dir()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=HEALTH_TIMEOUT_S) as response:
            return response.status == 200
    except OSError:
        return False


def _served_state(record: EndpointRecord) -> dict[str, Any]:
    """What the supervisor wrote once serving: its port and the serving processes' pids."""
    try:
        return json.loads(Path(record.state_file).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except FileNotFoundError:
        return "no log"


def _signal(pids: list[int | None], sig: signal.Signals) -> None:
    """Send `sig` to those of `pids` still alive and wait (up to STOP_TIMEOUT_S) for them to go."""
    members = [pid for pid in pids if pid and _alive(pid)]
    for pid in members:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and any(_alive(pid) for pid in members):
        time.sleep(0.05)


class LocalEndpoints:
    def __init__(self, redis: Redis, run_dir: Path, *, start_timeout: float = 600.0):
        self.redis, self.run_dir, self.start_timeout = redis, Path(run_dir), start_timeout

    def _save(self, record: EndpointRecord, *, claim: bool = False) -> bool:
        saved = self.redis.set(endpoint_key(record.name), record.model_dump_json(), nx=claim)
        self.redis.sadd(endpoints_key(), record.name)
        return bool(saved)

    def _record(self, name: str) -> EndpointRecord:
        raw = self.redis.get(endpoint_key(name))
        if raw is None:
            names = sorted(n.decode() for n in self.redis.smembers(endpoints_key()))
            raise PlatformError(f'there is no endpoint "{name}"',
                                hint=f"Endpoints: {', '.join(names)}" if names else "No endpoints are deployed")
        return self._load(raw)

    def _load(self, raw: bytes) -> EndpointRecord:
        record = EndpointRecord.model_validate_json(raw)
        if b'"key_hash"' not in raw:
            self.redis.set(endpoint_key(record.name), record.model_dump_json(), xx=True)
        return record

    def deploy(self, spec: DeploySpec, card: ModelCard, task: Task, model_dir: Path) -> EndpointInfo:
        predictor_module(task)
        token = secrets.token_hex(4)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        record = EndpointRecord(
            name=spec.endpoint, model=card.ref, task=task, instances=spec.instances, key_hash=hash_key(key),
            owner=spec.owner, host=socket.gethostname(), log_file=str(self.run_dir / f"{spec.endpoint}-{token}.log"),
            state_file=str(self.run_dir / f"{spec.endpoint}-{token}.json"), created_at=datetime.now(UTC),
        )
        if not self._save(record, claim=True):
            raise PlatformError(f'an endpoint named "{spec.endpoint}" already exists',
                                hint="Pick another name, or delete that endpoint first",
                                remedy=("delete-endpoint", spec.endpoint))
        command = [
            sys.executable, "-m", "platforms.local.serving", "--model-dir", str(model_dir), "--model", card.ref,
            "--task", task, "--instances", str(spec.instances), "--max-batch-size", str(spec.max_batch_size),
            "--max-wait-ms", str(spec.max_wait_ms), "--state-file", record.state_file,
            "--start-timeout", str(self.start_timeout), "--key-file", str(record.key_file),
        ]
        write_key_hash(record.key_file, record.key_hash)
        path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**serving_environment(os.environ), "PYTHONPATH": path}
        with open(record.log_file, "ab") as output:
            process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        record.pid = process.pid
        self._save(record)
        state_file = Path(record.state_file)
        deadline = time.monotonic() + self.start_timeout
        while not state_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                self._stop(record)
                self._forget(record)
                # The log's lines and path stay in the worker's log: a channel learns only that it failed.
                log.error("endpoint %s did not start; %s: %s", spec.endpoint, record.log_file,
                          _tail(Path(record.log_file)))
                raise PlatformError(f'endpoint "{spec.endpoint}" did not start',
                                    hint="Check that the model loads (`fmbot try`); an admin finds why in the worker's log")
            time.sleep(0.1)
        record.port = json.loads(state_file.read_text())["port"]
        record.phase = "running"
        self._save(record)
        self.redis.set(key_pickup_key(record.name), key, ex=KEY_PICKUP_SECONDS)
        return self._info(record)

    def _pids(self, record: EndpointRecord) -> list[int]:
        return list(_served_state(record).get("pids", []))

    def _info(self, record: EndpointRecord) -> EndpointInfo:
        alive = _alive(record.pid)
        if record.phase == "creating" and alive and _served_state(record).get("port"):
            # The deploy that started it died before recording readiness (a worker restart): adopt it.
            record = record.model_copy(update={"phase": "running", "port": _served_state(record)["port"]})
            self._save(record)
        message = None
        if record.phase == "creating":
            state = EndpointState.CREATING if alive else EndpointState.STOPPED
            if not alive:
                message = "the deploy stopped before the endpoint was ready; delete it and deploy again"
        elif not alive:
            state = EndpointState.STOPPED
            message = f"its serving process (pid {record.pid}) is gone; delete it and deploy again"
        elif _healthy(record.port):
            state = EndpointState.HEALTHY
        else:
            state = EndpointState.UNHEALTHY
            message = f"pid {record.pid} runs but /health does not answer; see {record.log_file}"
        return EndpointInfo(
            name=record.name, model=record.model, task=record.task,
            url=f"http://127.0.0.1:{record.port}/score" if record.port else None, state=state,
            instances=record.instances, pid=record.pid, pids=self._pids(record) if alive else [], owner=record.owner,
            created_at=record.created_at, message=message, host=record.host,
        )

    def get(self, name: str) -> EndpointInfo:
        return self._info(self._record(name))

    def log_files(self) -> set[str]:
        """The logs live endpoints write to (read from their records, without probing them)."""
        names = [n.decode() for n in self.redis.smembers(endpoints_key())]
        raws = self.redis.mget([endpoint_key(n) for n in names]) if names else []
        return {EndpointRecord.model_validate_json(raw).log_file for raw in raws if raw}

    def list(self) -> list[EndpointInfo]:
        infos = []
        for raw_name in sorted(self.redis.smembers(endpoints_key())):
            name = raw_name.decode()
            raw = self.redis.get(endpoint_key(name))
            if raw is None:
                self.redis.srem(endpoints_key(), name)
                continue
            infos.append(self._info(self._load(raw)))
        return infos

    def _stop(self, record: EndpointRecord) -> None:
        """SIGTERM the supervisor (it stops its serving processes), then signal whatever is left.

        Pids are signalled one by one after `_alive` checked each is still ours, so a pid reused by
        an unrelated process after a crash is never hit."""
        _signal([record.pid], signal.SIGTERM)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            _signal([record.pid, *self._pids(record)], sig)

    def _forget(self, record: EndpointRecord) -> None:
        self.redis.delete(endpoint_key(record.name), key_pickup_key(record.name))
        self.redis.srem(endpoints_key(), record.name)
        Path(record.state_file).unlink(missing_ok=True)
        record.key_file.unlink(missing_ok=True)

    def pick_up_key(self, name: str) -> str | None:
        """The endpoint's key if nobody has picked it up yet (read and deleted at once: a second
        pickup, a retried click included, gets None)."""
        self._record(name)
        key = self.redis.getdel(key_pickup_key(name))
        return key.decode() if key is not None else None

    def rotate_key(self, name: str) -> EndpointInfo:
        """A new key, waiting for its owner in the pickup slot; the old one stops working as the hash
        file is replaced, before the record says so, so no moment accepts both or neither. Only a
        process on the endpoint's host can reach that file."""
        record = self._record(name)
        if record.host not in (None, socket.gethostname()):
            raise PlatformError(f"{name} runs on {record.host}; its key can be rotated only there")
        if not record.key_file.exists():
            raise PlatformError(f"{name} was deployed before fmbot kept keys hashed, so its processes cannot take "
                                "a new key", hint="Delete it and deploy it again; the new endpoint's key can be rotated")
        key = secrets.token_urlsafe(32)
        record.key_hash = hash_key(key)
        write_key_hash(record.key_file, record.key_hash)
        self.redis.set(endpoint_key(name), record.model_dump_json(), xx=True)
        self.redis.set(key_pickup_key(name), key, ex=KEY_PICKUP_SECONDS)
        return self._info(record)

    def delete(self, name: str) -> EndpointInfo:
        record = self._record(name)
        self._stop(record)
        self._forget(record)
        info = self._info(record)
        return info.model_copy(update={"state": EndpointState.STOPPED, "message": None, "pids": []})
