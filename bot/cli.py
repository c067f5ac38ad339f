"""The `fmbot` command line: the same handlers as Slack, printed for a terminal or as JSON."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import time
from pathlib import Path

from bot import console
from bot.settings import Settings
from handlers.errors import UserError, user_message
from platforms.base import DataRef, Hyperparameters
from platforms.datasets import ColumnMapping, SplitPlan
from platforms.tasks import parse_task
from workers.ledger import JobRecord
from workers.runtime import Runtime

WAIT_POLL_SECONDS = 0.5


def _fraction(text: str) -> float:
    """`0.2`, `20` and `20%` all mean a fifth."""
    value = float(text.rstrip("%"))
    return value / 100 if value >= 1 or text.endswith("%") else value


def _data(path: str | None) -> DataRef | None:
    if path is None:
        return None
    if path.startswith("azureml:"):
        return DataRef(path=path, name=path)
    resolved = Path(path).expanduser().resolve()
    return DataRef(path=str(resolved), name=Path(path).name)


def _requester() -> str:
    return f"cli:{getpass.getuser()}"


def _wait(rt: Runtime, record: JobRecord, *, quiet: bool) -> JobRecord:
    """Follow a job in the ledger until it is final, printing progress to stderr."""
    from rq import Worker

    last, warned, started = "", False, time.monotonic()
    while not record.state.final:
        time.sleep(WAIT_POLL_SECONDS)
        record = rt.ledger.get(record.id)
        line = console.job_line(record)
        if line != last and not quiet:
            print(line, file=sys.stderr, flush=True)
            last = line
        if not warned and record.state == "queued" and time.monotonic() - started > 10:
            if Worker.count(connection=rt.redis, queue=rt.queue) == 0:
                console.error("no worker is running; start one with `fmbot worker` (the job stays queued)")
            warned = True
    return record


def _submit(args: argparse.Namespace, rt: Runtime, record: JobRecord) -> int:
    if args.wait:
        record = _wait(rt, record, quiet=args.json)
    if args.json:
        console.emit_json(record.public())
    else:
        print(console.job_details(record))
        if not args.wait:
            print(f"Follow it with: fmbot status {record.id}")
    return 0 if record.state in ("queued", "running", "completed") else 1


def cmd_models(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.catalog import search_models

    cards = search_models(rt, " ".join(args.words), parse_task(args.task) if args.task else None)
    if args.json:
        console.emit_json([c.model_dump(mode="json") for c in cards])
    else:
        print(console.model_table(cards))
    return 0


def cmd_card(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.catalog import model_card

    card = model_card(rt, args.model)
    if args.json:
        console.emit_json(card.model_dump(mode="json"))
    else:
        print(console.model_card(card))
    return 0


def cmd_finetune(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.finetune import FinetuneRequest, start_finetune

    if args.validation and args.validation_split is not None:
        raise UserError("give --validation or --validation-split, not both")
    if args.test and args.test_split is not None:
        raise UserError("give --test or --test-split, not both")
    task = parse_task(args.task)
    hyper = Hyperparameters(
        **{k: v for k, v in (("epochs", args.epochs), ("learning_rate", args.learning_rate),
                             ("batch_size", args.batch_size), ("max_length", args.max_length), ("seed", args.seed))
           if v is not None}
    )
    request = FinetuneRequest(
        model=args.model,
        task=task,
        train=_data(args.train),
        validation=_data(args.validation),
        test=_data(args.test),
        split=SplitPlan(
            validation=0.0 if args.validation else _fraction(args.validation_split or "0.1"),
            test=0.0 if args.test else _fraction(args.test_split or "0.1"),
        ),
        mapping=ColumnMapping.parse(args.map, task),
        hyperparameters=hyper,
        output_name=args.output_name,
        requester=_requester(),
    )
    return _submit(args, rt, start_finetune(rt, request, max_bytes=settings.max_upload_bytes))


def cmd_evaluate(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.evaluate import EvaluateRequest, start_evaluation

    task = parse_task(args.task)
    request = EvaluateRequest(model=args.model, task=task, test=_data(args.test),
                              mapping=ColumnMapping.parse(args.map, task), requester=_requester())
    return _submit(args, rt, start_evaluation(rt, request, max_bytes=settings.max_upload_bytes))


def cmd_jobs(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.jobs import list_jobs

    records = list_jobs(rt, limit=args.limit)
    if args.json:
        console.emit_json([r.public() for r in records])
    else:
        print("\n".join(console.job_line(r) for r in records) or "No jobs yet.")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.jobs import job_status

    record = job_status(rt, args.job)
    if args.json:
        console.emit_json(record.public())
    else:
        print(console.job_details(record))
    return 0


def cmd_cancel(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.jobs import cancel_job

    record = cancel_job(rt, args.job, _requester())
    console.emit_json(record.public()) if args.json else print(console.job_line(record))
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from bot.worker import run_worker

    return run_worker(settings, rt, burst=args.burst)


def cmd_serve(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from bot.serve import serve

    return serve(settings, rt, host=args.host, port=args.port, socket_mode=args.socket)


def cmd_demo(args: argparse.Namespace, settings: Settings, rt: Runtime | None) -> int:
    from bot.demo import run_demo

    return run_demo(settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmbot", description="Foundation models from Slack, or from here.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str, *, json_flag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON")
        return p

    p = command("models", cmd_models, "list the model catalog (optionally filtered)")
    p.add_argument("words", nargs="*", help="words the name or description must contain")
    p.add_argument("--task", help="only models for this task")

    p = command("card", cmd_card, "show a model's card")
    p.add_argument("model", help="NAME or NAME:VERSION")

    p = command("finetune", cmd_finetune, "fine-tune a catalog model on your data")
    p.add_argument("model", help="NAME or NAME:VERSION")
    p.add_argument("--task", required=True, help="e.g. text-classification")
    p.add_argument("--train", required=True, help="training data: JSONL, JSON, CSV or TSV file")
    p.add_argument("--validation", help="validation file (default: split off the training data)")
    p.add_argument("--validation-split", help="fraction or percent of training data for validation (default 0.1)")
    p.add_argument("--test", help="test file (default: split off the training data)")
    p.add_argument("--test-split", help="fraction or percent of training data for testing (default 0.1)")
    p.add_argument("--map", required=True, help="KEY=COLUMN[,KEY=COLUMN...], e.g. sentence1=review,label=stars")
    p.add_argument("--epochs", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--output-name", help="catalog name of the fine-tuned model (default NAME-ft)")
    p.add_argument("--wait", action="store_true", help="follow the job and print its final record")

    p = command("evaluate", cmd_evaluate, "score a catalog model on your test data")
    p.add_argument("model", help="NAME or NAME:VERSION")
    p.add_argument("--task", required=True)
    p.add_argument("--test", required=True, help="test data file")
    p.add_argument("--map", required=True, help="KEY=COLUMN[,KEY=COLUMN...]")
    p.add_argument("--wait", action="store_true")

    p = command("jobs", cmd_jobs, "list recent jobs")
    p.add_argument("--limit", type=int, default=20)

    p = command("status", cmd_status, "show one job")
    p.add_argument("job")

    p = command("cancel", cmd_cancel, "cancel a queued or running job you started")
    p.add_argument("job")

    p = command("worker", cmd_worker, "run an RQ worker for fmbot's jobs", json_flag=False)
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")

    p = command("serve", cmd_serve, "serve Slack over HTTP (/slack/events) or Socket Mode", json_flag=False)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--socket", action="store_true", help="use Socket Mode (needs SLACK_APP_TOKEN)")

    command("demo", cmd_demo, "fine-tune MiniLM-L6 end to end on this machine", json_flag=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.fmbot_log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "demo":
            return args.handler(args, settings, None)
        from bot.runtime import build_runtime

        return args.handler(args, settings, build_runtime(settings))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            raise
        console.error(message)
        return 2


if __name__ == "__main__":
    sys.exit(main())
