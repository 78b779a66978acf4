"""The one JSON line every command and experiment prints last: strict JSON.

Python's `json.dumps` writes NaN and ±Infinity as bare `NaN` / `Infinity`, which strict
parsers (`jq`, JavaScript's `JSON.parse`, Go, RFC 8259) reject. A diverged run has such
figures; here they become `null`, and a top-level `"nonfinite"` object names each field
that was not finite and what it was ("nan", "inf", "-inf"), so nothing is hidden.
"""

import json
import math
import numbers


def dumps(obj) -> str:
    """`obj` (dicts, lists, numbers, strings, numpy scalars) as one line of strict JSON.

    Raises:
      TypeError: a value JSON cannot hold (as `json.dumps`).
    """
    found = {}

    def clean(value, path):
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            value = float(value)
            if math.isfinite(value):
                return value
            found[path or "value"] = ("nan" if math.isnan(value) else
                                      "inf" if value > 0 else "-inf")
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    cleaned = clean(obj, "")
    if found:
        if isinstance(cleaned, dict):
            cleaned["nonfinite"] = {**(cleaned.get("nonfinite") or {}), **found}
        else:
            cleaned = {"value": cleaned, "nonfinite": found}
    return json.dumps(cleaned, allow_nan=False)
