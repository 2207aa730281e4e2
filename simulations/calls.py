"""The two calls the simulation scripts make of the processes they start: a JSON request to a
local HTTP API, and waiting (bounded) until a probe says yes. Standard library only."""

import json
import time
import urllib.request


def call(url, body=None, token=None, method=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def wait_until(what, deadline_s, check):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")
