"""smsgw against Kannel 1.4.5 on the same box, the same SMSC simulators and the same driver.

The benchmark targets of docs/benchmarks.md are stated as "what Kannel reaches here". This
measures that instead of assuming it: Kannel's bearerbox and smsbox (no store file, so no
durability at all, logging at its quietest) and one smsgw node (fsync on) are bound to the
same three `smsgw sim smsc` processes, and ApacheBench (`ab -k`, concurrency 32 by
default) sends single-message HTTP requests to one gateway at a time, alternating, round
after round. A run counts end to end at the simulators (their `accepted` counter), and the
CPU the gateway's own processes used per message (/proc, utime + stime).

Three variants per round:
  kannel-dlr    Kannel with a delivery receipt requested per message (dlr-mask=3), as
                smsgw always does;
  kannel        Kannel without receipts (nothing to match, nothing stored);
  smsgw         one smsgw node: every accept, submit response and receipt committed to its
                Raft log with fsync before it is acknowledged.

Needs `bearerbox`, `smsbox` and `ab` on PATH (Debian: apt-get install kannel
apache2-utils) and a release build of smsgw. Standard library only:

  python3 simulations/kannel_compare.py --smsgw target/release/smsgw --messages 20000 --rounds 3

Prints one line per run, a table of medians, and a last line of JSON. Exit 2 when a tool is
missing or a gateway could not be set up; everything started is stopped on the way out.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calls import call, wait_until  # noqa: E402
from ports import free_port  # noqa: E402

ADMIN_TOKEN = "kannel-compare-admin-token"
RECIPIENT = "+4915112345678"
TEXT = "load test"


def cpu_ticks(pids):
    """utime + stime of the processes, in clock ticks."""
    total = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


class Box:
    """The processes of one comparison: simulators, Kannel's two boxes, one smsgw node."""

    def __init__(self, args, workdir):
        self.args = args
        self.dir = workdir
        self.procs = []
        self.sims = []  # (smpp port, control port)

    def spawn(self, name, cmd, env=None):
        log = open(os.path.join(self.dir, f"{name}.log"), "wb")
        p = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            env={**os.environ, **(env or {})},
        )
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    def start_simulators(self):
        for i in range(3):
            port, control = free_port(), free_port()
            self.spawn(
                f"sim{i}",
                [self.args.smsgw, "sim", "smsc", "--listen", f"127.0.0.1:{port}",
                 "--control", f"127.0.0.1:{control}", "--system-id", f"load{i}",
                 "--password", "pw", "--dlr-delay-ms", "200"],
                {"RUST_LOG": "warn"},
            )
            self.sims.append((port, control))
        for _, control in self.sims:
            wait_until("simulator", 20, lambda c=control: call(f"http://127.0.0.1:{c}/stats"))

    def at_smsc(self, field="accepted"):
        return sum(call(f"http://127.0.0.1:{c}/stats")[field] for _, c in self.sims)

    def start_kannel(self):
        admin, box, sendsms = free_port(), free_port(), free_port()
        conf = [
            "group = core", f"admin-port = {admin}", "admin-password = adm",
            "status-password = adm", f"smsbox-port = {box}", "log-level = 4",
            f'log-file = "{self.dir}/bearerbox.log"', "dlr-storage = internal",
            "sms-resend-retry = 0", "",
            "group = smsbox", "bearerbox-host = 127.0.0.1", f"sendsms-port = {sendsms}",
            "log-level = 4", f'log-file = "{self.dir}/smsbox.log"', "",
            "group = sendsms-user", "username = load", "password = pw", "",
        ]
        for i, (port, _) in enumerate(self.sims):
            conf += [
                "group = smsc", "smsc = smpp", f"smsc-id = c{i}", "host = 127.0.0.1",
                f"port = {port}", "transceiver-mode = true", f"smsc-username = load{i}",
                "smsc-password = pw", 'system-type = ""',
                f"max-pending-submits = {self.args.window}", "enquire-link-interval = 30",
                "msg-id-type = 0x01", "",
            ]
        path = os.path.join(self.dir, "kannel.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf))
        self.bearerbox = self.spawn("bearerbox-out", ["bearerbox", path])
        status = f"http://127.0.0.1:{admin}/status.txt?password=adm"
        wait_until("bearerbox", 20, lambda: urllib.request.urlopen(status, timeout=2))
        self.smsbox = self.spawn("smsbox-out", ["smsbox", path])

        def online():
            text = urllib.request.urlopen(status, timeout=2).read().decode()
            return text.count("(online") >= 3 and "smsbox:(none)" in text

        wait_until("Kannel's SMSC connections", 30, online)
        self.kannel_url = (
            f"http://127.0.0.1:{sendsms}/cgi-bin/sendsms?username=load&password=pw"
            f"&from=SMSGW&to=%2B{RECIPIENT[1:]}&text={TEXT.replace(' ', '+')}"
        )
        # The first request also opens smsbox's connection to bearerbox.
        wait_until("smsbox", 20, lambda: urllib.request.urlopen(self.kannel_url, timeout=2))

    def start_smsgw(self):
        http, cluster = free_port(), free_port()
        self.node = self.spawn(
            "smsgw",
            [self.args.smsgw, "start", "--node-id", "1", "--http", f"127.0.0.1:{http}",
             "--cluster-addr", f"127.0.0.1:{cluster}", "--data-dir",
             os.path.join(self.dir, "smsgw-data"), "--admin-token", ADMIN_TOKEN,
             "--log", "warn", "--tenant-queue-limit", "2000000",
             "--node-queue-limit", "2000000"],
        )
        base = f"http://127.0.0.1:{http}"
        wait_until("smsgw", 30, lambda: call(f"{base}/admin/v1/channels", token=ADMIN_TOKEN) is not None)
        for i, (port, _) in enumerate(self.sims):
            call(f"{base}/admin/v1/channels",
                      {"id": f"c{i}", "protocol": "smpp", "host": "127.0.0.1", "port": port,
                       "system_id": f"load{i}", "password": "pw", "tps": 1_000_000,
                       "window": self.args.window}, ADMIN_TOKEN)
        call(f"{base}/admin/v1/routes",
                  {"id": "default", "match": {}, "strategy": "weighted",
                   "channels": [{"id": f"c{i}", "weight": 1} for i in range(3)]}, ADMIN_TOKEN)
        key = call(f"{base}/admin/v1/tenants",
                        {"id": "load", "name": "load",
                         "rate_limit": {"per_second": 1_000_000, "burst": 1_000_000},
                         "queue_limit": 2_000_000}, ADMIN_TOKEN)["api_key"]
        wait_until(
            "smsgw's binds",
            30,
            lambda: all(c["state"] == "bound"
                        for c in call(f"{base}/admin/v1/channels", token=ADMIN_TOKEN)),
        )
        self.smsgw_url = f"{base}/v1/messages"
        self.smsgw_key = key
        self.body = os.path.join(self.dir, "body.json")
        with open(self.body, "w") as f:
            json.dump({"to": RECIPIENT, "text": TEXT}, f)

    def variant(self, name):
        """The ab arguments and gateway pids of one variant."""
        kannel = [self.bearerbox.pid, self.smsbox.pid]
        if name == "kannel-dlr":
            return [self.kannel_url + "&dlr-mask=3"], kannel
        if name == "kannel":
            return [self.kannel_url], kannel
        return [
            "-p", self.body, "-T", "application/json",
            "-H", f"Authorization: Bearer {self.smsgw_key}", self.smsgw_url,
        ], [self.node.pid]

    def run(self, name):
        ab_args, pids = self.variant(name)
        n = self.args.messages
        before, cpu0 = self.at_smsc(), cpu_ticks(pids)
        acked_before = self.at_smsc("receipts_acked")
        t0 = time.monotonic()
        out = subprocess.run(
            ["ab", "-q", "-k", "-n", str(n), "-c", str(self.args.concurrency)] + ab_args,
            capture_output=True, text=True, timeout=600,
        ).stdout
        accept_s = time.monotonic() - t0
        deadline = time.monotonic() + 300
        while self.at_smsc() - before < n and time.monotonic() < deadline:
            time.sleep(0.05)
        e2e_s = time.monotonic() - t0
        delivered = self.at_smsc() - before
        if name != "kannel":
            # The CPU of a message includes its receipt: wait (bounded) for the gateway to
            # have answered every deliver_sm.
            deadline = time.monotonic() + 60
            while (self.at_smsc("receipts_acked") - acked_before < delivered
                   and time.monotonic() < deadline):
                time.sleep(0.05)
        cpu_s = (cpu_ticks(pids) - cpu0) / os.sysconf("SC_CLK_TCK")
        ab = parse_ab(out)
        return {
            "variant": name,
            "messages": n,
            "at_smsc": delivered,
            "accepts_per_s": round(n / accept_s),
            "end_to_end_msgs_per_s": round(delivered / e2e_s),
            "gateway_cpu_us_per_msg": round(cpu_s * 1e6 / n),
            "accept_ms_p50": ab.get("50%"),
            "accept_ms_p99": ab.get("99%"),
            "failed_requests": ab.get("failed", n),
        }


def parse_ab(out):
    """ab's failed/non-2xx counts and latency percentiles (ms)."""
    found = {"failed": 0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Failed requests:") or line.startswith("Non-2xx responses:"):
            found["failed"] += int(parts[-1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            found[parts[0]] = float(parts[1])
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smsgw", default="target/release/smsgw", help="the smsgw binary")
    ap.add_argument("--messages", type=int, default=20000, help="requests per run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    ap.add_argument("--concurrency", type=int, default=32, help="ab -c")
    ap.add_argument("--window", type=int, default=256,
                    help="outstanding submits per bind, both gateways")
    ap.add_argument("--variants", default="kannel-dlr,kannel,smsgw")
    args = ap.parse_args()
    missing = [t for t in ("bearerbox", "smsbox", "ab") if shutil.which(t) is None]
    if missing:
        print(f"kannel_compare: {', '.join(missing)} not on PATH "
              "(Debian: apt-get install kannel apache2-utils)", file=sys.stderr)
        return 2
    if not os.access(args.smsgw, os.X_OK):
        print(f"kannel_compare: --smsgw {args.smsgw} is not an executable "
              "(cargo build --release)", file=sys.stderr)
        return 2
    args.smsgw = os.path.abspath(args.smsgw)
    variants = [v for v in args.variants.split(",") if v]
    workdir = tempfile.mkdtemp(prefix="kannel-compare-")
    box = Box(args, workdir)
    runs = []
    try:
        box.start_simulators()
        box.start_kannel()
        box.start_smsgw()
        for r in range(args.rounds):
            for v in variants:
                res = box.run(v)
                res["round"] = r + 1
                runs.append(res)
                print(json.dumps(res), flush=True)
    except SystemExit as e:
        print(f"{e} (logs in {workdir})", file=sys.stderr)
        return 2
    finally:
        box.stop()
    summary = {}
    print(f"\n{'variant':<12} {'msg/s end to end':>18} {'CPU µs/msg':>11} "
          f"{'p50 ms':>7} {'p99 ms':>7}  (medians of {args.rounds})")
    for v in variants:
        mine = [x for x in runs if x["variant"] == v]
        med = {k: statistics.median(x[k] for x in mine)
               for k in ("end_to_end_msgs_per_s", "gateway_cpu_us_per_msg",
                         "accept_ms_p50", "accept_ms_p99")}
        med["failed_requests"] = sum(x["failed_requests"] for x in mine)
        med["lost"] = sum(x["messages"] - x["at_smsc"] for x in mine)
        summary[v] = med
        print(f"{v:<12} {med['end_to_end_msgs_per_s']:>18,.0f} "
              f"{med['gateway_cpu_us_per_msg']:>11,.0f} {med['accept_ms_p50']:>7} "
              f"{med['accept_ms_p99']:>7}")
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"rounds": args.rounds, "messages": args.messages,
                      "concurrency": args.concurrency, "medians": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
