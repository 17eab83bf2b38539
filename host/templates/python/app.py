"""{{name}}: a healthprobe probe in Python. Sends one GET through the host's HTTP client and
checks the status code.

    ./build.sh && healthprobe run {{name}}.wasm url=http://127.0.0.1:8080/health

Built with componentize-py against the WIT package in wit/ (`healthprobe wit -o wit`).
What works in a probe: the standard library's pure-Python modules (re, json, struct,
base64, hashlib, datetime, ...), `socket` for TCP to what the operator allows (it needs
the `encodings.idna` import below, which componentize-py does not bundle otherwise),
`os.environ` for variables the operator grants with --env, and the host's `http` import.
No threads, no subprocesses, no `ssl` module (use the http import for HTTPS).
"""
import encodings.idna  # noqa: F401  (socket.create_connection looks the codec up by name)
from typing import List, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports import http, types

from logic import verdict


def invalid(name: str, reason: str) -> Err:
    """A bad parameter: the operator's mistake, reported as an error (exit 3)."""
    return Err(types.CheckError_InvalidParam(types.ParamProblem(name, reason)))


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.ProbeInfo:
        return types.ProbeInfo(
            name="{{name}}",
            version="0.1.0",
            description="Checks that a URL answers with the expected status.",
            params=[
                # name, description, required, default, repeatable
                types.ParamSpec("url", "The URL to request, for example "
                                "http://127.0.0.1:8080/health.", True, None, False),
                types.ParamSpec("expect-status", "The status code that means healthy, "
                                "for example 204.", False, "200", False),
            ],
        )

    def check(self, params: List[Tuple[str, str]], defaulted: List[str],
              budget_ms: int) -> types.Report:
        # The host fills in declared defaults and names them in `defaulted`.
        p = dict(params)
        url = p["url"]
        try:
            expected = int(p["expect-status"])
        except ValueError:
            raise invalid("expect-status", "expected a status code such as 200")
        try:
            # method, url, headers, body, timeout-ms, follow-redirects, insecure
            resp = http.send(http.Request("GET", url, [], None, budget_ms, False, False))
        except Err as e:
            # No answer at all is a verdict too: unhealthy, with the host's reason.
            return types.Report(types.Status.UNHEALTHY, f"{url}: {e.value.value}", [])
        healthy, message = verdict(url, resp.status, expected)
        status = types.Status.HEALTHY if healthy else types.Status.UNHEALTHY
        return types.Report(status, message, [("status", types.Value_Integer(resp.status))])
