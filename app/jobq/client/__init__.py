"""The jobq SDK: AsyncClient for asyncio code, Client for everything else."""

from jobq.client._async import ApiKeyInfo, AsyncClient, JobPage, Submitted
from jobq.client._convert import Job
from jobq.client._retry import NO_RETRY, RetryPolicy
from jobq.client._sync import Client
from jobq.client._workflows import Node, Workflow, WorkflowNode, chain, chord, group, sig
from jobq.wire.channel import Tls

__all__ = [
    "NO_RETRY",
    "ApiKeyInfo",
    "AsyncClient",
    "Client",
    "Job",
    "JobPage",
    "Node",
    "RetryPolicy",
    "Submitted",
    "Tls",
    "Workflow",
    "WorkflowNode",
    "chain",
    "chord",
    "group",
    "sig",
]
