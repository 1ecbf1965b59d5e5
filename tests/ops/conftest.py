"""Make this folder's helper modules (metric_contract, promql_names) importable
from its tests whatever pytest import mode the project picks."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
