"""The jobq SDK: AsyncClient for asyncio code, Client for everything else."""

from jobq.client._async import AsyncClient, JobPage, Submitted
from jobq.client._sync import Client

__all__ = ["AsyncClient", "Client", "JobPage", "Submitted"]
