"""Registered datasets on Azure ML: `uri_file` data assets through azure-ai-ml's `ml_client.data`,
against the stand-in serving the 2024-10-01 DataVersion and DataContainer examples; the file really
goes to blob storage (Azurite)."""

from __future__ import annotations

import pytest

from handlers.data import delete_dataset, list_datasets, register_dataset, registered_ref, show_dataset
from platforms.base import DataRef
from tests.azure_fixtures import *  # noqa: F403  (fixtures)
from tests.azure_services import AzureServices
from tests.azure_standin import AzureStandIn
from tests.test_data import EMOTIONS, SST2


def test_data_assets_are_registered_listed_pinned_and_archived(azure: AzureStandIn, services: AzureServices,
                                                               worker_runtime) -> None:
    services.require("azurite")
    rt, _ = worker_runtime
    info = register_dataset(rt, "emotions", EMOTIONS, description="GoEmotions dev, first rows", requester="U1")
    assert (info.ref, info.rows, info.columns, info.registered_by) == ("emotions:1", 185, ["text", "labels", "id"], "U1")
    put = azure.calls("PUT", "/data/emotions/versions/1")[0]
    assert put.body["properties"]["dataType"] == "uri_file"
    assert put.body["properties"]["dataUri"].startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
    assert put.body["properties"]["dataUri"].endswith("/goemotions_dev_head.tsv")
    assert register_dataset(rt, "emotions", EMOTIONS, requester="U1").ref == "emotions:1", "same bytes, same version"
    assert register_dataset(rt, "emotions", SST2, requester="U1").ref == "emotions:2"

    assert [d.ref for d in list_datasets(rt)] == ["emotions:1", "emotions:2"]
    pinned = registered_ref(rt, DataRef(path="data:emotions", name="data:emotions"))
    assert (pinned.path, pinned.dataset) == ("azureml:emotions:2", "emotions:2")
    with pytest.raises(Exception, match="registered by someone else"):
        delete_dataset(rt, "emotions:2", "U2")
    delete_dataset(rt, "emotions:2", "U1")
    assert azure.calls("PUT", "/data/emotions/versions/2")[-1].body["properties"]["isArchived"] is True
    assert [d.ref for d in list_datasets(rt)] == ["emotions:1"]
    assert show_dataset(rt, "emotions").ref == "emotions:1"
    with pytest.raises(Exception, match='there is no registered dataset "nothing"'):
        show_dataset(rt, "nothing")
