"""Metrics of a finished pipeline job, read from its MLflow runs.

Azure ML records every step of a pipeline as an MLflow run whose `mlflow.rootRunId` tag is the
pipeline job's name; the fine-tune step logs training metrics (`train_loss`, `eval_loss`, ...) and
`compute_metrics` logs the evaluation metrics under Azure's names (`accuracy`, `f1_score_macro`).
They are read with the workspace's MLflow REST API, so fmbot needs no `azureml-mlflow` plugin.
"""

from __future__ import annotations

from typing import Any

from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import AzureNotFound, call

EXPERIMENT = "fmbot"


def tracking_url(clients: AzureClients) -> str:
    """`azureml://<region>.api.azureml.ms/mlflow/v1.0/<workspace id>` as an https base URL."""
    workspace = call(lambda: clients.workspace.workspaces.get(clients.target.workspace), what="read the workspace")
    uri = workspace.mlflow_tracking_uri or ""
    return uri.replace("azureml://", "https://", 1)


def job_metrics(clients: AzureClients, job_name: str) -> dict[str, float]:
    """The latest value of every metric any run of the job logged (steps log distinct names)."""
    base = f"{tracking_url(clients)}/api/2.0/mlflow"
    scope = clients.aml_scope
    try:
        experiment = call(lambda: clients.rest("GET", f"{base}/experiments/get-by-name", scope=scope,
                                               params={"experiment_name": EXPERIMENT}),
                          what="read the fmbot experiment")
    except AzureNotFound:
        return {}
    search = {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 1000,
              "filter": f"tags.mlflow.rootRunId = '{job_name}'"}
    runs: list[dict[str, Any]] = call(
        lambda: clients.rest("POST", f"{base}/runs/search", search, scope=scope).get("runs", []),
        what=f"read the runs of job {job_name}")
    metrics: dict[str, tuple[int, float]] = {}
    for run in runs:
        for metric in run.get("data", {}).get("metrics", []):
            stamp = int(metric.get("timestamp", 0))
            if metric["key"] not in metrics or stamp >= metrics[metric["key"]][0]:
                metrics[metric["key"]] = (stamp, float(metric["value"]))
    return {key: value for key, (_, value) in sorted(metrics.items())}
