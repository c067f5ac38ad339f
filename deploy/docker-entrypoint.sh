#!/bin/sh
# `serve` (the default) runs the Slack app on :3000, `worker` an RQ worker; any other fmbot
# subcommand (doctor, config, jobs, ...) runs once; anything else is executed as given (e.g. sh).
set -e
case "${1:-serve}" in
    serve) shift 2>/dev/null || true; exec fmbot serve --host 0.0.0.0 --port "${PORT:-3000}" "$@" ;;
    worker|doctor|config|models|card|jobs|status|cancel|finetune|evaluate|demo) exec fmbot "$@" ;;
    *) exec "$@" ;;
esac
