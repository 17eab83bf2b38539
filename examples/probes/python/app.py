"""A healthprobe probe in Python: reads one sample from a Prometheus /metrics page and
compares it with warning and critical thresholds.

Built with componentize-py against the package `healthprobe wit` prints (see build.sh).
The request goes through the host's `http` import, so the host applies the network policy
and the run's deadline to it.
"""
import math
import re
from typing import Dict, List, Optional, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports import http, types

# One sample line of the Prometheus text format: name, optional {labels}, value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def param(name: str, description: str, default: Optional[str] = None,
          required: bool = False) -> types.ParamSpec:
    return types.ParamSpec(name, description, required, default, False)


def invalid(name: str, reason: str) -> Err:
    return Err(types.CheckError_InvalidParam(types.ParamProblem(name, reason)))


def parse_selector(text: str) -> Tuple[str, Dict[str, str]]:
    """`name` or `name{label="value",...}` into the name and the labels to match."""
    m = SAMPLE.match(text + " 0")
    if not m or m.group(0) != text + " 0":
        raise invalid("metric", 'expected name or name{label="value",...}')
    return m.group(1), labels(m.group(3) or "")


def labels(text: str) -> Dict[str, str]:
    found = {}
    pos = 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            break
        found[m.group(1)] = m.group(2)
        pos = m.end()
    return found


def number(p: Dict[str, str], name: str) -> Optional[float]:
    if name not in p:
        return None
    try:
        return float(p[name])
    except ValueError:
        raise invalid(name, "expected a number")


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.ProbeInfo:
        return types.ProbeInfo(
            name="prometheus-threshold",
            version="0.1.0",
            description="Reads one sample from a Prometheus /metrics page and compares it "
                        "with warning and critical thresholds (Python).",
            params=[
                param("url", "URL of the metrics page (Prometheus text format).",
                      required=True),
                param("metric", 'The sample: name or name{label="value",...}; labels not '
                                "given may have any value, and the first match counts.",
                      required=True),
                param("warn", "Degraded when the value is at least this."),
                param("critical", "Unhealthy when the value is at least this."),
                param("below", "Compare the other way: degraded or unhealthy when the "
                               "value is at most the threshold.", default="false"),
            ],
        )

    def check(self, params: List[Tuple[str, str]], defaulted: List[str],
              budget_ms: int) -> types.Report:
        # The host fills in declared defaults (`below`), and names them in `defaulted`.
        p = dict(params)
        url = p["url"]
        name, want = parse_selector(p["metric"])
        warn, critical = number(p, "warn"), number(p, "critical")
        below = p["below"] == "true"
        try:
            resp = http.send(http.Request("GET", url, [], None, budget_ms, False, False))
        except Err as e:
            return types.Report(types.Status.UNHEALTHY, f"{url}: {e.value.value}", [])
        if resp.status != 200:
            return types.Report(types.Status.UNHEALTHY, f"HTTP {resp.status} from {url}", [])
        value = None
        for line in bytes(resp.body).decode("utf-8", "replace").splitlines():
            m = SAMPLE.match(line)
            if not m or m.group(1) != name:
                continue
            have = labels(m.group(3) or "")
            if all(have.get(k) == v for k, v in want.items()):
                value = float(m.group(4))
                break
        if value is None:
            return types.Report(types.Status.UNHEALTHY,
                                     f"no sample {p['metric']} at {url}", [])
        details = [("value", types.Value_Number(value))]

        def crossed(limit: Optional[float]) -> bool:
            if limit is None or math.isnan(value):
                return False
            return value <= limit if below else value >= limit

        shown = f"{p['metric']} = {value:g}"
        if crossed(critical):
            return types.Report(types.Status.UNHEALTHY,
                                     f"{shown} (critical at {critical:g})", details)
        if crossed(warn):
            return types.Report(types.Status.DEGRADED,
                                     f"{shown} (warning at {warn:g})", details)
        return types.Report(types.Status.HEALTHY, shown, details)
