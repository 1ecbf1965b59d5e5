"""The context grpc.aio hands every servicer method and interceptor, typed once.

Our handlers serve messages of many types through one interceptor, so the request
and response type parameters stay open.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc.aio

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
