"""Just enough PromQL reading to find which series a query touches.

Not a parser: it drops string literals (label values, regexes) and then takes
every identifier. That over-approximates (label names come out too), which is
why callers keep only names that look like metrics: ``jq_*`` raw metrics and
``level:metric:ops`` recorded series (the only identifiers with a colon).
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENT = re.compile(r"(?<![\w:$])[A-Za-z_:][A-Za-z0-9_:]*")


def identifiers(expr: str) -> set[str]:
    return set(_IDENT.findall(_STRING.sub('""', expr)))


def raw_metric_names(expr: str) -> set[str]:
    """``jq_*`` series names a query reads, as written (suffixes kept)."""
    return {name for name in identifiers(expr) if name.startswith("jq_") and ":" not in name}


def recorded_names(expr: str) -> set[str]:
    """Recording-rule outputs a query reads (by convention they contain a colon)."""
    return {name for name in identifiers(expr) if ":" in name}
