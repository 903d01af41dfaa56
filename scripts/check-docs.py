#!/usr/bin/env python3
"""Checks the published docs against the product, so they cannot drift.

    .venv/bin/python scripts/check-docs.py PATH/TO/formbridge

1. docs/openapi.yaml is a valid OpenAPI 3.1 document (openapi-spec-validator),
   and the request examples of both routes (submissions, sources) are well
   formed: each says the status it gets, that status is documented for its
   route, its error code is one the status lists, and its extensions are
   known and fit the route (and, on the source route, the source's
   provider).
2. docs/protocol.md has its sections numbered as code comments cite them.
3. Every request example is signed as it says (at run time, fresh
   timestamp): on the submissions route with acme's signing secret, on the
   source route as the source's provider signs, with the source's secret
   from examples/tenants.json (Stripe, Slack, HubSpot, Typeform, a token).
   It is posted to `formbridge serve --tenants examples/tenants.json` and
   gets its status; the answer matches the documented schema and code (a
   replay: the first answer again, with `Idempotent-Replayed: true`; Slack's
   URL check: the challenge echoed). Documented statuses and codes that no
   example produces on a route must be listed in NOT_EXERCISED below with
   the reason; the list is checked both ways. The gateway's bus must hold
   exactly the submissions answered 202, counted by ID.
4. Each sender example (examples/send.mjs, send.py, send.sh) reproduces the
   test vector and gets 202 for a JSON body and a form.
5. The code blocks of docs/senders.md are the example files, byte for byte.

A missing tool (node, python3, curl, openssl) is a failure, never a skip.
Prints one line per check and ends with `check-docs: N passed, M failed`;
exits 1 when anything failed.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "docs" / "openapi.yaml"
PROTOCOL = ROOT / "docs" / "protocol.md"
SENDERS = ROOT / "docs" / "senders.md"
EXAMPLES = ROOT / "examples"
TENANTS = EXAMPLES / "tenants.json"
# The two routes whose examples are run, by the short name used below.
ROUTES = {
    "submissions": "/v1/tenants/{tenant_id}/submissions",
    "sources": "/v1/tenants/{tenant_id}/sources/{source_id}",
}

# The published test vector (docs/protocol.md, section 1).
VECTOR = {
    "secret": "fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c",
    "tenant": "acme",
    "timestamp": "1767225600",
    "body": b'{"email":"ada@example.com","message":"Hello"}',
    "digest": "sha-256=:kLZCCKh+RzacssrmVJu0nqgcAB6+8wBJdYBvr/uyQc8=:",
    "signature": "v1=92f42e07398400bf7b1ec50fb0219ba4006c5243c4cb965976ac8ad22d76693f",
}
# A secret acme does not have (wrong-secret; the old half of rotation).
OTHER_SECRET = "fb_retired_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
# A secret (and token) none of acme's sources has.
OTHER_SOURCE_SECRET = "not_this_sources_secret_7e8f9a0b1c2d"

PROTOCOL_SECTIONS = [
    "1. Sending a submission",
    "2. Responses",
    "3. The authorizer",
    "4. The tenant record",
    "5. The event on the bus",
    "6. Delivery to the tenant's endpoint",
    "7. Configuration",
    "8. Binaries and the local gateway",
    "9. Sources: webhooks from form builders and providers",
    "10. Each submission accepted once",
]

# Documented (route, status, code) triples that no example can produce
# against `formbridge serve`, and why. For answers from API Gateway the
# "code" is its `message`. Checked both ways: a documented triple neither
# exercised nor listed here fails, and so does an entry here that is
# exercised or no longer documented.
NOT_BASE64 = (
    "needs a body marked base64 that is not base64; API Gateway and the local "
    "gateway only mark bodies they encoded themselves"
)
THROTTLED = "API Gateway's stage throttling: deployed stacks only"
NO_AUTHORIZER = (
    "a stack deployed without its authorizer; the local gateway always passes "
    "the authorizer's context"
)
AUTHORIZER_FAILS = (
    "the authorizer could not read the tenant's record (Secrets Manager failing); the "
    "local gateway's records are in memory and cannot fail (exercised by "
    "authorizer/tests/authorizer/bootstrap.rs)"
)
STORE_FAILS = (
    "a failing idempotency store; the local gateway's is in memory and cannot fail "
    "(exercised by ingest/tests/ingest/dynamodb.rs)"
)
NOT_EXERCISED = {
    ("submissions", 400, "malformed_body"): NOT_BASE64,
    ("submissions", 401, "missing_digest"): (
        "Content-Digest is an identity source: API Gateway and the local gateway answer "
        "401 Unauthorized before ingest runs (exercised as missing-digest)"
    ),
    ("submissions", 409, "request_in_progress"): (
        "needs two copies of a request at the same moment; exercised by "
        "ingest/tests/ingest/idempotency.rs and cli/tests/cli/serve.rs"
    ),
    ("submissions", 429, "Too Many Requests"): THROTTLED,
    ("submissions", 500, "missing_authorizer_context"): NO_AUTHORIZER,
    ("submissions", 500, "Internal Server Error"): AUTHORIZER_FAILS,
    ("submissions", 503, "idempotency_unavailable"): STORE_FAILS,
    ("sources", 400, "malformed_body"): NOT_BASE64,
    ("sources", 400, "token_in_body"): (
        "a token source whose body holds its token outside a JSON string; exercised "
        "by shared/src/source/tests.rs (every spelling of the token is redacted, one "
        "that cannot be is refused)"
    ),
    ("sources", 400, "too_many_parts"): (
        "needs a multipart body of 1,001 parts; exercised by ingest/src/body.rs "
        "(multipart_parts_are_bounded)"
    ),
    ("sources", 403, "unknown_source"): (
        "ingest's answer when the source was removed after the authorizer let the "
        "request in, within the record cache's time; otherwise the authorizer answers "
        "403 Forbidden first (exercised as unknown-source)"
    ),
    ("sources", 403, "tenant_suspended"): (
        "ingest's answer when the tenant was suspended after the authorizer let the "
        "request in, within the record cache's time; otherwise the authorizer answers "
        "403 Forbidden first"
    ),
    ("sources", 409, "request_in_progress"): (
        "needs two copies of a delivery at the same moment; exercised by "
        "cli/tests/cli/sources.rs"
    ),
    ("sources", 429, "Too Many Requests"): THROTTLED,
    ("sources", 500, "missing_authorizer_context"): NO_AUTHORIZER,
    ("sources", 500, "Internal Server Error"): AUTHORIZER_FAILS,
    ("sources", 503, "bus_unavailable"): (
        "a delivery is one event and the local gateway's queue holds at least 10, so "
        "filling it takes concurrent requests; the queue-full answer is exercised on "
        "the submissions route (queue-full)"
    ),
    ("sources", 503, "idempotency_unavailable"): STORE_FAILS,
    ("sources", 503, "tenant_store_unavailable"): (
        "the tenant's record could not be read; the local gateway's records are in "
        "memory and cannot fail"
    ),
}

SIGNING_MODES = {
    "valid", "rotation", "omit-signature", "omit-timestamp", "omit-digest",
    "wrong-secret", "stale-timestamp", "future-timestamp", "malformed-signature",
    "tamper-body", "bad-digest",
}
# Source route: the modes for a provider that signs, and for `token`.
PROVIDER_SIGNING_MODES = {
    "valid", "wrong-secret", "stale-timestamp", "future-timestamp", "omit-signature",
    "tamper-body",
}
TOKEN_SIGNING_MODES = {"valid", "wrong-token", "omit-token"}

# The extensions each route's examples may carry (docs/openapi.yaml's
# description says what each does); any other `x-formbridge-` is a typo.
COMMON_EXTENSIONS = {
    "x-formbridge-expect", "x-formbridge-code", "x-formbridge-tenant",
    "x-formbridge-content-type", "x-formbridge-raw-body", "x-formbridge-pad-to",
    "x-formbridge-gateway", "x-formbridge-idempotency-key", "x-formbridge-sent-before",
}
EXTENSIONS = {
    "submissions": COMMON_EXTENSIONS | {"x-formbridge-signing"},
    "sources": COMMON_EXTENSIONS | {
        "x-formbridge-source", "x-formbridge-provider", "x-formbridge-provider-signing",
        "x-formbridge-file-parts",
    },
}

# Multipart examples are sent with this boundary (unless the example's
# x-formbridge-content-type says otherwise).
BOUNDARY = "formbridge-example-boundary"

# The gateway's own settings come from the command line and the examples'
# `x-formbridge-gateway`, never from the caller's shell.
GATEWAY_ENV_PREFIXES = (
    "REPLAY_WINDOW_SECONDS", "MAX_BODY_BYTES", "SECRET_CACHE_TTL_SECONDS",
    "TENANT_SECRET_PREFIX", "EVENT_SOURCE", "ALLOW_PRIVATE_DESTINATIONS",
    "DELIVERY_", "BREAKER_", "FORMBRIDGE_", "LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL",
    "IDEMPOTENCY_",
)

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
    return ok


# ---------------------------------------------------------------- signing


def content_digest(body):
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def v1(secret, timestamp, tenant, digest):
    message = f"{timestamp}\n{tenant}\n{digest}".encode()
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def tampered(body):
    """`body` with its first letter's case flipped: the same length, not the
    bytes that were signed."""
    at = next(i for i, b in enumerate(body) if chr(b).isalpha())
    return body[:at] + bytes([body[at] ^ 0x20]) + body[at + 1:]


def signed_request(mode, tenant, body, now):
    """The headers and the body to send for a submissions route example
    signed as `mode` at `now`."""
    timestamp = {"stale-timestamp": now - 3600, "future-timestamp": now + 3600}.get(mode, now)
    timestamp = str(timestamp)
    digest = content_digest(body)
    if mode == "bad-digest":
        digest = "sha-256=:" + base64.b64encode(b"not a sha-256 digest").decode() + ":"
    secret = OTHER_SECRET if mode == "wrong-secret" else VECTOR["secret"]
    signature = v1(secret, timestamp, tenant, digest)
    if mode == "rotation":
        signature = v1(OTHER_SECRET, timestamp, tenant, digest) + ", " + signature
    if mode == "malformed-signature":
        signature = "v1=not-a-hex-signature"
    headers = {
        "Content-Digest": digest,
        "X-FormBridge-Timestamp": timestamp,
        "X-FormBridge-Signature": signature,
    }
    omitted = {
        "omit-signature": "X-FormBridge-Signature",
        "omit-timestamp": "X-FormBridge-Timestamp",
        "omit-digest": "Content-Digest",
    }.get(mode)
    if omitted:
        del headers[omitted]
    if mode == "tamper-body":
        body = tampered(body)
    return headers, body


# Providers as they sign their webhooks (docs/protocol.md, section 9), for
# the providers the examples use. Each takes the secret, the timestamp in
# the provider's unit, the method, the URL called and the raw body, and
# returns the headers to send.


def mac(secret, message):
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def sign_stripe(secret, ts, method, url, body):
    return {"Stripe-Signature": f"t={ts},v1=" + mac(secret, f"{ts}.".encode() + body).hex()}


def sign_slack(secret, ts, method, url, body):
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": "v0=" + mac(secret, f"v0:{ts}:".encode() + body).hex(),
    }


def sign_hubspot(secret, ts, method, url, body):
    # v3: method, URL, body and timestamp, no separators. HubSpot decodes a
    # few escapes in the URL before signing; the examples' URLs have none.
    signature = mac(secret, f"{method}{url}".encode() + body + str(ts).encode())
    return {
        "X-HubSpot-Request-Timestamp": str(ts),
        "X-HubSpot-Signature-v3": base64.b64encode(signature).decode(),
    }


def sign_typeform(secret, ts, method, url, body):
    return {"Typeform-Signature": "sha256=" + base64.b64encode(mac(secret, body)).decode()}


# provider: (units of its timestamp per second, or None when it signs no
# timestamp; the header that carries the signature; the signer)
PROVIDER_SIGNERS = {
    "stripe": (1, "Stripe-Signature", sign_stripe),
    "slack": (1, "X-Slack-Signature", sign_slack),
    "hubspot": (1000, "X-HubSpot-Signature-v3", sign_hubspot),
    "typeform": (None, "Typeform-Signature", sign_typeform),
}


def source_modes(provider):
    """The x-formbridge-provider-signing modes that apply to `provider`."""
    if provider == "token":
        return TOKEN_SIGNING_MODES
    if provider not in PROVIDER_SIGNERS:
        return set()
    if PROVIDER_SIGNERS[provider][0] is None:
        return PROVIDER_SIGNING_MODES - {"stale-timestamp", "future-timestamp"}
    return PROVIDER_SIGNING_MODES


def token_query(mode, secret):
    """A `token` source's query string for `mode` ("" for none)."""
    token = {"valid": secret, "wrong-token": OTHER_SOURCE_SECRET}.get(mode)
    return "" if token is None else urllib.parse.urlencode({"token": token})


