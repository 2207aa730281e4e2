#!/usr/bin/env python3
"""A channel configured above the operator's contract: how close to the contract it runs.

Starts an SMSC simulator that takes `--max-tps` submits per second and answers the rest
0x58 (ESME_RTHROTTLED), and one node whose channel has `tps` well above that. Sends
`--messages` through the batch API and prints one JSON line: seconds until the SMSC has
accepted every message, its accepted and throttled answers, and the rate that came
through. Only the standard library; ports are free ports on 127.0.0.1.

    python3 simulations/contract_rate.py --max-tps 100 --messages 2000
    python3 simulations/contract_rate.py --max-tps 200 --messages 2000 --smsgw /tmp/ab/old
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from calls import call, wait_until
from ports import free_port

ADMIN = "contract-rate-admin-token"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smsgw", default="target/release/smsgw", help="node binary")
    ap.add_argument("--sim", default="target/release/smsgw", help="simulator binary (needs --max-tps)")
    ap.add_argument("--max-tps", type=int, default=100, help="the operator's contract")
    ap.add_argument("--tps", type=int, default=1000, help="the channel's configured tps")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--limit", type=float, default=300, help="seconds before giving up")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="smsgw-contract-")
    smpp, control, http, cluster = free_port(), free_port(), free_port(), free_port()
    logs = [open(os.path.join(work, n), "w") for n in ("sim.log", "node.log")]
    procs = [
        subprocess.Popen([a.sim, "sim", "smsc", "--listen", f"127.0.0.1:{smpp}", "--system-id", "op",
                          "--max-tps", str(a.max_tps), "--dlr-delay-ms", "5",
                          "--control", f"127.0.0.1:{control}"], stdout=logs[0], stderr=logs[0]),
        subprocess.Popen([a.smsgw, "start", "--http", f"127.0.0.1:{http}",
                          "--cluster-addr", f"127.0.0.1:{cluster}", "--data-dir", os.path.join(work, "node"),
                          "--admin-token", ADMIN], stdout=logs[1], stderr=logs[1]),
    ]
    base = f"http://127.0.0.1:{http}"
    stats = lambda: call(f"http://127.0.0.1:{control}/stats")  # noqa: E731
    try:
        wait_until("the node", 30, lambda: call(base + "/readyz") is not None)
        wait_until("the simulator", 30, lambda: stats() is not None)
        call(base + "/admin/v1/channels", {"id": "op", "protocol": "smpp", "host": "127.0.0.1", "port": smpp,
                                           "system_id": "op", "password": "password", "tps": a.tps,
                                           "window": 32, "enquire_link_seconds": 5}, ADMIN)
        call(base + "/admin/v1/routes", {"id": "p", "match": {}, "channels": [{"id": "op"}]}, ADMIN)
        key = call(base + "/admin/v1/tenants", {"id": "acme", "name": "acme",
                                                "rate_limit": {"per_second": 10000, "burst": 20000}}, ADMIN)["api_key"]
        wait_until("the bind", 30, lambda: stats()["binds"] >= 1)
        started = time.time()
        for b in range(0, a.messages, 500):
            items = [{"to": "+4915112345678", "text": f"contract {i}"} for i in range(b, min(a.messages, b + 500))]
            call(base + "/v1/messages/batch", {"messages": items}, key)
        wait_until("every message at the SMSC", a.limit, lambda: stats()["accepted"] >= a.messages)
        took = time.time() - started
        s = stats()
        print(json.dumps({"max_tps": a.max_tps, "channel_tps": a.tps, "messages": a.messages,
                          "seconds": round(took, 1), "accepted": s["accepted"], "throttled": s["throttled"],
                          "msgs_per_s": round(s["accepted"] / took, 1)}))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
