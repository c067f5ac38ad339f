"""Real `fmbot worker` processes for tests, forked from one process that has imported torch and
transformers already.

A worker imports torch and transformers before it forks a work horse per job, which costs 5-13 s
of CPU on a 2-core machine; a test session starts a dozen workers. multiprocessing's forkserver
pays for those imports once and forks each worker from there, the way the worker itself forks its
horses. What runs is unchanged: `bot.cli.main(["worker"])` with the environment, working folder
and log a subprocess would get, in a process of its own that tests can signal and kill.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PRELOAD = ["bot.cli", "bot.bootstrap", "bot.worker", "workers.jobs", "torch", "transformers",
           "transformers.trainer", "tests.worker_process"]
_FORKSERVER = multiprocessing.get_context("forkserver")
_FORKSERVER.set_forkserver_preload(PRELOAD)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build the same Settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "FMBOT_", "AZURE"))}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[name.upper()] = str(value)
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run_worker(env: dict[str, str], log: str) -> None:
    handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
    os.chdir(ROOT)
    os.environ.clear()
    os.environ.update(env)
    from bot.cli import main

    raise SystemExit(main(["worker"]))


class _ForkedWorker(_FORKSERVER.Process):  # type: ignore[name-defined]
    def poll(self) -> int | None:
        """Popen's question: the exit status, or None while it runs."""
        return self.exitcode


class WorkerProcess:
    def __init__(self, settings: Settings, log: Path):
        self.settings, self.log = settings, log
        self.process: _ForkedWorker | None = None

    def start(self) -> WorkerProcess:
        self.process = _ForkedWorker(target=_run_worker, args=(settings_env(self.settings), str(self.log)),
                                     daemon=False)
        self.process.start()
        return self

    def stop(self) -> None:
        """A job still running is not waited for: a second SIGTERM is RQ's cold shutdown, which
        kills the work horse (the warm one waited out its 20 s for a job on a loaded machine, in
        four tests' teardowns of a full run)."""
        if self.process and self.process.exitcode is None:
            self.process.terminate()
            self.process.join(timeout=2)
            if self.process.exitcode is None:
                self.process.terminate()
                self.process.join(timeout=20)
            if self.process.exitcode is None:
                self.process.kill()
                self.process.join()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
