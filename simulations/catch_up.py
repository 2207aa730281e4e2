#!/usr/bin/env python3
"""Catch-up after a long outage: how long a member that was down takes to catch up with a
large state, and how much memory the leader (sending) and the member (receiving) use.

Starts a 3-node cluster on 127.0.0.1 and an SMSC simulator, kills node 3 with -9, sends
`--messages` long messages through the other two (they are delivered and retained, so the
state grows by about 1.1 KB per message), waits until the live members have compacted their
logs past node 3 (so that only a snapshot can catch it up; with `--snapshot-every 0` there
are no snapshots and it catches up from the log), restarts node 3, and samples the RSS of
both sides every 50 ms until node 3 has applied everything up to where the leader's log
stood when it came back. Then reads a sample of the messages through node 3.

    cargo build --release --bin smsgw
    python3 simulations/catch_up.py --messages 250000                      # by snapshot
    python3 simulations/catch_up.py --messages 100000 --snapshot-every 0   # by log
    # node 3 behind a 50 Mbit/s link (as root: a network namespace, a veth pair and a
    # token-bucket filter from iproute2; nodes 1 and 2 and the SMSC use 10.199.0.1):
    sudo python3 simulations/catch_up.py --messages 50000 --snapshot-every 0 --member-link-mbit 50

Standard library only. Everything runs under --dir (removed first) and is stopped at the end.
"""

import argparse
import concurrent.futures
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from ports import free_port

TOKEN = "snapshot-catch-up-admin-token"


def call(method, url, body=None, token=TOKEN, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, None


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def until(what, seconds, probe, every=0.2):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = probe()
        if v:
            return v
        time.sleep(every)
    sys.exit(f"timed out after {seconds} s waiting for: {what}")


class SlowLink:
    """Node 3's own network namespace, joined to the host by a veth pair whose two ends
    pass at most `mbit` Mbit/s each way (iproute2's token-bucket filter)."""

    NS, HOST_END, MEMBER_END = "smsgw-slow", "smsgw-slow-h", "smsgw-slow-m"
    HOST_IP, MEMBER_IP = "10.199.0.1", "10.199.0.2"

    def __init__(self, mbit):
        self.mbit = mbit

    def run(self, *cmd, ns=False):
        full = (["ip", "netns", "exec", self.NS] if ns else []) + list(cmd)
        subprocess.run(full, check=True, stdout=subprocess.DEVNULL)

    def __enter__(self):
        self.__exit__()
        self.run("ip", "netns", "add", self.NS)
        self.run("ip", "link", "add", self.HOST_END, "type", "veth", "peer", "name", self.MEMBER_END)
        self.run("ip", "link", "set", self.MEMBER_END, "netns", self.NS)
        self.run("ip", "addr", "add", f"{self.HOST_IP}/24", "dev", self.HOST_END)
        self.run("ip", "link", "set", self.HOST_END, "up")
        self.run("ip", "addr", "add", f"{self.MEMBER_IP}/24", "dev", self.MEMBER_END, ns=True)
        self.run("ip", "link", "set", self.MEMBER_END, "up", ns=True)
        self.run("ip", "link", "set", "lo", "up", ns=True)
        shape = ["root", "tbf", "rate", f"{self.mbit}mbit", "burst", "64kb", "latency", "400ms"]
        self.run("tc", "qdisc", "add", "dev", self.HOST_END, *shape)
        self.run("tc", "qdisc", "add", "dev", self.MEMBER_END, *shape, ns=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "link", "del", self.HOST_END], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", self.NS], stderr=subprocess.DEVNULL)


class Node:
    def __init__(self, args, node_id, peers, dirpath, hosts, prefix=()):
        self.id = node_id
        self.http = free_port()
        self.cluster = peers[node_id]
        self.host = hosts[node_id]
        self.dir = os.path.join(dirpath, f"node-{node_id}")
        self.log = os.path.join(dirpath, f"node-{node_id}.log")
        self.cmd = list(prefix) + [
            args.smsgw, "start",
            "--node-id", str(node_id),
            "--http", f"{self.host}:{self.http}",
            "--cluster-addr", f"{self.host}:{self.cluster}",
            "--data-dir", self.dir,
            "--peers", ",".join(f"{i}@{hosts[i]}:{p}" for i, p in sorted(peers.items())),
            "--admin-token", TOKEN,
            "--snapshot-every-entries", str(args.snapshot_every),
        ]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=open(self.log, "a"), stderr=subprocess.STDOUT)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def url(self, path):
        return f"http://{self.host}:{self.http}{path}"

    def cluster_view(self):
        s, v = call("GET", self.url("/admin/v1/cluster"))
        return v if s == 200 else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--text-len", type=int, default=600, help="characters per message (GSM-7)")
    ap.add_argument("--snapshot-every", type=int, default=5_000)
    ap.add_argument("--limit", type=int, default=1800, help="seconds node 3 may take to catch up")
    ap.add_argument("--dir", default="/tmp/smsgw-catch-up")
    ap.add_argument("--smsgw", default="target/release/smsgw")
    ap.add_argument("--member-link-mbit", type=int, default=0,
                    help="put node 3 behind a link of this many Mbit/s (needs root and iproute2)")
    args = ap.parse_args()
    if args.member_link_mbit:
        with SlowLink(args.member_link_mbit) as link:
            run(args, link)
    else:
        run(args, None)


