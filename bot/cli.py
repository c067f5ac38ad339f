"""The `fmbot` command line: the same handlers as Slack, printed for a terminal or as JSON."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from bot import console
from bot.observability import configure_logging
from bot.settings import Settings
from bot.settings_reference import mask_url
from handlers.data import REGISTERED
from handlers.costs import parse_ttl
from handlers.errors import UserError, user_message
from handlers.registry import Argument, Surface, on
from platforms.base import DataRef, DeploySpec, EvaluateSpec, FinetuneSpec, Hyperparameters, ImportSpec
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
    """A file, or a reference the handlers resolve: `data:NAME[:VERSION]`, `azureml:NAME:VERSION`."""
    if path is None:
        return None
    if path.startswith(("azureml:", REGISTERED)):
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
    from handlers.finetune import FinetuneRequest, check_finetunable, prepare_finetune
    from handlers.jobs import submit

    if args.validation and args.validation_split is not None:
        raise UserError("give --validation or --validation-split, not both")
    if args.test and args.test_split is not None:
        raise UserError("give --test or --test-split, not both")
    task = parse_task(args.task)
    check_finetunable(task, lora=args.lora, platform=rt.platform)
    hyper = Hyperparameters(
        **{k: v for k, v in (("epochs", args.epochs), ("learning_rate", args.learning_rate),
                             ("batch_size", args.batch_size), ("max_length", args.max_length), ("seed", args.seed),
                             ("lora", args.lora or None))
           if v is not None}
    )
    request = FinetuneRequest(spec=FinetuneSpec(
        model=args.model,
        task=task,
        train=_data(args.train),
        validation=_data(args.validation),
        test=_data(args.test),
        split=SplitPlan(
            validation=0.0 if args.validation else _fraction(args.validation_split or "0.1"),
            test=0.0 if args.test else _fraction(args.test_split or "0.1"),
        ),
        mapping=ColumnMapping.parse(args.map, task).columns,
        hyperparameters=hyper,
        output_name=args.output_name,
        source_lang=args.source_lang,
        target_lang=args.target_lang,
        rows=settings.row_policy(args.skip_bad_rows),
    ), requester=_requester())
    request = prepare_finetune(rt, request, max_bytes=settings.max_upload_bytes)
    if args.dry_run:
        spec = request.spec
        parts = sum(1 for fraction, own in ((spec.split.validation, spec.validation), (spec.split.test, spec.test))
                    if fraction > 0 and own is None)
        return _previews(args, settings, request.spec, [(spec.train, True, parts, spec.test),
                                                        (spec.validation, True, 0, None), (spec.test, True, 0, None)],
                         spec.hyperparameters.max_length)
    return _submit(args, rt, submit(rt, request))


def _previews(args: argparse.Namespace, settings: Settings, spec: FinetuneSpec | EvaluateSpec,
              files: list[tuple[DataRef | None, bool, int, DataRef | None]], max_length: int) -> int:
    """`--dry-run`: the preview of each file a job would read, nothing queued."""
    from handlers.data import preview

    mapping = ColumnMapping.build(spec.mapping, spec.task)
    shown = [preview(ref, mapping, max_bytes=settings.max_upload_bytes, training=training, rows=spec.rows,
                     max_length=max_length, split_parts=parts, test=test)
             for ref, training, parts, test in files if ref is not None and not ref.path.startswith("azureml:")]
    if args.json:
        console.emit_json([p.model_dump(mode="json") for p in shown])
    else:
        print("\n".join(console.preview(p) for p in shown) + "\nDry run: nothing was queued.")
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.evaluate import EvaluateRequest, prepare_evaluation
    from handlers.jobs import submit

    task = parse_task(args.task)
    request = EvaluateRequest(spec=EvaluateSpec(
        model=args.model, task=task, test=_data(args.test), mapping=ColumnMapping.parse(args.map, task).columns,
        source_lang=args.source_lang, target_lang=args.target_lang, rows=settings.row_policy(args.skip_bad_rows),
        **({"max_length": args.max_length} if args.max_length is not None else {})), requester=_requester())
    request = prepare_evaluation(rt, request, max_bytes=settings.max_upload_bytes)
    if args.dry_run:
        return _previews(args, settings, request.spec, [(request.spec.test, False, 0, None)], request.spec.max_length)
    return _submit(args, rt, submit(rt, request))


def cmd_data(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers import data

    action, names = args.action, args.names
    wanted = {"list": 0, "show": 1, "register": 2, "delete": 1}
    if action not in wanted:
        raise UserError(f'"{action}" is not a data action', hint="Use list, show, register or delete")
    if len(names) != wanted[action]:
        raise UserError(f"data {action} takes {wanted[action] or 'no'} name{'s' if wanted[action] != 1 else ''}",
                        hint="fmbot data register NAME FILE · data show NAME[:VERSION] · data delete NAME:VERSION")
    if action == "list":
        infos = data.list_datasets(rt)
        console.emit_json([i.model_dump(mode="json") for i in infos]) if args.json else print(console.dataset_table(infos))
        return 0
    if action == "register":
        path = Path(names[1]).expanduser().resolve()
        info = data.register_dataset(rt, names[0], path, file_name=Path(names[1]).name,
                                     description=args.description or "", requester=_requester(),
                                     max_bytes=settings.max_upload_bytes)
    elif action == "delete":
        info = data.delete_dataset(rt, names[0], _requester(), admin=True)
    else:
        info = data.show_dataset(rt, names[0])
    if action == "show" and (args.task or args.map):
        if not (args.task and args.map):
            raise UserError("a preview needs both --task and --map")
        task = parse_task(args.task)
        shown = data.preview(rt.platform.dataset_input(info), ColumnMapping.parse(args.map, task),
                             max_bytes=settings.max_upload_bytes, max_length=args.max_length)
        if args.json:
            console.emit_json({"dataset": info.model_dump(mode="json"), "preview": shown.model_dump(mode="json")})
        else:
            print(console.dataset_details(info) + "\n" + console.preview(shown))
        return 0
    if args.json:
        console.emit_json(info.model_dump(mode="json"))
    else:
        print(("Deleted " if action == "delete" else "") + console.dataset_details(info))
    return 0


def cmd_compare(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.compare import CompareRequest, start_comparison

    task = parse_task(args.task)
    request = CompareRequest(models=args.models, task=task, test=_data(args.test),
                             mapping=ColumnMapping.parse(args.map, task), source_lang=args.source_lang,
                             target_lang=args.target_lang, requester=_requester(),
                             **({"max_length": args.max_length} if args.max_length is not None else {}))
    record = start_comparison(rt, request, max_bytes=settings.max_upload_bytes)
    if args.wait:
        record = _wait(rt, record, quiet=args.json)
    if args.json:
        console.emit_json(record.public())
    else:
        print(console.comparison(record))
        if not args.wait:
            print(f"Follow it with: fmbot status {record.id}")
    return 0 if record.state in ("queued", "running", "completed") else 1


def cmd_leaderboard(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.compare import show_leaderboard

    board = show_leaderboard(rt, args.task, " ".join(args.dataset) or None)
    console.emit_json(board.model_dump(mode="json")) if args.json else print(console.leaderboard(board))
    return 0


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


def cmd_try(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.tryout import try_model

    result = try_model(rt, args.model, " ".join(args.text), parse_task(args.task) if args.task else None,
                       in_process=True)
    console.emit_json(result.model_dump(mode="json")) if args.json else print(console.try_result(result))
    return 0


def cmd_deploy(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.deploy import DeployRequest, endpoint_for_owner, start_deploy

    request = DeployRequest(spec=DeploySpec(
        model=args.model, endpoint=args.endpoint, instances=args.instances,
        task=parse_task(args.task) if args.task else None, compute=args.compute, serverless=args.serverless,
        content_filtering=not args.no_content_filter,
        ttl_hours=parse_ttl(args.ttl) if args.ttl else None), requester=_requester())
    record = start_deploy(rt, request)
    if args.wait:
        record = _wait(rt, record, quiet=args.json)
    endpoint = endpoint_for_owner(rt, args.endpoint, _requester()) if record.state == "completed" else None
    if args.json:
        console.emit_json({"job": record.public(),
                           "endpoint": console.endpoint_json(endpoint, with_key=True) if endpoint else None})
    else:
        print(console.job_details(record))
        if endpoint:
            print(console.endpoint_details(endpoint, with_key=True))
        elif not args.wait:
            print(f"Follow it with: fmbot status {record.id}; then `fmbot endpoints --show-keys` for its URL and key")
    return 0 if record.state in ("queued", "running", "completed") else 1


def cmd_costs(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.costs import costs_report, refresh_prices

    if args.refresh_prices:
        for line in refresh_prices(rt, settings.fmbot_prices):
            console.error(f"kept the table's price of {line}")
    report = costs_report(rt, _requester())
    console.emit_json(report.model_dump(mode="json")) if args.json else print(console.cost_report(report))
    return 0


def cmd_endpoints(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.deploy import endpoint_for_owner, list_endpoints

    infos = list_endpoints(rt, owner=_requester() if args.show_keys else None)
    if args.show_keys:
        infos = [endpoint_for_owner(rt, e.name, _requester()) for e in infos]
    if args.json:
        console.emit_json([console.endpoint_json(e, with_key=args.show_keys) for e in infos])
    elif args.show_keys:
        print("\n".join(console.endpoint_details(e, with_key=True) for e in infos) or "You have no endpoints.")
    else:
        print(console.endpoint_table(infos))
    return 0


def cmd_rotate_key(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.deploy import rotate_endpoint_key

    info = rotate_endpoint_key(rt, args.name, _requester())
    if args.json:
        console.emit_json(console.endpoint_json(info, with_key=True))
    else:
        print(f"New key for {info.name}; the old one no longer works.")
        print(console.endpoint_details(info, with_key=True))
    return 0


def cmd_delete_endpoint(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.deploy import delete_endpoint

    info = delete_endpoint(rt, args.name, _requester())
    console.emit_json(console.endpoint_json(info)) if args.json else print(f"Deleted endpoint {info.name}.")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from handlers.imports import ImportRequest, start_import

    request = ImportRequest(spec=ImportSpec(model_id=args.model_id, task=args.task, source=args.source,
                                            license=args.license, name=args.name), requester=_requester())
    return _submit(args, rt, start_import(rt, request))


def cmd_worker(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    from bot.worker import run_worker, supervise

    if args.processes:
        return supervise(args.processes, command=[sys.executable, "-m", "bot.cli", "worker"]
                         + (["--burst"] if args.burst else []))
    return run_worker(settings, rt, burst=args.burst)


def cmd_serve(args: argparse.Namespace, settings: Settings, rt: Runtime) -> int:
    if args.teams:
        try:
            from bot.teams.serve import serve_teams
        except ModuleNotFoundError as exc:
            raise UserError(f"Teams support is not installed ({exc.name} is missing)",
                            hint="pip install 'fmbot[teams]'") from None
        return serve_teams(settings, rt, host=args.host, port=args.port or 3978, dev=args.dev)
    from bot.serve import serve

    return serve(settings, rt, host=args.host, port=args.port or 3000, socket_mode=args.socket)


def cmd_doctor(args: argparse.Namespace, settings: Settings, rt: Runtime | None) -> int:
    from bot.doctor import run_checks, table

    checks = run_checks(settings, azure_only=args.azure)
    console.emit_json([c.model_dump() for c in checks]) if args.json else print(table(checks))
    return 1 if any(c.status == "problem" for c in checks) else 0


def cmd_config(args: argparse.Namespace, settings: Settings, rt: Runtime | None) -> int:
    from bot.settings_reference import effective_config, env_example

    if args.env_example:
        print(env_example(), end="")
    elif args.json:
        console.emit_json(effective_config(settings))
    else:
        print("\n".join(f"{name}={value or ''}" for name, value in effective_config(settings).items()))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings, rt: Runtime | None) -> int:
    from bot.demo import run_demo

    return run_demo(settings)


# How the CLI runs each command of the registry it offers; `test_registry` keeps the two equal.
RUNNERS = {
    "search": cmd_models, "card": cmd_card, "finetune": cmd_finetune, "evaluate": cmd_evaluate, "data": cmd_data,
    "jobs": cmd_jobs, "compare": cmd_compare, "leaderboard": cmd_leaderboard,
    "status": cmd_status, "cancel": cmd_cancel, "try": cmd_try, "deploy": cmd_deploy, "endpoints": cmd_endpoints, "costs": cmd_costs,
    "rotate-key": cmd_rotate_key, "delete-endpoint": cmd_delete_endpoint, "import": cmd_import, "worker": cmd_worker,
    "serve": cmd_serve,
    "demo": cmd_demo, "doctor": cmd_doctor, "config": cmd_config,
}
WITHOUT_RUNTIME = {"demo", "doctor", "config"}
ARGUMENT_KINDS = {"int": {"type": int}, "float": {"type": float}, "switch": {"action": "store_true"}, "text": {}}


def _argument_options(argument: Argument) -> dict[str, Any]:
    options: dict[str, Any] = dict(ARGUMENT_KINDS[argument.kind])
    if argument.many:
        options["nargs"] = "*"
    if argument.required:
        options["required"] = True
    for name in ("help", "default", "dest", "metavar"):
        if getattr(argument, name) is not None:
            options[name] = getattr(argument, name)
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmbot", description="Foundation models from Slack, or from here.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in on(Surface.CLI):
        p = sub.add_parser(command.name, aliases=list(command.aliases), help=command.summary,
                           description=command.summary)
        p.set_defaults(handler=RUNNERS[command.name], registry_name=command.name)
        for argument in command.arguments:
            p.add_argument(argument.flag, **_argument_options(argument))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    try:
        if args.registry_name in WITHOUT_RUNTIME:
            return args.handler(args, settings, None)
        from bot.bootstrap import build_runtime

        return args.handler(args, settings, build_runtime(settings))
    except KeyboardInterrupt:
        return 130
    except RedisConnectionError:
        console.error(f"cannot reach Redis at {mask_url(settings.redis_url)}. Start Redis, or set REDIS_URL to where it runs")
        return 2
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            raise
        console.error(message)
        return 2


if __name__ == "__main__":
    sys.exit(main())