def provider_request(mode, provider, secret, url, body, now):
    """The headers and the body to send to a source whose provider signs,
    signed as `mode` at `now` for the full `url` called."""
    per_second, signature_header, sign = PROVIDER_SIGNERS[provider]
    seconds = {"stale-timestamp": now - 3600, "future-timestamp": now + 3600}.get(mode, now)
    ts = seconds * (per_second or 1)
    headers = sign(OTHER_SOURCE_SECRET if mode == "wrong-secret" else secret, ts, "POST", url, body)
    if mode == "omit-signature":
        del headers[signature_header]
    if mode == "tamper-body":
        body = tampered(body)
    return headers, body


def load_sources():
    """acme's sources in examples/tenants.json: {source ID: (provider, current
    secret)}. Raises ValueError, saying what is wrong, for a file without them."""
    try:
        records = json.loads(TENANTS.read_text())
        records = records if isinstance(records, list) else [records]
        acme = next((r for r in records if r.get("tenant_id") == VECTOR["tenant"]), None)
        if acme is None:
            raise ValueError(f"no tenant {VECTOR['tenant']}")
        return {sid: (s["provider"], s["secrets"][0]) for sid, s in acme.get("sources", {}).items()}
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise ValueError(f"{TENANTS.relative_to(ROOT)}: {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------- the spec


def node_ref_parts(ref):
    return [p.replace("~1", "/").replace("~0", "~") for p in ref.lstrip("#/").split("/")]


def deref(spec, node):
    """`node` with `$ref`s followed (local references only)."""
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node_ref_parts(node["$ref"]):
            target = target[part]
        node = target
    return node


def documented_codes(spec, schema):
    """The error codes (or API Gateway messages) a response schema lists."""
    schema = deref(spec, schema)
    codes = set()
    for key in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(key, []):
            codes |= documented_codes(spec, sub)
    props = schema.get("properties", {})
    code = deref(spec, deref(spec, props.get("error", {})).get("properties", {}).get("code", {}))
    codes |= set(code.get("enum", []))
    codes |= set(deref(spec, props.get("message", {})).get("enum", []))
    return codes


def schema_validator(spec, schema):
    root = dict(schema)
    root["components"] = spec["components"]
    return Draft202012Validator(root)


def multipart_body(name, value, files):
    """A multipart/form-data body of `value`'s fields, in order, with
    BOUNDARY; the fields named in `files` are file parts."""
    if not isinstance(value, dict):
        raise ValueError(f"{name}: a multipart example's value must be an object of fields")
    out = b""
    for field, values in value.items():
        for text in values if isinstance(values, list) else [values]:
            disposition = f'form-data; name="{field}"'
            part_type = ""
            if field in files:
                disposition += f'; filename="{files[field]}"'
                part_type = "Content-Type: application/octet-stream\r\n"
            out += (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{part_type}\r\n"
                    f"{text}\r\n").encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


def example_body(ex, value=None, pad=True):
    """The bytes of the example's body (of `value` instead, for the body
    sent before it, which is not padded)."""
    name, media, example = ex["name"], ex["media"], ex["example"]
    value = example["value"] if value is None else value
    if example.get("x-formbridge-raw-body") or media == "application/x-www-form-urlencoded":
        if not isinstance(value, str):
            raise ValueError(f"{name}: a raw body must be a string")
        body = value.encode()
    elif media == "multipart/form-data":
        body = multipart_body(name, value, example.get("x-formbridge-file-parts", {}))
    else:
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    pad_to = example.get("x-formbridge-pad-to") if pad else None
    if pad_to is not None:
        marker = b'"padding":""'
        if marker not in body or pad_to < len(body):
            raise ValueError(f"{name}: x-formbridge-pad-to needs a short value with \"padding\": \"\"")
        fill = b"x" * (pad_to - len(body))
        body = body.replace(marker, b'"padding":"' + fill + b'"', 1)
    return body


def default_content_type(media):
    return f"{media}; boundary={BOUNDARY}" if media == "multipart/form-data" else media


def load_examples(spec, sources):
    """Every request example of both routes, as a dict."""
    out = []
    for route, path in ROUTES.items():
        operation = spec["paths"][path]["post"]
        for media, content in operation["requestBody"]["content"].items():
            for name, example in content.get("examples", {}).items():
                example = deref(spec, example)
                source = example.get("x-formbridge-source")
                provider = sources.get(source, (example.get("x-formbridge-provider"), None))[0]
                out.append({
                    "route": route,
                    "name": f"{route} {name}",
                    "media": media,
                    "example": example,
                    "schema": content["schema"],
                    "expect": example.get("x-formbridge-expect"),
                    "code": example.get("x-formbridge-code"),
                    "signing": example.get(
                        "x-formbridge-signing" if route == "submissions" else "x-formbridge-provider-signing",
                        "valid"),
                    "tenant": example.get("x-formbridge-tenant", VECTOR["tenant"]),
                    "source": source,
                    "provider": provider,
                    "secret": sources.get(source, (None, OTHER_SOURCE_SECRET))[1],
                    "content_type": example.get("x-formbridge-content-type", default_content_type(media)),
                    "idempotency_key": example.get("x-formbridge-idempotency-key"),
                    "sent_before": example.get("x-formbridge-sent-before"),
                    "gateway": example.get("x-formbridge-gateway", {}),
                })
    return out


def example_problems(spec, codes, ex):
    """What is wrong with one example as written (not yet sent)."""
    where = f"example {ex['name']}"
    route_codes = codes[ex["route"]]
    if not isinstance(ex["expect"], int) or ex["expect"] not in route_codes:
        return [f"{where}: x-formbridge-expect {ex['expect']!r} is not a documented status"]
    problems = []
    unknown = {k for k in ex["example"] if k.startswith("x-formbridge-")} - EXTENSIONS[ex["route"]]
    if unknown:
        problems.append(f"{where}: extensions {sorted(unknown)} do not apply to the {ex['route']} route")
    if ex["route"] == "submissions":
        if ex["signing"] not in SIGNING_MODES:
            problems.append(f"{where}: unknown x-formbridge-signing {ex['signing']!r}")
    elif not isinstance(ex["source"], str):
        problems.append(f"{where}: no x-formbridge-source")
    elif ex["signing"] not in source_modes(ex["provider"]):
        problems.append(f"{where}: x-formbridge-provider-signing {ex['signing']!r} does not apply to "
                        f"provider {ex['provider']!r} (the source's in examples/tenants.json, else "
                        "x-formbridge-provider), or no signer for that provider here")
    if not (200 <= ex["expect"] < 300) and ex["code"] not in route_codes[ex["expect"]]:
        problems.append(f"{where}: x-formbridge-code {ex['code']!r} is not listed for {ex['expect']}")
    try:
        body = example_body(ex)
        if ex["sent_before"] is not None:
            example_body(ex, ex["sent_before"], pad=False)
    except ValueError as e:
        return problems + [str(e)]
    if 200 <= ex["expect"] < 300 and ex["media"] in ("application/json", "multipart/form-data"):
        value = json.loads(body) if ex["media"] == "application/json" else ex["example"]["value"]
        errors = list(schema_validator(spec, ex["schema"]).iter_errors(value))
        if errors:
            problems.append(f"{where}: does not match the request schema: {errors[0].message}")
    return problems


def check_spec():
    """Validates the document; returns (spec, examples, {route: {status: codes}}) or None."""
    try:
        spec = yaml.safe_load(OPENAPI.read_text())
        validate_openapi(spec)
    except Exception as e:  # any reason is a failure, reported in one line
        check("docs/openapi.yaml is a valid OpenAPI 3.1 document", False, str(e).splitlines()[0])
        return None
    check("docs/openapi.yaml is a valid OpenAPI 3.1 document", spec.get("openapi", "").startswith("3.1"),
          f"openapi: {spec.get('openapi')}")
    codes = {}
    for route, path in ROUTES.items():
        codes[route] = {}
        for status, response in spec["paths"][path]["post"]["responses"].items():
            schema = deref(spec, response)["content"]["application/json"]["schema"]
            codes[route][int(status)] = documented_codes(spec, schema)
    try:
        sources = load_sources()
    except ValueError as e:
        check("examples/tenants.json gives acme's sources", False, str(e))
        return None
    examples = load_examples(spec, sources)
    problems = [p for ex in examples for p in example_problems(spec, codes, ex)]
    check(f"docs/openapi.yaml: {len(examples)} request examples name a documented status, code and signing",
          not problems, "; ".join(problems))
    return spec, examples, codes


def check_protocol_sections():
    headings = re.findall(r"^## (\d+\. .+?)\s*$", PROTOCOL.read_text(), re.MULTILINE)
    check(f"docs/protocol.md: sections 1 to {len(PROTOCOL_SECTIONS)} as code comments cite them",
          headings == PROTOCOL_SECTIONS, f"found {headings}")


# ---------------------------------------------------------------- gateways


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """One `formbridge serve` on a free port, output in a temporary file."""

    def __init__(self, binary, args, env):
        self.port = free_port()
        # The bus's counts are on the operations listener.
        self.admin_port = free_port()
        self.log = tempfile.TemporaryFile()
        clean = {k: v for k, v in os.environ.items() if not k.startswith(GATEWAY_ENV_PREFIXES)}
        clean.update(env)
        self.command = [
            str(binary), "serve", "--listen", f"127.0.0.1:{self.port}",
            "--admin-listen", f"127.0.0.1:{self.admin_port}",
            "--tenants", str(TENANTS), "--allow-private-destinations",
            # Quick exits: what is not delivered at once (examples/tenants.json
            # delivers to 127.0.0.1:8080, where nothing may listen) is
            # dead-lettered instead of retried.
            "--progress-interval", "0", "--shutdown-timeout", "0", *args,
        ]
        self.label = " ".join([*(f"{k}={v}" for k, v in env.items()), "serve", *args]).strip()
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=clean, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def output(self, lines=15):
        self.log.seek(0)
        text = self.log.read().decode(errors="replace").splitlines()
        return " | ".join(text[-lines:])

    def request(self, method, path, body=None, headers=None, port=None):
        connection = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def wait_ready(self, spec):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return check(f"gateway ({self.label}) starts", False,
                             f"exited with {self.process.returncode}: {self.output()}")
            try:
                answers = [self.request("GET", "/healthz", port=port) for port in (self.port, self.admin_port)]
            except OSError:
                time.sleep(0.02)
                continue
            schema = spec["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            errors = [e for status, _, body in answers if status == 200
                      for e in schema_validator(spec, schema).iter_errors(json.loads(body))]
            (status, _, body), (admin_status, _, admin_body) = answers
            counted = "bus" in json.loads(admin_body) if admin_status == 200 else False
            return check(f"gateway ({self.label}) answers GET /healthz as documented, the bus's counts on --admin-listen",
                         status == admin_status == 200 and not errors and counted,
                         f"{status} {admin_status} {errors[:1]} {body[:200]!r} {admin_body[:200]!r}")
        return check(f"gateway ({self.label}) starts", False, f"no answer on /healthz in 15 s: {self.output()}")

    def terminate(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self):
        """SIGTERM, then the exit status; SIGKILL if it does not exit."""
        self.terminate()
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
            return check(f"gateway ({self.label}) stops on SIGTERM", False, "still running after 20 s; killed")
        return check(f"gateway ({self.label}) stops on SIGTERM with status 0", code == 0,
                     f"status {code}: {self.output()}")

    def kill(self):
        if self.process.poll() is None:
            try:
                self.process.kill()
            except OSError:
                pass
            self.process.wait()


def example_request(gateway, ex, value, pad, now):
    """The path (with its query), body and headers for the example's
    body (or `value`, sent before it), signed at `now`."""
    body = example_body(ex, value, pad)
    tenant = urllib.parse.quote(ex["tenant"], safe="")
    if ex["route"] == "submissions":
        path = ROUTES["submissions"].replace("{tenant_id}", tenant)
        headers, body = signed_request(ex["signing"], ex["tenant"], body, now)
    else:
        source = urllib.parse.quote(ex["source"], safe="")
        path = ROUTES["sources"].replace("{tenant_id}", tenant).replace("{source_id}", source)
        if ex["provider"] == "token":
            query = token_query(ex["signing"], ex["secret"])
            path += f"?{query}" if query else ""
            headers = {}
        else:
            url = f"http://127.0.0.1:{gateway.port}{path}"
            headers, body = provider_request(ex["signing"], ex["provider"], ex["secret"], url, body, now)
    if ex["content_type"]:
        headers["Content-Type"] = ex["content_type"]
    if ex["idempotency_key"] is not None:
        headers["Idempotency-Key"] = ex["idempotency_key"]
    return path, body, headers


def run_example(spec, codes, gateway, ex):
    """Posts one example (after its x-formbridge-sent-before). Returns the
    (route, status, code) it exercised (None unless it got what is
    documented) and the IDs of the submissions accepted, counted by the bus
    check whatever the example got."""
    name = f"example {ex['name']}: {ex['expect']}" + (f" {ex['code']}" if ex["code"] else "")
    now = int(time.time())
    accepted = []
    before_ids = None
    try:
        if ex["sent_before"] is not None:
            status, _, answer = gateway.request("POST", *example_request(gateway, ex, ex["sent_before"], False, now))
            try:
                before_ids = json.loads(answer)["submission_ids"] if status == 202 else None
            except (ValueError, KeyError, TypeError):
                before_ids = None
            if before_ids is None:
                check(name, False, f"the body sent before got {status}, not 202: {answer[:300]!r}")
                return None, accepted
            accepted += before_ids
        status, response_headers, answer = gateway.request("POST", *example_request(gateway, ex, None, True, now))
    except OSError as e:
        check(name, False, f"request failed: {e}")
        return None, accepted
    problems = []
    if status != ex["expect"]:
        problems.append(f"got {status}")
    try:
        document = json.loads(answer)
    except ValueError:
        document = None
        problems.append("the answer is not JSON")
    code = None
    responses = spec["paths"][ROUTES[ex["route"]]]["post"]["responses"]
    if document is not None and str(status) in responses:
        schema = deref(spec, responses[str(status)])["content"]["application/json"]["schema"]
        errors = list(schema_validator(spec, schema).iter_errors(document))
        if errors:
            problems.append(f"the answer does not match the documented schema: {errors[0].message}")
        if not (200 <= status < 300) and isinstance(document, dict):
            code = (document.get("error") or {}).get("code") or document.get("message")
            if code not in codes[ex["route"]].get(status, set()):
                problems.append(f"code {code!r} is not one the spec lists for {status}")
            elif ex["code"] and code != ex["code"]:
                problems.append(f"code {code!r}, documented {ex['code']!r}")
    value = ex["example"]["value"]
    replayed = response_headers.get("Idempotent-Replayed")
    if replayed is not None and (status != 202 or replayed != "true"):
        problems.append(f"Idempotent-Replayed: {replayed} on a {status}")
    if status == 202 and isinstance(document, dict):
        ids = document.get("submission_ids", [])
        accepted += ids if isinstance(ids, list) else []
        if ex["route"] == "sources":
            count = 1  # a delivery is one submission, whatever its body holds
        else:
            count = len(value) if ex["media"] == "application/json" and isinstance(value, list) else 1
        if len(ids) != count:
            problems.append(f"{len(ids)} submission IDs for {count} submissions")
        if before_ids is not None and (replayed != "true" or ids != before_ids):
            problems.append(f"not the first answer again ({before_ids}) with Idempotent-Replayed: true")
    if status == 200 and isinstance(document, dict) and isinstance(value, dict):
        if document != {"challenge": value.get("challenge")}:
            problems.append("the answer is not the request's challenge")
    if status == 503 and response_headers.get("Retry-After") != "1":
        problems.append("no Retry-After: 1 (documented for the local gateway)")
    check(name, not problems, "; ".join(problems) + (f"; answer {answer[:300]!r}" if problems else ""))
    return (None if problems else (ex["route"], status, code)), accepted


# ---------------------------------------------------------------- senders


SENDERS_RUN = [
    ("examples/send.mjs", ["node"], ["node"]),
    ("examples/send.py", ["python3"], ["python3"]),
    ("examples/send.sh", ["sh"], ["sh", "curl", "openssl"]),
]


def run_sender(command, env, stdin=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("FORMBRIDGE_")}
    full.update(env)
    return subprocess.run(command, cwd=ROOT, env=full, input=stdin, capture_output=True, timeout=60)


def check_senders(gateway):
    """Returns the IDs of the submissions the senders got accepted."""
    accepted = []
    vector_file = EXAMPLES / "vector.json"
    check("examples/vector.json is the test vector's body (45 bytes, no newline)",
          vector_file.read_bytes() == VECTOR["body"])
    expected = (f"Content-Digest: {VECTOR['digest']}\n"
                f"X-FormBridge-Timestamp: {VECTOR['timestamp']}\n"
                f"X-FormBridge-Signature: {VECTOR['signature']}\n").encode()
    identity = {"FORMBRIDGE_TENANT": VECTOR["tenant"], "FORMBRIDGE_SECRET": VECTOR["secret"]}
    for path, interpreter, tools in SENDERS_RUN:
        missing = [tool for tool in tools if shutil.which(tool) is None]
        if missing:
            check(f"{path}: runs", False, f"{', '.join(missing)} not found on PATH (install it; nothing is skipped)")
            continue
        command = [*interpreter, path]
        result = run_sender([*command, "examples/vector.json"],
                            {**identity, "FORMBRIDGE_TIMESTAMP": VECTOR["timestamp"], "FORMBRIDGE_DRY_RUN": "1"})
        check(f"{path}: reproduces the test vector", result.returncode == 0 and result.stdout == expected,
              f"status {result.returncode}: {result.stdout!r} {result.stderr[-300:]!r}")
        url = {"FORMBRIDGE_URL": f"http://127.0.0.1:{gateway.port}"}
        runs = [
            ("a JSON body from a file", [*command, "examples/vector.json"], {}, None),
            ("a form from standard input", [*command, "-"],
             {"FORMBRIDGE_CONTENT_TYPE": "application/x-www-form-urlencoded"},
             b"name=Ada+Lovelace&email=ada%40example.com\n"),
        ]
        for what, argv, extra, stdin in runs:
            result = run_sender(argv, {**identity, **url, **extra}, stdin)
            lines = result.stdout.decode(errors="replace").splitlines()
            ok = result.returncode == 0 and lines[:1] == ["202"]
            try:
                ids = json.loads(lines[1])["submission_ids"] if ok else []
            except (IndexError, ValueError, KeyError, TypeError):
                ok, ids = False, []
            ok = ok and len(ids) == 1
            accepted += ids
            check(f"{path}: 202 for {what}", ok,
                  f"status {result.returncode}: {result.stdout[-300:]!r} {result.stderr[-300:]!r}")
    return accepted


def check_senders_doc():
    """The fenced blocks of docs/senders.md that name an example file."""
    text = SENDERS.read_text()
    blocks = re.findall(r"^```[a-z]+ (examples/\S+)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    found = {}
    for path, content in blocks:
        found.setdefault(path, []).append(content)
    for path, _, _ in SENDERS_RUN:
        contents = found.pop(path, [])
        file_text = (ROOT / path).read_text()
        check(f"docs/senders.md shows {path} byte for byte",
              len(contents) == 1 and contents[0] == file_text,
              f"{len(contents)} blocks name it" if len(contents) != 1 else "the block differs from the file")
    for path in found:
        check(f"docs/senders.md: block named {path}", False, "no such example is run by this checker")


def check_examples_readme():
    secret = json.loads(TENANTS.read_text())[0]["destination"]["secret"]
    readme = (EXAMPLES / "README.md").read_text()
    check("examples/README.md gives receive the destination secret of examples/tenants.json",
          f"--secret {secret}" in readme)
    try:
        sources = load_sources()
    except ValueError as e:
        check("examples/README.md lists the sources of examples/tenants.json", False, str(e))
        return
    rows = {sid: f"| `{sid}` | `{provider}` | `{secret}` |" for sid, (provider, secret) in sources.items()}
    missing = [sid for sid, row in rows.items() if row not in readme]
    check(f"examples/README.md lists the {len(rows)} sources of examples/tenants.json with their secrets",
          rows and not missing, f"no row for {missing}")


def check_self_contained():
    """The README stays a front page, and nothing tracked points outside the
    repository (the docs state the interface in the project's own words)."""
    lines = len((ROOT / "README.md").read_text().splitlines())
    check("README.md is at most 250 lines", lines <= 250, f"{lines} lines")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if not check("git lists the tracked files", tracked.returncode == 0, tracked.stderr.decode(errors="replace")):
        return
    outside = re.compile(rb"\.\./shared\b|CONTRACT\.md")
    pointing = []
    for name in tracked.stdout.decode().split("\0"):
        path = ROOT / name
        if name and path.is_file() and outside.search(path.read_bytes()):
            pointing.append(name)
    check("no tracked file points outside the repository", not pointing, ", ".join(pointing))


# ---------------------------------------------------------------- main


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    binary = Path(sys.argv[1]).resolve()
    if not check(f"the formbridge binary {sys.argv[1]} exists", os.access(binary, os.X_OK),
                 "not found or not executable; build it with cargo build --release -p formbridge"):
        return finish()

    loaded = check_spec()
    check_protocol_sections()
    check_senders_doc()
    check_examples_readme()
    check_self_contained()
    if loaded is None:
        return finish()
    spec, examples, codes = loaded

    def setup_of(ex):
        gateway = ex["gateway"]
        return (tuple(gateway.get("args", [])), tuple(sorted(gateway.get("env", {}).items())))

    setups = sorted({setup_of(ex) for ex in examples} | {((), ())})
    gateways = {}
    exercised = set()
    try:
        for setup in setups:
            gateways[setup] = Gateway(binary, list(setup[0]), dict(setup[1]))
        if not all([gateways[s].wait_ready(spec) for s in setups]):
            return finish()
        # By ID: the same signed request sent again (the senders sign the
        # same body within a second; the replay examples send theirs twice)
        # is answered with the first answer and accepted once.
        accepted = set()
        for ex in examples:
            triple, ids = run_example(spec, codes, gateways[setup_of(ex)], ex)
            if triple:
                exercised.add(triple)
            if setup_of(ex) == ((), ()):
                accepted.update(ids)
        accepted.update(check_senders(gateways[((), ())]))
        status, _, health = gateways[((), ())].request("GET", "/healthz", port=gateways[((), ())].admin_port)
        bus = json.loads(health).get("bus", {}) if status == 200 else {}
        check(f"the gateway's bus holds exactly the {len(accepted)} submissions answered 202",
              bus.get("accepted") == len(accepted), f"healthz: {health[:300]!r}")
        for gateway in gateways.values():
            gateway.terminate()  # all at once: each may wait for deliveries in flight
        for gateway in gateways.values():
            gateway.stop()
    finally:
        # No second signal may cut the cleanup short: no gateway outlives this.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for gateway in gateways.values():
            gateway.kill()

    documented = set()
    for route, by_status in codes.items():
        for status, listed in by_status.items():
            documented |= {(route, status, code) for code in listed or [None]}
    missing = documented - exercised - set(NOT_EXERCISED)
    stale = [key for key in NOT_EXERCISED if key in exercised or key not in documented]
    check(f"every documented status and code of both routes is exercised or listed as not "
          f"({len(documented)} documented, {len(exercised)} exercised)",
          not missing and not stale,
          f"neither exercised nor listed: {sorted(missing, key=str)}; listed but {stale}")
    for (route, status, code), reason in sorted(NOT_EXERCISED.items(), key=str):
        print(f"not exercised: {route} {status} {code}: {reason}")
    return finish()


def finish():
    print(f"check-docs: {passed} passed, {failed} failed")
    return 1 if failed else 0


def on_term(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    sys.exit(main())
