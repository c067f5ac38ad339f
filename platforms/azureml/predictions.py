"""An evaluation's scored rows, read back from the outputs of its `model_prediction` step.

Comparisons compute their intervals, disagreements and flips from each evaluation's rows
(`platforms/comparison.py`), and on Azure those rows are files the component writes: its
`predictions` and `ground_truth` outputs (`uri_file`), JSON Lines written by pandas
(`to_json(orient="records", lines=True)`): `{"predictions": ...}` per test row, and
`{<label column>: ...}` per row of ground truth, both in test-file order. The two-step evaluation
promotes both to the pipeline job at paths of its own in the default datastore; fmbot reads the
paths back from the finished job (Azure's word on where they are) and downloads at most
OUTPUT_BYTES of each, a ranged read, keeping the rows the local platform keeps (ROW_LIMIT, clipped).
The files carry no input text, so an Azure row's input is empty.

A missing or oversized output costs the comparison its interval for that model, never the
evaluation: the reason is returned for the thread.
"""

from __future__ import annotations

import uuid
from itertools import islice
from typing import Any

import orjson
from azure.ai.ml import Output
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Job
from azure.ai.ml.exceptions import MlException
from azure.core.exceptions import AzureError, ResourceNotFoundError

from platforms.azureml.clients import AzureClients
from platforms.local.training import ROW_LIMIT, ROW_VALUE_CHARS, TaskResult

ROW_OUTPUTS = ("predictions", "ground_truth")
DATASTORE = "workspaceblobstore"  # every workspace's default blob datastore
# What the kept rows can take as JSON Lines (a value of ROW_VALUE_CHARS, escaped, with its key), for
# ROW_LIMIT rows: a longer file is read only up to here.
OUTPUT_BYTES = ROW_LIMIT * (ROW_VALUE_CHARS * 6 + 64)


def row_outputs() -> dict[str, Output]:
    """Where the pipeline job puts the step's row files: a folder of its own per submission."""
    folder = f"azureml://datastores/{DATASTORE}/paths/fmbot-evaluations/{uuid.uuid4().hex}"
    return {name: Output(type=AssetTypes.URI_FILE, path=f"{folder}/{name}.jsonl", mode="upload")
            for name in ROW_OUTPUTS}


def _text(value: Any) -> str:
    """Token tags and label sets come back as lists; comparisons read them as space-separated text."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _download(clients: AzureClients, uri: str) -> bytes:
    """The first OUTPUT_BYTES of a datastore file, through the datastore's own credentials (the SDK's
    helpers `jobs.download` ends in)."""
    from azure.ai.ml._artifacts._artifact_utilities import get_datastore_info
    from azure.ai.ml._utils._storage_utils import AzureMLDatastorePathUri, get_storage_client

    parsed = AzureMLDatastorePathUri(uri)
    storage = get_storage_client(**get_datastore_info(clients.workspace.datastores, parsed.datastore))
    blob = storage.container_client.get_blob_client(parsed.path)
    return blob.download_blob(offset=0, length=OUTPUT_BYTES).readall()


def _records(data: bytes, name: str) -> tuple[list[dict[str, Any]], bool]:
    """The file's rows (complete lines only) and whether it was cut at OUTPUT_BYTES."""
    cut = len(data) >= OUTPUT_BYTES
    lines = [line for line in (data.split(b"\n")[:-1] if cut else data.split(b"\n")) if line.strip()]
    records = [orjson.loads(line) for line in islice(lines, ROW_LIMIT)]
    if any(not isinstance(record, dict) for record in records):
        raise ValueError(f"{name} holds a row that is not a JSON object")
    if not records and cut:
        raise ValueError(f"its first row of {name} is over {OUTPUT_BYTES:,} bytes")
    return records, cut


def read_rows(clients: AzureClients, job: Job) -> tuple[list[dict[str, Any]], str | None]:
    """(rows, None), or ([], why there are none)."""
    outputs = job.outputs or {}
    uris = {name: getattr(outputs.get(name), "path", None) for name in ROW_OUTPUTS}
    missing = [name for name, uri in uris.items() if not uri]
    if missing:
        return [], (f"Azure job {job.name} has no {' or '.join(missing)} output (only the two-step "
                    "evaluation exposes model_prediction's rows)")
    records: dict[str, tuple[list[dict[str, Any]], bool]] = {}
    for name in ROW_OUTPUTS:
        try:
            records[name] = _records(_download(clients, uris[name]), name)
        except ResourceNotFoundError:
            return [], f"the {name} file of Azure job {job.name} is not in the datastore ({uris[name]})"
        except (AzureError, MlException) as exc:
            reason = str(exc.message or exc).splitlines()[0]
            return [], f"the {name} file of Azure job {job.name} could not be read ({type(exc).__name__}: {reason})"
        except ValueError as exc:
            return [], f"the rows of Azure job {job.name} were not read: {exc}"
    (predictions, cut_predictions), (truth, cut_truth) = records["predictions"], records["ground_truth"]
    if len(predictions) != len(truth) and not (cut_predictions or cut_truth) and ROW_LIMIT not in (
            len(predictions), len(truth)):
        return [], (f"the files of Azure job {job.name} do not pair up: {len(predictions)} predictions, "
                    f"{len(truth)} rows of ground truth")
    rows = [{"input": "", "reference": _text(next(iter(reference.values()), "")),
             "prediction": _text(predicted.get("predictions", ""))}
            for predicted, reference in zip(predictions, truth)]
    return TaskResult(metrics={}, rows=rows).rows, None
