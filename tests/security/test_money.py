"""Money: what a job or endpoint may cost is read from the compute's real size, never its name;
compute of unknown size and serverless deploys count as costly and wait for an approver."""

from __future__ import annotations

from pathlib import Path

from handlers.jobs import gpu_hours
from tests.azure_fixtures import azure, azure_session, make_platform, platform, worker_runtime  # noqa: F401  (fixtures)
from workers.runtime import Runtime

UNKNOWN_GPUS = 8  # what handlers.jobs counts for a compute of unknown size


def runtime_over(platform, *, retries: int = 1) -> Runtime:
    return Runtime(redis=None, ledger=None, queue=None, notifier=None, platform_factory=lambda: platform,
                   job_timeout=10 * 3600, job_retries=retries)


def test_a_gpu_cluster_named_like_a_cpu_one_is_priced_by_its_size(azure, tmp_path: Path, redis):
    azure.add_compute("cpu-small", "Standard_NC24s_v3")      # 4 GPUs, whatever its name says
    azure.add_compute("mystery", "Standard_ZZ99_unknown")     # a size the region does not list
    azure.add_compute("cpu-cluster", "Standard_DS3_v2")       # a real CPU cluster
    rt = runtime_over(make_platform(azure, tmp_path, redis), retries=1)
    assert gpu_hours(rt, "finetune", "cpu-small", 2) == 4 * 2 * 10 * 2, "GPUs × instances × hours × attempts"
    assert gpu_hours(rt, "finetune", "cpu-cluster", 3) == 0, "a real CPU cluster costs no GPU-hours"
    assert gpu_hours(rt, "finetune", "Standard_NC6s_v3", 1) == 1 * 10 * 2
    assert gpu_hours(rt, "finetune", "mystery", 1) == UNKNOWN_GPUS * 10 * 2, "unknown size counts as costly"
    assert gpu_hours(rt, "finetune", "no-such-compute", 1) == UNKNOWN_GPUS * 10 * 2
    assert gpu_hours(rt, "deploy", "Standard_NC24s_v3", 1) == 4 * 24
    assert gpu_hours(rt, "deploy", None, 1, serverless=True) == UNKNOWN_GPUS * 24, "serverless is gated like jobs"


def test_a_costly_serverless_deploy_waits_for_approval(azure, worker_runtime):
    """A pay-per-token endpoint has no VM size to price, so it counts as costly and waits, queued nowhere."""
    from handlers.deploy import DeployRequest, start_deploy
    from platforms.base import DeploySpec

    rt, _ = worker_runtime
    rt.approval_gpu_hours = 4.0
    record = start_deploy(rt, DeployRequest(spec=DeploySpec(model="Phi-4", endpoint="phi-api", serverless=True),
                                            requester="U0USER", reply_to={"channel": "C0CHAN"}))
    assert record.approval == "pending" and record.id not in rt.queue.job_ids
    assert not azure.calls("PUT", "/serverlessEndpoints/phi-api")