def run(args, link):
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    args.smsgw = os.path.abspath(args.smsgw)
    host = link.HOST_IP if link else "127.0.0.1"
    hosts = {1: host, 2: host, 3: link.MEMBER_IP if link else host}
    member_prefix = ["ip", "netns", "exec", link.NS] if link else []
    smsc_port = free_port()
    smsc = subprocess.Popen(
        [args.smsgw, "sim", "smsc", "--listen", f"{host}:{smsc_port}", "--system-id", "s",
         "--password", "pw", "--dlr-delay-ms", "10"],
        stdout=open(os.path.join(args.dir, "smsc.log"), "w"), stderr=subprocess.STDOUT)
    peers = {i: free_port() for i in (1, 2, 3)}
    nodes = {i: Node(args, i, peers, args.dir, hosts, member_prefix if i == 3 else ())
             for i in (1, 2, 3)}
    try:
        for n in nodes.values():
            n.start()
        leader_id = until("a leader", 30, lambda: (nodes[1].cluster_view() or {}).get("leader"))
        lead = nodes[leader_id]
        s, t = call("POST", lead.url("/admin/v1/tenants"),
                    {"id": "acme", "name": "acme", "rate_limit": {"per_second": 100000, "burst": 200000},
                     "queue_limit": 10_000_000})
        assert s == 201, t
        key = t["api_key"]
        s, v = call("POST", lead.url("/admin/v1/channels"),
                    {"id": "ch", "protocol": "smpp", "host": host, "port": smsc_port,
                     "system_id": "s", "password": "pw", "tps": 50000, "window": 64})
        assert s == 201, v
        s, v = call("POST", lead.url("/admin/v1/routes"),
                    {"id": "default", "match": {}, "channels": [{"id": "ch"}]})
        assert s == 201, v

        def bound():
            s, v = call("GET", lead.url("/admin/v1/channels"))
            return s == 200 and all(c.get("state") == "bound" for c in v) and v
        until("channel bound", 60, bound)

        # Node 3 goes down hard (if it leads, a new leader takes over).
        nodes[3].kill9()
        live = [nodes[1], nodes[2]]
        leader_id = until("a leader without node 3", 30,
                          lambda: (nodes[1].cluster_view() or {}).get("leader") in (1, 2)
                          and nodes[1].cluster_view()["leader"])
        lead = nodes[leader_id]
        matched_at_kill = (lead.cluster_view()["log"]["matched_index"].get("3") or 0)

        text = ("catch-up " * (args.text_len // 9 + 1))[: args.text_len]
        batches = [[{"to": f"+4915{(b * 1000 + i) % 10**9:09d}", "text": text} for i in range(1000)]
                   for b in range(args.messages // 1000)]
        ids = []
        started = time.monotonic()

        def post(i_batch):
            i, batch = i_batch
            node = live[i % 2]
            for _ in range(20):
                s, v = call("POST", node.url("/v1/messages/batch"), {"messages": batch}, token=key, timeout=60)
                if s in (200, 202, 207):
                    return [m.get("id") for m in v.get("messages", v.get("results", [])) if m.get("id")]
                time.sleep(0.5)
            sys.exit(f"batch {i} refused: {s} {v}")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for got in pool.map(post, enumerate(batches)):
                ids.extend(got)
        print(f"accepted {len(ids)} messages in {time.monotonic() - started:.1f} s")

        # Everything is delivered and the live members compact past node 3.
        def delivered():
            try:
                with urllib.request.urlopen(lead.url("/metrics"), timeout=10) as r:
                    text = r.read().decode()
            except OSError:
                return 0
            return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                       if l.startswith("smsgw_messages_total{") and 'status="delivered"' in l)
        until("every message delivered", 900, lambda: delivered() >= len(ids), every=1)
        if args.snapshot_every:
            until("the log purged past node 3", 120,
                  lambda: (lead.cluster_view()["log"].get("purged_index") or 0) > matched_at_kill + 1)
        applied = lead.cluster_view()["log"]["applied_index"]
        state_mb = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(lead.dir) for f in fs) / 1e6
        print(f"settled at applied index {applied}; leader data dir {state_mb:.0f} MB")

        # Node 3 comes back: only a snapshot can catch it up.
        base_lead = rss_mb(lead.proc.pid)
        nodes[3].start()
        base_member = 0.0
        peak_lead, peak_member = base_lead, 0.0
        t0 = time.monotonic()
        caught_up = None
        timeline = []  # (seconds, node 3's RSS in MB) at every sample
        progress = []  # (seconds, node 3's applied index) every second, to see it move
        while time.monotonic() - t0 < args.limit:
            peak_lead = max(peak_lead, rss_mb(lead.proc.pid))
            m = rss_mb(nodes[3].proc.pid)
            timeline.append((round(time.monotonic() - t0, 2), round(m)))
            base_member = base_member or m
            peak_member = max(peak_member, m)
            # Caught up = node 3 has applied what the leader had (its log alone is not enough:
            # until it has applied, its reads wait and answer 503 rather than stale rows).
            view = nodes[3].cluster_view()
            matched = (view or {}).get("log", {}).get("applied_index") or 0
            if not progress or time.monotonic() - t0 >= progress[-1][0] + 1:
                progress.append((round(time.monotonic() - t0, 1), matched))
            if matched >= applied:
                caught_up = time.monotonic() - t0
                break
            time.sleep(0.05)
        if caught_up is None:
            sys.exit(f"node 3 did not catch up within {args.limit} s; applied index over time: {progress}")
        for _ in range(20):  # the RSS after the install settles
            peak_member = max(peak_member, rss_mb(nodes[3].proc.pid))
            time.sleep(0.05)
        sample = random.sample(ids, min(200, len(ids)))
        wrong = []
        for i in sample:
            s, v = call("GET", nodes[3].url(f"/v1/messages/{i}"), token=key)
            if s != 200 or (v or {}).get("status") != "delivered":
                wrong.append((i, s, (v or {}).get("status") or v))
        ok = len(sample) - len(wrong)
        sent = [re.sub(r"\x1b\[[0-9;]*m", "", l).strip() for l in open(lead.log) if "snapshot sent" in l]
        with open(os.path.join(args.dir, "member-rss.txt"), "w") as f:
            f.writelines(f"{t} {m}\n" for t, m in timeline)
        print(json.dumps({
            "messages": len(ids), "leader_data_dir_mb": round(state_mb),
            "catch_up_seconds": round(caught_up, 2),
            "by": "snapshot" if sent else "log",
            "leader_rss_mb": {"before": round(base_lead), "peak": round(peak_lead)},
            "member_rss_mb": {"at_start": round(base_member), "peak": round(peak_member)},
            "sample_read_delivered_on_member": f"{ok}/{len(sample)}",
            "leader_log": sent[-1][-200:] if sent else None,
            "member_link_mbit": args.member_link_mbit or None,
        }, indent=2))
        if wrong:
            sys.exit(f"{len(wrong)} messages read wrong on the member that caught up, e.g. {wrong[:5]}")
    finally:
        for n in nodes.values():
            n.kill9()
        smsc.kill()


if __name__ == "__main__":
    main()
