"""Where the heavy steps run: one at a time in the `gpu` pool on a workstation, a GPU pod on Kubernetes.

The same tags serve both: Dagster's pool limit serialises them locally; with
BLOGTUNE_EXECUTOR=k8s each step becomes a Kubernetes Job whose pod asks for one
GPU (`dagster-k8s/config`), on nodes chosen by BLOGTUNE_GPU_NODE_SELECTOR
("key=value,...") and tolerating the taint BLOGTUNE_GPU_TOLERATION.
"""

from __future__ import annotations

from blogtune_assets.core.environment import read

GPU_POOL = "gpu"
COMPUTE_TAG = {"blogtune/compute": "gpu"}


def _node_selector(spec: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in spec.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"BLOGTUNE_GPU_NODE_SELECTOR must be key=value[,key=value], not {spec!r}")
    return {key.strip(): value.strip() for key, value in pairs}


def gpu_pod_config(node_selector: str = "", toleration: str = "nvidia.com/gpu") -> dict:
    """The `dagster-k8s/config` tag of a heavy step: one GPU, and the nodes that have it."""
    pod_spec: dict = {}
    if node_selector:
        pod_spec["node_selector"] = _node_selector(node_selector)
    if toleration:
        pod_spec["tolerations"] = [{"key": toleration, "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}},
        "pod_spec_config": pod_spec,
    }


HEAVY = {
    "pool": GPU_POOL,
    "tags": COMPUTE_TAG,  # asset tags: filterable in the UI
    "op_tags": {
        **COMPUTE_TAG,
        "dagster-k8s/config": gpu_pod_config(read("BLOGTUNE_GPU_NODE_SELECTOR"), read("BLOGTUNE_GPU_TOLERATION")),
    },
}


def executor():
    """BLOGTUNE_EXECUTOR=k8s runs each step as a Kubernetes Job; unset, Dagster's default (one process per step)."""
    if read("BLOGTUNE_EXECUTOR") == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return None
