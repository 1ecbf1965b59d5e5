"""The jobq SDK: AsyncClient for asyncio code, Client for everything else."""

from jobq.client._async import ApiKeyInfo, AsyncClient, JobPage, Submitted
from jobq.client._channel import Tls
from jobq.client._sync import Client

__all__ = ["ApiKeyInfo", "AsyncClient", "Client", "JobPage", "Submitted", "Tls"]
