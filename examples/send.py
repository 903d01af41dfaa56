#!/usr/bin/env python3
"""Sends one signed submission to Form-Bridge (docs/protocol.md, section 1).

Python 3.8 or later, standard library only.

    export FORMBRIDGE_URL=http://127.0.0.1:3000 FORMBRIDGE_TENANT=acme FORMBRIDGE_SECRET=fb_...
    python3 send.py body.json        (or: ... | python3 send.py -)

The body is read from the file named, or from standard input, and sent
exactly as signed. Optional: FORMBRIDGE_CONTENT_TYPE (default
application/json); FORMBRIDGE_TIMESTAMP (sign at this Unix time instead of
now) and FORMBRIDGE_DRY_RUN=1 (print the headers, send nothing), which
together check this code against the test vector.
"""
import base64
import hashlib
import hmac
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def sign(secret: str, tenant: str, body: bytes, timestamp: str) -> dict:
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    mac = hmac.new(secret.encode(), f"{timestamp}\n{tenant}\n{digest}".encode(), hashlib.sha256)
    return {
        "Content-Digest": digest,
        "X-FormBridge-Timestamp": timestamp,
        "X-FormBridge-Signature": "v1=" + mac.hexdigest(),
    }


def main() -> int:
    env = os.environ
    for name in ("FORMBRIDGE_TENANT", "FORMBRIDGE_SECRET"):
        if not env.get(name):
            print(f"set {name}", file=sys.stderr)
            return 2
    path = sys.argv[1] if len(sys.argv) > 1 else "-"
    if path == "-":
        body = sys.stdin.buffer.read()  # raw bytes, never re-encoded
    else:
        with open(path, "rb") as f:
            body = f.read()
    timestamp = env.get("FORMBRIDGE_TIMESTAMP") or str(int(time.time()))
    headers = sign(env["FORMBRIDGE_SECRET"], env["FORMBRIDGE_TENANT"], body, timestamp)

    if env.get("FORMBRIDGE_DRY_RUN"):
        for name, value in headers.items():
            print(f"{name}: {value}")
        return 0
    if not env.get("FORMBRIDGE_URL"):
        print("set FORMBRIDGE_URL to the API's base URL, such as http://127.0.0.1:3000",
              file=sys.stderr)
        return 2
    tenant = urllib.parse.quote(env["FORMBRIDGE_TENANT"], safe="")
    url = env["FORMBRIDGE_URL"].rstrip("/") + f"/v1/tenants/{tenant}/submissions"
    headers["Content-Type"] = env.get("FORMBRIDGE_CONTENT_TYPE") or "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as error:  # 4xx and 5xx: the answer is still printed
        status, answer = error.code, error.read()
    except OSError as error:
        print(f"cannot reach {url}: {error}", file=sys.stderr)
        return 2
    print(status)
    print(answer.decode("utf-8", "replace"))
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
