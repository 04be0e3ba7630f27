#!/usr/bin/env python3
"""One password storm against a running `restdose serve` (driven by scripts/bench-password-storm).

    password_storm.py BASE_URL EMAIL PASSWORD CLIENTS SERVER_PID

CLIENTS browsers, each from its own client address (X-Forwarded-For 10.x.y.z; the server must
trust 127.0.0.1 as a proxy), first open the login form (unmeasured: cookie and CSRF token),
then all post the login form at the same moment, with the right password, so every attempt
that is admitted costs one argon2id verification. Prints one line of JSON: the answers by
status, the seconds until the last answer, and the server's peak resident memory (VmHWM of
/proc/SERVER_PID/status) before and after the storm, in MiB.

Standard library only: one thread and one keep-alive connection per client.
"""

import http.client
import json
import re
import sys
import threading
import time
import urllib.parse
from collections import Counter


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


class Client:
    def __init__(self, host, port, address):
        self.conn = http.client.HTTPConnection(host, port, timeout=120)
        self.headers = {"X-Forwarded-For": address}
        self.cookies = {}

    def request(self, method, path, body=None, headers=None):
        all_headers = dict(self.headers)
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        all_headers.update(headers or {})
        self.conn.request(method, path, body=body, headers=all_headers)
        response = self.conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, text


def main():
    base, email, password, clients, pid = sys.argv[1:6]
    clients, pid = int(clients), int(pid)
    url = urllib.parse.urlparse(base)
    host, port = url.hostname, url.port or 80

    prepared = []
    for n in range(clients):
        client = Client(host, port, f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256 + 1}")
        status, html = client.request("GET", "/portal/login")
        match = re.search(r'name="csrf" value="([^"]+)"', html)
        if status != 200 or not match:
            raise SystemExit(f"login form: {status}")
        form = urllib.parse.urlencode(
            {"csrf": match.group(1), "email": email, "password": password}
        )
        prepared.append((client, form))

    before = vm_hwm_mib(pid)
    start = threading.Barrier(clients + 1)
    statuses = [None] * clients
    finished = [0.0] * clients

    def storm(index):
        client, form = prepared[index]
        start.wait()
        try:
            status, _ = client.request(
                "POST",
                "/portal/login",
                body=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        except (OSError, http.client.HTTPException) as e:
            status = f"error {type(e).__name__}"
        statuses[index] = status
        finished[index] = time.monotonic()

    threads = [threading.Thread(target=storm, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    # The server may still be hashing for requests whose answers are out; let it settle.
    time.sleep(1)
    after = vm_hwm_mib(pid)
    print(
        json.dumps(
            {
                "statuses": dict(sorted(Counter(str(s) for s in statuses).items())),
                "seconds": round(max(finished) - began, 3),
                "hwm_before_mib": round(before, 1),
                "hwm_after_mib": round(after, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
