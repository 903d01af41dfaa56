"""Checks template.yaml for what cfn-lint cannot see.

SAM silently ignores a misspelt key (an authorizer's `ReauthorizeEvry: 0`
leaves results cached for 300 s, which lets replays through), so these
checks run the real SAM transform (aws-sam-translator, what CloudFormation
runs) and inspect what it generates: the authorizer as API Gateway receives
it, the routes and their throttles, the functions' reserved concurrency, the event source
mapping, the rule, the queues, the idempotency table, the roles and the
alarms. `cfn-lint` then lints the
generated CloudFormation too.

The isolated path (parameter EnableTenantIsolation) is checked both ways:
the stack is generated with the parameter "false" and "true" (the value fed
to the transform, and the template's conditions evaluated with it, so a
resource whose condition is false is not in the stack), and checked each
time. Off, it must be exactly the stack of the template without the
isolated path: the parameter, its conditions and their resources and
outputs deleted, nothing left that refers to them. On, it must have the
isolated REST API as docs/deploying.md describes it, and Lambda's tenant
isolation mode on its ingest function only.

samconfig.toml, beside the template, is checked too: no SAM CLI beta
features (the Rust build needs none since SAM CLI 1.156.0, and the flag
turns on every other beta) and no build cache (SAM hashes everything under
the functions' CodeUri, the workspace root, target/ included, so the cache
is never valid).

    python scripts/check-template.py [TEMPLATE]   # check (default: template.yaml)
    python scripts/check-template.py --self-test  # also prove that mutations fail

Exit status 0 when every check passes; otherwise each failure is printed.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

# The translator warns about its own usage metrics, which it never sends here.
logging.getLogger("samtranslator").setLevel(logging.ERROR)
ROOT = Path(__file__).resolve().parent.parent
PSEUDO = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "form-bridge",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": [],
}
# Every function's metrics carry the stack's name as a dimension (from
# this variable), so the alarms of one stack watch only its own metrics.
STACK_VARIABLE = "STACK_NAME"
STACK_DIMENSION = "Stack"
METRICS_NAMESPACE = "FormBridge"
FUNCTIONS = {
    # logical ID: (binary, environment variables it reads, required ones)
    "AuthorizerFunction": (
        "authorizer",
        {"TENANT_SECRET_PREFIX", "SECRET_CACHE_TTL_SECONDS", "REPLAY_WINDOW_SECONDS", "LOG_LEVEL", STACK_VARIABLE},
        {STACK_VARIABLE},
    ),
    "IngestFunction": (
        "ingest",
        {"EVENT_BUS_NAME", "EVENT_SOURCE", "MAX_BODY_BYTES", "REPLAY_WINDOW_SECONDS",
         "IDEMPOTENCY_TABLE", "IDEMPOTENCY_TTL_SECONDS", "TENANT_SECRET_PREFIX",
         "SECRET_CACHE_TTL_SECONDS", "LOG_LEVEL", STACK_VARIABLE},
        # Without a table each execution environment keeps its own keys,
        # and a replay reaching another one is accepted again.
        {"EVENT_BUS_NAME", "IDEMPOTENCY_TABLE", "TENANT_SECRET_PREFIX", STACK_VARIABLE},
    ),
    # The ingest binary again, in tenant isolation mode, behind the isolated
    # REST API (only when EnableTenantIsolation is "true").
    "IsolatedIngestFunction": (
        "ingest",
        {"EVENT_BUS_NAME", "EVENT_SOURCE", "MAX_BODY_BYTES", "REPLAY_WINDOW_SECONDS",
         "IDEMPOTENCY_TABLE", "IDEMPOTENCY_TTL_SECONDS", "TENANT_SECRET_PREFIX",
         "SECRET_CACHE_TTL_SECONDS", "LOG_LEVEL", STACK_VARIABLE},
        {"EVENT_BUS_NAME", "IDEMPOTENCY_TABLE", "TENANT_SECRET_PREFIX", STACK_VARIABLE},
    ),
    "ConnectorFunction": (
        "connector",
        {
            "TENANT_SECRET_PREFIX", "SECRET_CACHE_TTL_SECONDS", "ALLOW_PRIVATE_DESTINATIONS",
            "DELIVERY_TIMEOUT_MS", "DELIVERY_ATTEMPTS", "DELIVERY_CONCURRENCY", "SLOW_DELIVERY_MS",
            "BREAKER_FAILURE_THRESHOLD", "BREAKER_FAILURE_RATE_PERCENT", "BREAKER_WINDOW",
            "BREAKER_MINIMUM_CALLS", "BREAKER_COOL_DOWN_SECONDS", "LOG_LEVEL", STACK_VARIABLE,
        },
        {STACK_VARIABLE},
    ),
}
ROUTE = "/v1/tenants/{tenant_id}/submissions"
SOURCE_ROUTE = "/v1/tenants/{tenant_id}/sources/{source_id}"
IDENTITY = [
    "$request.header.X-FormBridge-Signature",
    "$request.header.X-FormBridge-Timestamp",
    "$request.header.Content-Digest",
]
# Providers send none of the signature headers. No identity at all would
# leave SAM emitting no TTL (API Gateway's caching default); this one is
# on every request and not secret, so the authorizer runs every time.
SOURCE_IDENTITY = ["$context.routeKey"]
# Each route, the identity sources of its authorizer.
ROUTES = {ROUTE: IDENTITY, SOURCE_ROUTE: SOURCE_IDENTITY}
# API Gateway keeps a throttle per route: the stage's defaults serve the
# submissions route, and the source route, which anyone who knows a source
# URL can call, has its own, from its own parameters. The stage's route
# settings are keyed by route key, "METHOD path".
SOURCE_ROUTE_KEY = f"POST {SOURCE_ROUTE}"
API_THROTTLE = {"ThrottlingRateLimit": "ThrottlingRateLimit", "ThrottlingBurstLimit": "ThrottlingBurstLimit"}
SOURCE_THROTTLE = {"ThrottlingRateLimit": "SourceThrottlingRateLimit", "ThrottlingBurstLimit": "SourceThrottlingBurstLimit"}
# Ingest's duration per request that its reservation is sized for (about
# 20 ms measured on AWS, mostly PutEvents): both routes at their default
# rates must fit in its default reservation, so a source flood cannot take
# what the submissions route needs.
INGEST_SIZING_SECONDS = 0.030
# The item calls the idempotency store makes, and nothing else on DynamoDB.
IDEMPOTENCY_ACTIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:GetItem"}
IDEMPOTENCY_TTL_ATTRIBUTE = "expires_at"
# Actions each role may be granted, and nothing else.
ROLE_ACTIONS = {
    "AuthorizerRole": {
        "logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue", "secretsmanager:ListSecrets",
    },
    "IngestRole": {
        "logs:CreateLogStream", "logs:PutLogEvents", "events:PutEvents", *IDEMPOTENCY_ACTIONS,
        "secretsmanager:GetSecretValue", "secretsmanager:ListSecrets",
    },
    "IsolatedIngestRole": {
        "logs:CreateLogStream", "logs:PutLogEvents", "events:PutEvents", *IDEMPOTENCY_ACTIONS,
        "secretsmanager:GetSecretValue", "secretsmanager:ListSecrets",
    },
    "ConnectorRole": {
        "logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue", "secretsmanager:ListSecrets",
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    },
}
# The one action allowed on every resource: it has no resource-level
# permissions, and it returns secrets' names and metadata, never values
# (the functions' directory of known tenant IDs). Only these roles, and only
# in a statement of its own.
LIST_SECRETS = "secretsmanager:ListSecrets"
LIST_SECRETS_ROLES = {"AuthorizerRole", "ConnectorRole", "IngestRole", "IsolatedIngestRole"}
# The roles that may touch the idempotency table: ingest's, on either path.
DYNAMODB_ROLES = {"IngestRole", "IsolatedIngestRole"}
# Each function's role, and the parameter its reserved concurrency comes from.
FUNCTION_ROLES = {
    "AuthorizerFunction": "AuthorizerRole",
    "IngestFunction": "IngestRole",
    "IsolatedIngestFunction": "IsolatedIngestRole",
    "ConnectorFunction": "ConnectorRole",
}
RESERVATIONS = {
    "AuthorizerFunction": "AuthorizerReservedConcurrency",
    "IngestFunction": "IngestReservedConcurrency",
    "IsolatedIngestFunction": "IsolatedIngestReservedConcurrency",
    "ConnectorFunction": "ConnectorReservedConcurrency",
}
# Lambda's default concurrency per account and Region, and what it keeps
# unreserved: the default reservations together must fit in the difference.
ACCOUNT_CONCURRENCY = 1000
UNRESERVED_MINIMUM = 100
TARGET_KEYS = {"Id", "Arn", "RetryPolicy", "DeadLetterConfig"}
MAX_EVENT_BYTES = 1_048_576  # EventBridge PutEvents request size
# ------------------------------------------------ the largest event on a queue
# SQS's largest message (1 MiB since 2025; the queues' MaximumMessageSize),
# which counts the body and the message attributes.
SQS_MAX_MESSAGE_BYTES = 1_048_576
# What EventBridge adds around a body on its way to a queue, at its worst.
# A JSON body is the detail's payload byte for byte (docs/protocol.md,
# section 5); EventBridge is taken to deliver the detail as it was put
# (not measured here: no AWS account). The values below are the longest
# each field can be; a string counts twice where JSON may escape every
# character of it.
WORST_DETAIL = {
    "version": "1",
    "submission_id": "x" * 128,  # any producer's ID (ingest's are 36)
    "tenant_id": "t" * 63,
    "routing": "dedicated",
    "received_at": "2026-01-01T00:00:00.000Z",
    "content_type": "application/x-www-form-urlencoded",  # the longest ingest writes
    "payload": None,  # the body
    "source": {
        "id": "s" * 63,
        "provider": "p" * 32,
        # Up to 255 printable ASCII characters, each escaped in the worst case.
        "event_id": '"' * 255,
        "event_type": '"' * 255,
    },
}
# The event as EventBridge delivers it to an SQS target; the source is
# EventSource at its longest (MaxLength), filled in by worst_event_overhead.
WORST_ENVELOPE = {
    "version": "0",
    "id": "i" * 36,
    "detail-type": "form.submission",
    "source": None,
    "account": "1" * 12,
    "time": "2026-01-01T00:00:00Z",
    "region": "r" * 32,  # the longest Region names are 14
    "resources": [],
    "detail": None,
}
# What the events dead-letter queue adds to an event it could not put on a
# queue: the message attributes RULE_ARN, TARGET_ARN, ERROR_CODE,
# ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION and RETRY_ATTEMPTS (names,
# types and values; the ARNs ~450 bytes together, the error message
# unbounded in the documentation: 1 KiB allowed).
DLQ_ATTRIBUTE_BYTES = 2_048
# ---------------------------------------------------------- isolated path
# The switch, "true" or "false", "false" by default; and the parameters only
# the isolated path reads (in the template whatever the switch says).
ISOLATION_PARAMETER = "EnableTenantIsolation"
ISOLATION_PARAMETERS = {ISOLATION_PARAMETER, "IsolatedIngestReservedConcurrency"}
# What exists only with the switch on: these resources (and what SAM
# generates from them: the REST API's deployment and stage) and output.
ISOLATED_API = "IsolatedApi"
ISOLATED_FUNCTION = "IsolatedIngestFunction"
ISOLATED_ROLE = "IsolatedIngestRole"
ISOLATED_OUTPUT = "IsolatedApiUrl"
ISOLATED_ONLY = {ISOLATED_FUNCTION, ISOLATED_ROLE}
ISOLATED_STAGE = "isolated"
# Lambda takes the tenant ID of an invoke from this header; the REST
# integration sets it from the authorizer's tenant_id, never from anything
# the client sends.
TENANT_HEADER = "integration.request.header.X-Amz-Tenant-Id"
TENANT_SOURCE = "context.authorizer.tenant_id"
TENANCY = {"TenantIsolationMode": "PER_TENANT"}
# The REST authorizers' identity sources, per route: the signature headers
# (missing ones are answered 401 without calling the function), and none on
# the source route (REST allows none when caching is off).
REST_ROUTES = {
    ROUTE: {f"method.request.header.{h}" for h in ("X-FormBridge-Signature", "X-FormBridge-Timestamp", "Content-Digest")},
    SOURCE_ROUTE: set(),
}


def resource_path(path: str) -> str:
    """How a stage's method settings name a resource: every "/" written
    "~1", after a leading "/" (/a/b is /~1a~1b; "/*" with method "*" is every
    method's default)."""
    return "/" + path.replace("/", "~1")


SOURCE_RESOURCE_PATH = resource_path(SOURCE_ROUTE)
# The HTTP API's bodies for what API Gateway answers itself.
GATEWAY_RESPONSES = {
    "ACCESS_DENIED": ("403", "Forbidden"),
    "UNAUTHORIZED": ("401", "Unauthorized"),
    "THROTTLED": ("429", "Too Many Requests"),
}
# A REST API's longest integration timeout (29 s by default).
REST_INTEGRATION_TIMEOUT_MS = 29_000
DEFAULT_MAX_BODY_BYTES = 262_144  # ingest's default (docs/protocol.md, section 7)


def compact_json_bytes(value) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def worst_event_overhead(source_max: int) -> int:
    """Bytes an event on a dead-letter queue can have beyond its body: the
    detail's other fields, EventBridge's envelope with a Source of
    `source_max` characters, and the dead-letter attributes."""
    envelope = dict(WORST_ENVELOPE, source='"' * source_max)
    # Both "payload" and "detail" are null above: 4 bytes each to replace.
    return compact_json_bytes(WORST_DETAIL) - 4 + compact_json_bytes(envelope) - 4 + DLQ_ATTRIBUTE_BYTES


class Checker:
    """Checks one generated stack: `isolated` says whether it was generated
    with the isolated path switched on."""

    def __init__(self, source: dict, generated: dict, isolated: bool) -> None:
        self.source = source
        self.t = generated
        self.res = generated["Resources"]
        self.params = source.get("Parameters", {})
        self.isolated = isolated
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)

    def of_type(self, kind: str) -> dict:
        return {k: r for k, r in self.res.items() if r["Type"] == kind}

    def param_default(self, value):
        """A literal, or the default of a `Ref`'d parameter."""
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in self.params:
            return self.params[value["Ref"]].get("Default")
        return value

    def expected(self, names) -> set[str]:
        """These names, less the isolated path's when it is off."""
        return set(names) if self.isolated else set(names) - ISOLATED_ONLY

    # ---------------------------------------------------------------- checks
    def functions(self) -> None:
        fns = self.of_type("AWS::Lambda::Function")
        wanted = self.expected(FUNCTIONS)
        self.check(set(fns) == wanted, f"functions are {sorted(fns)}, expected {sorted(wanted)}")
        for name, (binary, known_env, required_env) in FUNCTIONS.items():
            if name not in wanted:
                continue
            fn = fns.get(name, {}).get("Properties", {})
            self.check(fn.get("Runtime") == "provided.al2023", f"{name}: Runtime is {fn.get('Runtime')}")
            self.check(fn.get("Architectures") == ["arm64"], f"{name}: Architectures is {fn.get('Architectures')}")
            self.check(fn.get("Handler") == "bootstrap", f"{name}: Handler is {fn.get('Handler')}")
            self.check(
                self.param_default(fn.get("MemorySize")) == 128,
                f"{name}: MemorySize default is {self.param_default(fn.get('MemorySize'))}, measured need is 128 MB",
            )
            logging = fn.get("LoggingConfig", {})
            self.check(logging.get("LogFormat") == "JSON", f"{name}: LoggingConfig.LogFormat is not JSON")
            group = ref(logging.get("LogGroup"))
            self.check(
                group in self.res and "RetentionInDays" in self.res[group].get("Properties", {}),
                f"{name}: LoggingConfig.LogGroup is not a log group of this stack with a retention",
            )
            meta = self.source["Resources"].get(name, {}).get("Metadata", {})
            self.check(meta.get("BuildMethod") == "rust-cargolambda", f"{name}: Metadata.BuildMethod is not rust-cargolambda")
            self.check(
                meta.get("BuildProperties", {}).get("Binary") == binary,
                f"{name}: Metadata.BuildProperties.Binary is not {binary}",
            )
            self.check(binary in workspace_binaries(), f"{name}: no workspace binary named {binary}")
            env = set(fn.get("Environment", {}).get("Variables", {}))
            self.check(env <= known_env, f"{name}: unknown environment variables {sorted(env - known_env)}")
            self.check(required_env <= env, f"{name}: missing environment variables {sorted(required_env - env)}")
            stack = fn.get("Environment", {}).get("Variables", {}).get(STACK_VARIABLE)
            self.check(
                stack is None or stack == {"Ref": "AWS::StackName"},
                f"{name}: {STACK_VARIABLE} is {stack!r}, expected !Ref AWS::StackName (its metrics' {STACK_DIMENSION} dimension, which the alarms watch)",
            )
        timeouts = {n: fns.get(n, {}).get("Properties", {}).get("Timeout", 3) for n in FUNCTIONS}
        self.check(timeouts["AuthorizerFunction"] <= 10, "authorizer timeout over 10 s")
        self.check(timeouts["IngestFunction"] < 30, "ingest timeout not under the API's 30 s integration timeout")
        # Ingest's slowest request: record 5 s + claim 2 s + publishing 7 s
        # + completion 2 s, every service slow at once on a source route.
        self.check(
            timeouts["IngestFunction"] >= 16,
            "ingest timeout under 16 s, the sum of its own bounds (docs/fault-matrix.md)",
        )
        if self.isolated:
            self.check(
                timeouts[ISOLATED_FUNCTION] * 1000 < REST_INTEGRATION_TIMEOUT_MS,
                f"{ISOLATED_FUNCTION}: timeout not under the REST API's 29 s integration timeout",
            )
        self.check(timeouts["ConnectorFunction"] <= 120, "connector timeout over 120 s")

    def concurrency(self) -> None:
        """Each function's reservation is its parameter, and none when the
        parameter is 0 (a reservation of 0 stops the function)."""
        fns = self.of_type("AWS::Lambda::Function")
        conditions = self.t.get("Conditions", {})
        for name, param in RESERVATIONS.items():
            spec = self.params.get(param)
            if spec is None:
                self.check(False, f"no parameter {param}")
            else:
                default = spec.get("Default")
                self.check(spec.get("Type") == "Number", f"{param}: Type is {spec.get('Type')}, expected Number")
                self.check(spec.get("MinValue") == 0, f"{param}: MinValue is {spec.get('MinValue')}, expected 0 (0 = no reservation)")
                self.check(isinstance(default, int) and default >= 1, f"{param}: default {default!r} reserves nothing")
            if name not in self.expected(RESERVATIONS):
                continue
            reserved = fns.get(name, {}).get("Properties", {}).get("ReservedConcurrentExecutions")
            branches = reserved.get("Fn::If") if isinstance(reserved, dict) else None
            self.check(
                isinstance(branches, list) and len(branches) == 3
                and branches[1] == {"Ref": param} and branches[2] == {"Ref": "AWS::NoValue"},
                f"{name}: ReservedConcurrentExecutions is not !If [condition, !Ref {param}, !Ref AWS::NoValue] ({reserved!r})",
            )
            condition = conditions.get(branches[0]) if isinstance(branches, list) and branches else None
            self.check(
                is_nonzero(condition, param),
                f"{name}: the condition of its reservation is not !Not [!Equals [!Ref {param}, \"0\"]] ({condition!r})",
            )
        defaults = [self.params.get(p, {}).get("Default") for p in RESERVATIONS.values()]
        if all(isinstance(d, int) for d in defaults):
            self.check(
                sum(defaults) <= ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM,
                f"the default reservations add up to {sum(defaults)}: a default account "
                f"({ACCOUNT_CONCURRENCY}) must keep {UNRESERVED_MINIMUM} unreserved",
            )
        connector = self.params.get("ConnectorReservedConcurrency", {}).get("Default")
        shared = self.params.get("ConnectorMaxConcurrency", {}).get("Default")
        self.check(
            isinstance(connector, int) and isinstance(shared, int) and connector >= shared,
            f"ConnectorReservedConcurrency's default {connector!r} is under the shared mapping's ConnectorMaxConcurrency {shared!r}",
        )
        output = self.t.get("Outputs", {}).get("ConnectorReservedConcurrency", {}).get("Value")
        self.check(
            output == {"Ref": "ConnectorReservedConcurrency"},
            "output ConnectorReservedConcurrency is not the parameter (mapping concurrencies must fit in it)",
        )
        for name, role in FUNCTION_ROLES.items():
            if name not in self.expected(FUNCTION_ROLES):
                continue
            got = ref(fns.get(name, {}).get("Properties", {}).get("Role"))
            self.check(got == role, f"{name}: runs as {got}, expected {role}")

    def api(self) -> None:
        apis = self.of_type("AWS::ApiGatewayV2::Api")
        self.check(len(apis) == 1, f"{len(apis)} HTTP APIs, expected 1")
        body = next(iter(apis.values()), {}).get("Properties", {}).get("Body", {})
        schemes = body.get("components", {}).get("securitySchemes", {})
        self.check(len(schemes) == len(ROUTES), f"{len(schemes)} authorizers, expected one per route ({len(ROUTES)})")
        paths = body.get("paths", {})
        self.check(set(paths) == set(ROUTES), f"routes are {list(paths)}, expected POST {sorted(ROUTES)}")
        for path, identity in ROUTES.items():
            route = paths.get(path, {})
            self.check(list(route) == ["post"], f"{path} methods are {list(route)}, expected post")
            post = route.get("post", {})
            security = post.get("security", [])
            name = next(iter(security[0]), None) if len(security) == 1 and security[0] else None
            self.check(name in schemes, f"{path} is not protected by an authorizer")
            auth = schemes.get(name, {}).get("x-amazon-apigateway-authorizer", {})
            self.authorizer(f"{path}'s authorizer {name}", auth, identity)
            integration = post.get("x-amazon-apigateway-integration", {})
            self.check(integration.get("payloadFormatVersion") == "2.0", f"{path}: ingest integration payload format is not 2.0")
            self.check(invokes(integration.get("uri"), "IngestFunction"), f"{path} does not call IngestFunction")
        stages = self.of_type("AWS::ApiGatewayV2::Stage")
        stage = next(iter(stages.values()), {}).get("Properties", {})
        self.throttling(stage, paths)
        self.check("AccessLogSettings" in stage, "the API's stage has no access logs")
        self.largest_event()
        ingest_env = self.res.get("IngestFunction", {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        self.check(ingest_env.get("MAX_BODY_BYTES") == {"Ref": "MaxBodyBytes"}, "ingest's MAX_BODY_BYTES is not the MaxBodyBytes parameter")
        self.check(ingest_env.get("REPLAY_WINDOW_SECONDS") == {"Ref": "ReplayWindowSeconds"},
                   "ingest's REPLAY_WINDOW_SECONDS is not the ReplayWindowSeconds parameter (its idempotency keys must outlive the authorizer's window)")

    def largest_event(self) -> None:
        """A body of MaxBodyBytes at its largest, with everything EventBridge
        and the dead-letter queue add around it at their longest, fits in
        every queue's largest message: an event that does not is refused by
        SQS and survives only in the archive."""
        max_body = self.params.get("MaxBodyBytes", {})
        largest = max_body.get("MaxValue")
        self.check(max_body.get("Default") == DEFAULT_MAX_BODY_BYTES, "MaxBodyBytes must default to ingest's 262144")
        source_max = self.params.get("EventSource", {}).get("MaxLength")
        if not isinstance(largest, int) or not isinstance(source_max, int):
            self.check(False, "MaxBodyBytes needs a MaxValue and EventSource a MaxLength (the largest event must be known)")
            return
        queues = ("SharedQueue", "SharedDeadLetterQueue", "EventTargetDeadLetterQueue")
        room = min(self.res.get(q, {}).get("Properties", {}).get("MaximumMessageSize", 262_144) for q in queues)
        room = min(room, SQS_MAX_MESSAGE_BYTES)
        overhead = worst_event_overhead(source_max)
        self.check(
            largest + overhead <= room,
            f"MaxBodyBytes' MaxValue {largest} plus the worst envelope {overhead} (the detail's fields, EventBridge's "
            f"event with a {source_max}-character source, the dead-letter attributes) is {largest + overhead} bytes, "
            f"over the queues' {room}: such an event would be refused by SQS and kept only in the archive",
        )

    def throttling(self, stage: dict, paths: dict) -> None:
        """The stage's defaults throttle the submissions route from the API's
        parameters; the source route has its own rate and burst, from its
        own parameters, whose defaults are at most the API's and leave
        ingest's reservation room for both routes."""
        defaults = stage.get("DefaultRouteSettings", {})
        for key, param in API_THROTTLE.items():
            self.check(
                defaults.get(key) == {"Ref": param},
                f"the stage's DefaultRouteSettings {key} is {defaults.get(key)!r}, expected !Ref {param}",
            )
        settings = stage.get("RouteSettings", {})
        if not isinstance(settings, dict):
            self.check(False, f"the stage's RouteSettings is {settings!r}, expected a map of route keys")
            settings = {}
        # A key that names no route fails the deploy, or throttles nothing.
        route_keys = {f"{method.upper()} {path}" for path, route in paths.items() for method in route}
        unknown = set(settings) - route_keys
        self.check(not unknown, f"the stage's RouteSettings name no route of the API: {sorted(unknown)} (route keys are {sorted(route_keys)})")
        source = settings.get(SOURCE_ROUTE_KEY)
        if not isinstance(source, dict):
            self.check(False, f"the source route has no RouteSettings of its own (\"{SOURCE_ROUTE_KEY}\"): a flood at a source URL is bounded only by the API's throttle")
            source = {}
        # A route's entry replaces the defaults: a value left out is not the stage's.
        for key, param in SOURCE_THROTTLE.items():
            self.check(
                source.get(key) == {"Ref": param},
                f"the source route's {key} is {source.get(key)!r}, expected !Ref {param}",
            )
        for (key, api_param), source_param in zip(API_THROTTLE.items(), SOURCE_THROTTLE.values()):
            spec = self.params.get(source_param)
            if spec is None:
                self.check(False, f"no parameter {source_param}")
                continue
            default = spec.get("Default")
            api_default = self.params.get(api_param, {}).get("Default")
            self.check(spec.get("Type") == "Number", f"{source_param}: Type is {spec.get('Type')}, expected Number")
            self.check(spec.get("MinValue", 0) >= 1, f"{source_param}: MinValue is {spec.get('MinValue')}, expected at least 1 (0 refuses every request)")
            self.check(
                isinstance(default, int) and isinstance(api_default, int) and 1 <= default <= api_default,
                f"{source_param}'s default {default!r} is not between 1 and {api_param}'s {api_default!r}",
            )
        rates = [self.params.get(p, {}).get("Default") for p in ("ThrottlingRateLimit", "SourceThrottlingRateLimit")]
        reserved = self.params.get("IngestReservedConcurrency", {}).get("Default")
        if all(isinstance(r, int) for r in rates) and isinstance(reserved, int):
            self.check(
                sum(rates) * INGEST_SIZING_SECONDS <= reserved,
                f"both routes at their default rates ({rates[0]} + {rates[1]}/s) at {INGEST_SIZING_SECONDS * 1000:.0f} ms "
                f"need {sum(rates) * INGEST_SIZING_SECONDS:.0f} ingest executions, over IngestReservedConcurrency's {reserved}",
            )

    def authorizer(self, what: str, auth: dict, identity: list[str]) -> None:
        """A REQUEST authorizer calling AuthorizerFunction, payload 2.0,
        simple responses, never cached, with exactly these identity sources."""
        self.check(auth.get("type") == "request", f"{what}: type is not request")
        self.check(
            auth.get("authorizerResultTtlInSeconds") == 0,
            f"{what}: results cached ({auth.get('authorizerResultTtlInSeconds', 'no TTL set: API Gateway default')} s): "
            "ReauthorizeEvery must be 0 (a cached allow lets replays through)",
        )
        self.check(auth.get("authorizerPayloadFormatVersion") == "2.0", f"{what}: payload format is not 2.0")
        self.check(auth.get("enableSimpleResponses") is True, f"{what}: simple responses are not enabled")
        self.check(
            sorted(auth.get("identitySource", [])) == sorted(identity),
            f"{what}: identity sources are {auth.get('identitySource')}, expected {identity}",
        )
        self.check(invokes(auth.get("authorizerUri"), "AuthorizerFunction"), f"{what}: does not call AuthorizerFunction")

    def idempotency(self) -> None:
        """One on-demand table keyed by the binary hashed key, TTL on
        expires_at, encrypted; ingest is told its name and TTL."""
        tables = self.of_type("AWS::DynamoDB::Table")
        self.check(set(tables) == {"IdempotencyTable"}, f"DynamoDB tables are {sorted(tables)}, expected IdempotencyTable")
        table = tables.get("IdempotencyTable", {}).get("Properties", {})
        self.check(table.get("BillingMode") == "PAY_PER_REQUEST", f"IdempotencyTable: BillingMode is {table.get('BillingMode')}, expected PAY_PER_REQUEST")
        self.check(
            table.get("KeySchema") == [{"AttributeName": "pk", "KeyType": "HASH"}]
            and table.get("AttributeDefinitions") == [{"AttributeName": "pk", "AttributeType": "B"}],
            "IdempotencyTable: the key is not pk, binary, hash only (the store writes 32-byte hashed keys)",
        )
        ttl = table.get("TimeToLiveSpecification", {})
        self.check(
            ttl.get("AttributeName") == IDEMPOTENCY_TTL_ATTRIBUTE and ttl.get("Enabled") is True,
            f"IdempotencyTable: TTL is not enabled on {IDEMPOTENCY_TTL_ATTRIBUTE} (old keys would stay forever)",
        )
        self.check(table.get("SSESpecification", {}).get("SSEEnabled") is True, "IdempotencyTable: SSE is not enabled")
        self.check(not table.get("GlobalSecondaryIndexes") and not table.get("StreamSpecification"),
                   "IdempotencyTable: has indexes or a stream (nothing reads keys but ingest)")
        ingest_env = self.res.get("IngestFunction", {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        self.check(ingest_env.get("IDEMPOTENCY_TABLE") == {"Ref": "IdempotencyTable"}, "ingest's IDEMPOTENCY_TABLE is not the stack's table")
        self.check(
            ingest_env.get("IDEMPOTENCY_TTL_SECONDS") == {"Ref": "IdempotencyTtlSeconds"},
            "ingest's IDEMPOTENCY_TTL_SECONDS is not the IdempotencyTtlSeconds parameter",
        )
        param = self.params.get("IdempotencyTtlSeconds", {})
        window = self.params.get("ReplayWindowSeconds", {}).get("Default", 300)
        self.check(
            param.get("Type") == "Number" and param.get("Default") == 86400
            and param.get("MinValue", 0) >= 2 * window and param.get("MaxValue", 1 << 40) <= 30 * 86400,
            "parameter IdempotencyTtlSeconds must be a Number defaulting to 86400, from twice the default replay window to 30 days",
        )
        for name in ("TENANT_SECRET_PREFIX", "SECRET_CACHE_TTL_SECONDS"):
            param = {"TENANT_SECRET_PREFIX": "TenantSecretPrefix", "SECRET_CACHE_TTL_SECONDS": "SecretCacheTtlSeconds"}[name]
            self.check(ingest_env.get(name) == {"Ref": param}, f"ingest's {name} is not the {param} parameter (the source route's secrets)")

    def routing(self) -> None:
        buses = self.of_type("AWS::Events::EventBus")
        self.check(len(buses) == 1, f"{len(buses)} event buses, expected 1")
        bus = next(iter(buses), None)
        ingest_env = self.res.get("IngestFunction", {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        self.check(ref(ingest_env.get("EVENT_BUS_NAME")) == bus, "ingest does not publish to the stack's bus")
        rules = self.of_type("AWS::Events::Rule")
        self.check(set(rules) == {"SharedRule"}, f"rules are {sorted(rules)}, expected SharedRule (dedicated ones are made by the CLI)")
        rule = rules.get("SharedRule", {}).get("Properties", {})
        self.check(ref(rule.get("EventBusName")) == bus, "SharedRule is not on the stack's bus")
        pattern = rule.get("EventPattern", {})
        self.check(pattern.get("detail", {}).get("routing") == ["shared"], "SharedRule does not match routing: shared")
        self.check(pattern.get("detail-type") == ["form.submission"], "SharedRule does not match form.submission")
        self.check(pattern.get("source") == [{"Ref": "EventSource"}], "SharedRule does not match the EventSource parameter")
        targets = rule.get("Targets", [])
        self.check(len(targets) == 1, "SharedRule must have exactly one target")
        for target in targets:
            self.check(set(target) <= TARGET_KEYS, f"SharedRule target has unknown keys {sorted(set(target) - TARGET_KEYS)}")
            self.check(ref(target.get("Arn")) == "SharedQueue", "SharedRule's target is not SharedQueue")
            retry = target.get("RetryPolicy", {})
            self.check(
                set(retry) == {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"},
                "SharedRule's target has no explicit RetryPolicy",
            )
            self.check(
                ref(target.get("DeadLetterConfig", {}).get("Arn")) == "EventTargetDeadLetterQueue",
                "SharedRule's target has no dead-letter queue",
            )
        self.check("AWS::Events::Archive" in {r["Type"] for r in self.res.values()}, "no event archive")

    def queues(self) -> None:
        queue = self.res.get("SharedQueue", {}).get("Properties", {})
        redrive = queue.get("RedrivePolicy", {})
        self.check(ref(redrive.get("deadLetterTargetArn")) == "SharedDeadLetterQueue", "SharedQueue has no redrive policy to SharedDeadLetterQueue")
        self.check("maxReceiveCount" in redrive, "SharedQueue's redrive policy has no maxReceiveCount")
        timeout = self.res.get("ConnectorFunction", {}).get("Properties", {}).get("Timeout", 3)
        self.check(
            queue.get("VisibilityTimeout", 30) >= 6 * timeout,
            f"SharedQueue visibility timeout {queue.get('VisibilityTimeout', 30)} s is under 6x the connector's {timeout} s",
        )
        mappings = self.of_type("AWS::Lambda::EventSourceMapping")
        self.check(len(mappings) == 1, f"{len(mappings)} event source mappings, expected 1")
        esm = next(iter(mappings.values()), {}).get("Properties", {})
        self.check(ref(esm.get("EventSourceArn")) == "SharedQueue", "the event source mapping does not read SharedQueue")
        self.check(ref(esm.get("FunctionName")) == "ConnectorFunction", "the event source mapping does not feed ConnectorFunction")
        self.check(esm.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "the event source mapping does not ReportBatchItemFailures")
        self.check(esm.get("BatchSize") == {"Ref": "ConnectorBatchSize"}, "BatchSize is not the ConnectorBatchSize parameter")
        self.check(
            esm.get("ScalingConfig", {}).get("MaximumConcurrency") == {"Ref": "ConnectorMaxConcurrency"},
            "ScalingConfig.MaximumConcurrency is not the ConnectorMaxConcurrency parameter",
        )
        for name in ("SharedQueue", "SharedDeadLetterQueue", "EventTargetDeadLetterQueue"):
            props = self.res.get(name, {}).get("Properties", {})
            self.check(props.get("MessageRetentionPeriod") == 1_209_600, f"{name} does not keep messages 14 days")
            self.check(props.get("MaximumMessageSize") == 1_048_576, f"{name} does not take 1 MiB events")
        policies = self.of_type("AWS::SQS::QueuePolicy")
        covered = {ref(q) for p in policies.values() for q in p["Properties"].get("Queues", [])}
        for name in ("SharedQueue", "EventTargetDeadLetterQueue"):
            self.check(name in covered, f"{name} has no queue policy letting the bus's rules send to it")
        for name, policy in policies.items():
            for st in policy["Properties"]["PolicyDocument"]["Statement"]:
                self.check(st.get("Principal") == {"Service": "events.amazonaws.com"}, f"{name}: principal is not EventBridge")
                self.check(st.get("Action") == "sqs:SendMessage", f"{name}: action is not sqs:SendMessage")
                self.check("aws:SourceArn" in json.dumps(st.get("Condition")), f"{name}: no aws:SourceArn condition")

    def iam(self) -> None:
        roles = self.of_type("AWS::IAM::Role")
        wanted = self.expected(ROLE_ACTIONS)
        self.check(set(roles) == wanted, f"roles are {sorted(roles)}, expected {sorted(wanted)}")
        listing: set[str] = set()
        granted_dynamodb: dict[str, set[str]] = {}
        for name, role in roles.items():
            props = role["Properties"]
            self.check(not props.get("ManagedPolicyArns"), f"{name}: has managed policies (their actions are not least privilege)")
            for policy in props.get("Policies", []):
                for st in policy["PolicyDocument"]["Statement"]:
                    actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                    for action in actions:
                        self.check("*" not in action, f"{name}: wildcard action {action}")
                        self.check(action in ROLE_ACTIONS.get(name, set()), f"{name}: action {action} is not needed")
                    resources = st.get("Resource")
                    resources = resources if isinstance(resources, list) else [resources]
                    if LIST_SECRETS in actions:
                        listing.add(name)
                        self.check(
                            actions == [LIST_SECRETS] and resources == ["*"] and not st.get("NotResource"),
                            f"{name}: {LIST_SECRETS} must be alone in its statement, on Resource \"*\" "
                            "(nothing else may be granted on every resource)",
                        )
                        continue
                    self.check("*" not in resources, f"{name}: an action on every resource")
                    text = json.dumps(resources)
                    if any(a.startswith("secretsmanager:") for a in actions):
                        self.check("secret:${TenantSecretPrefix}*" in text, f"{name}: secrets not limited to the tenant prefix")
                    if any(a.startswith("dynamodb:") for a in actions):
                        granted_dynamodb.setdefault(name, set()).update(actions)
                        self.check(
                            resources == [{"Fn::GetAtt": ["IdempotencyTable", "Arn"]}] and not st.get("Condition"),
                            f"{name}: DynamoDB actions on something other than the idempotency table",
                        )
                    if any(a.startswith("events:") for a in actions):
                        self.check(resources == [{"Fn::GetAtt": ["EventBus", "Arn"]}], f"{name}: PutEvents not limited to the bus")
                    if any(a.startswith("sqs:") for a in actions):
                        self.check(
                            all(":sqs:" in json.dumps(r) or ref(r) == "SharedQueue" for r in resources),
                            f"{name}: queue actions on something other than queues",
                        )
        # Only ingest touches the table (on either path), with exactly the
        # calls it makes.
        dynamodb_roles = self.expected(DYNAMODB_ROLES)
        self.check(
            set(granted_dynamodb) == dynamodb_roles,
            f"DynamoDB access is granted to {sorted(granted_dynamodb)}, expected {sorted(dynamodb_roles)} only",
        )
        for role in sorted(dynamodb_roles):
            ingest_dynamodb = {a for a in granted_dynamodb.get(role, set()) if a.startswith("dynamodb:")}
            self.check(
                ingest_dynamodb == IDEMPOTENCY_ACTIONS,
                f"{role}: DynamoDB actions are {sorted(ingest_dynamodb)}, expected {sorted(IDEMPOTENCY_ACTIONS)}",
            )
        listing_roles = self.expected(LIST_SECRETS_ROLES)
        self.check(
            listing == listing_roles,
            f"{LIST_SECRETS} (the directory of tenant IDs) is granted to {sorted(listing)}, expected {sorted(listing_roles)}",
        )
        self.log_permissions(roles)

    def log_permissions(self, roles: dict) -> None:
        """Each function's role writes to that function's own log group."""
        fns = self.of_type("AWS::Lambda::Function")
        for name, role in FUNCTION_ROLES.items():
            if name not in fns:
                continue
            group = ref(fns[name]["Properties"].get("LoggingConfig", {}).get("LogGroup"))
            targets = []
            for policy in roles.get(role, {}).get("Properties", {}).get("Policies", []):
                for st in policy["PolicyDocument"]["Statement"]:
                    actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                    if any(a.startswith("logs:") for a in actions):
                        targets.append(json.dumps(st.get("Resource")))
            self.check(
                bool(targets) and all(f'"${{{group}.Arn}}"' in t or f'["{group}", "Arn"]' in t for t in targets),
                f"{role}: does not write to {name}'s own log group {group} (its log permissions are on {targets})",
            )

    def alarms(self) -> None:
        alarms = [a["Properties"] for a in self.of_type("AWS::CloudWatch::Alarm").values()]

        def watched(metric: str, dimension_ref: str | None = None, dimension_value=None) -> bool:
            for a in alarms:
                if a.get("MetricName") != metric or not a.get("AlarmActions"):
                    continue
                values = [d["Value"] for d in a.get("Dimensions", [])]
                if dimension_ref and any(ref(v) == dimension_ref for v in values):
                    return True
                if dimension_value and dimension_value in values:
                    return True
            return False

        for queue in ("SharedDeadLetterQueue", "EventTargetDeadLetterQueue"):
            self.check(watched("ApproximateNumberOfMessagesVisible", queue), f"no depth alarm on {queue}")
        self.check(watched("ApproximateAgeOfOldestMessage", "SharedQueue"), "no age alarm on SharedQueue (a stalled connector)")
        self.check(watched("Errors", "ConnectorFunction"), "no alarm on connector errors")
        self.check(watched("Authorizations", dimension_value="deny"), "no alarm on authorizer deny spikes")
        self.slow_deliveries()
        self.own_metrics()

    def own_metrics(self) -> None:
        """Every alarm on Form-Bridge's own metrics watches this stack's only:
        without the stack dimension it would watch a metric no function
        writes (each line names its stack), and another stack's metric if
        it named a fixed one."""
        for name, alarm in sorted(self.of_type("AWS::CloudWatch::Alarm").items()):
            props = alarm["Properties"]
            namespaces = {props.get("Namespace")} | {
                q.get("MetricStat", {}).get("Metric", {}).get("Namespace") for q in props.get("Metrics", [])
            }
            if METRICS_NAMESPACE not in namespaces:
                continue
            self.check("Metrics" not in props, f"{name}: a metric-math alarm on {METRICS_NAMESPACE} (give it the {STACK_DIMENSION} dimension and teach this check)")
            stacks = [d.get("Value") for d in props.get("Dimensions", []) if d.get("Name") == STACK_DIMENSION]
            self.check(
                stacks == [{"Ref": "AWS::StackName"}],
                f"{name}: watches {METRICS_NAMESPACE} {props.get('MetricName')} without the dimension "
                f"{STACK_DIMENSION}=!Ref AWS::StackName (it would watch no stack's metric, or another stack's)",
            )

    def slow_deliveries(self) -> None:
        """The connector counts deliveries slower than SLOW_DELIVERY_MS; the
        alarm watches the aggregate (a tenant's own series carries TenantId
        too, and no alarm could name every tenant)."""
        connector_env = self.res.get("ConnectorFunction", {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        self.check(
            connector_env.get("SLOW_DELIVERY_MS") == {"Ref": "SlowDeliveryMs"},
            "the connector's SLOW_DELIVERY_MS is not the SlowDeliveryMs parameter",
        )
        slow = self.params.get("SlowDeliveryMs", {})
        timeout_max = self.params.get("DeliveryTimeoutMs", {}).get("MaxValue")
        self.check(
            slow.get("Type") == "Number" and slow.get("Default") == 2000 and slow.get("MinValue", 0) >= 1
            and slow.get("MaxValue") is not None and slow.get("MaxValue") <= (timeout_max or 0),
            "parameter SlowDeliveryMs must be a Number defaulting to 2000, at least 1 and at most DeliveryTimeoutMs's maximum",
        )
        threshold = self.params.get("SlowDeliveryAlarmThreshold", {})
        self.check(
            threshold.get("Type") == "Number" and isinstance(threshold.get("Default"), int)
            and threshold.get("Default") >= 1 and threshold.get("MinValue", 0) >= 1,
            "parameter SlowDeliveryAlarmThreshold must be a Number of at least 1",
        )
        alarm = self.res.get("SlowDeliveriesAlarm", {})
        props = alarm.get("Properties", {})
        if alarm.get("Type") != "AWS::CloudWatch::Alarm":
            self.check(False, "no SlowDeliveriesAlarm (the alarm on FormBridge SlowDeliveries, Function=connector)")
            return
        expected = {
            "Namespace": "FormBridge",
            "MetricName": "SlowDeliveries",
            "Dimensions": [{"Name": "Function", "Value": "connector"}, {"Name": STACK_DIMENSION, "Value": {"Ref": "AWS::StackName"}}],
            "Statistic": "Sum",
            "Period": 300,
            "Threshold": {"Ref": "SlowDeliveryAlarmThreshold"},
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": "AlarmTopic"}],
        }
        for key, value in expected.items():
            self.check(props.get(key) == value, f"SlowDeliveriesAlarm: {key} is {props.get(key)!r}, expected {value!r}")
        self.check(
            "formbridge tenants promote" in str(props.get("AlarmDescription", "")),
            "SlowDeliveriesAlarm's description does not say what to do (formbridge tenants promote)",
        )

    def outputs(self) -> None:
        # The connector may read exactly the queues the CLI names with the
        # stack's DedicatedQueuePrefix.
        prefix = self.t.get("Outputs", {}).get("DedicatedQueuePrefix", {}).get("Value", {}).get("Fn::Sub", "")
        connector = json.dumps(self.res.get("ConnectorRole", {}).get("Properties", {}).get("Policies", []))
        self.check(
            prefix.endswith("_t_") and f":{prefix}*" in connector,
            f"the connector's queue permission does not match DedicatedQueuePrefix {prefix!r}",
        )
        outputs = set(self.t.get("Outputs", {}))
        wanted = cli_outputs()
        if not self.isolated:
            # The CLI may read the isolated path's URL; it exists only with
            # the path on.
            wanted.discard(ISOLATED_OUTPUT)
        self.check(bool(wanted), "cannot read the output names from cli/src/aws/stack.rs")
        self.check(wanted <= outputs, f"outputs the CLI reads are missing: {sorted(wanted - outputs)}")

    # ---------------------------------------------------------- isolated path
    def isolation_switch(self) -> None:
        """The switch is a "true"/"false" string, off by default."""
        spec = self.params.get(ISOLATION_PARAMETER, {})
        self.check(
            spec.get("Type") == "String" and spec.get("Default") == "false"
            and sorted(map(str, spec.get("AllowedValues", []))) == ["false", "true"],
            f"parameter {ISOLATION_PARAMETER} must be a String, \"true\" or \"false\", \"false\" by default ({spec!r})",
        )

    def tenancy(self) -> None:
        """Tenant isolation mode on the isolated ingest function only (when
        the path is on), and never on a function that anything but a REST
        API invokes: Lambda refuses an invoke without a tenant ID, and an
        HTTP API, an event source mapping (SQS) or a function URL cannot
        give one."""
        fns = self.of_type("AWS::Lambda::Function")
        isolated = {n for n, f in fns.items() if "TenancyConfig" in f.get("Properties", {})}
        wanted = {ISOLATED_FUNCTION} if self.isolated else set()
        self.check(isolated == wanted, f"functions in tenant isolation mode are {sorted(isolated)}, expected {sorted(wanted)}")
        for name in sorted(isolated | wanted):
            tenancy = fns.get(name, {}).get("Properties", {}).get("TenancyConfig")
            self.check(tenancy == TENANCY, f"{name}: TenancyConfig is {tenancy!r}, expected {TENANCY!r}")
        http_api = [r for r in self.res.values() if r["Type"].startswith("AWS::ApiGatewayV2::")]
        mappings = [r for r in self.res.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
        urls = [r for r in self.res.values() if r["Type"] == "AWS::Lambda::Url"]
        for name in sorted(isolated):
            self.check(not any(mentions(r, name) for r in http_api), f"{name}: in tenant isolation mode and invoked by the HTTP API (which cannot give a tenant ID)")
            self.check(not any(mentions(r, name) for r in mappings), f"{name}: in tenant isolation mode and fed by an event source mapping (which cannot give a tenant ID)")
            self.check(not any(mentions(r, name) for r in urls), f"{name}: in tenant isolation mode with a function URL (which cannot give a tenant ID)")

    def isolated_api(self) -> None:
        """Off: no REST API at all. On: the isolated REST API."""
        rest = {k: r for k, r in self.res.items() if r["Type"].startswith("AWS::ApiGateway::")}
        outputs = self.t.get("Outputs", {})
        if not self.isolated:
            self.check(not rest, f"with {ISOLATION_PARAMETER} off the stack has REST API resources {sorted(rest)}")
            self.check(ISOLATED_OUTPUT not in outputs, f"with {ISOLATION_PARAMETER} off the stack has output {ISOLATED_OUTPUT}")
            return
        apis = self.of_type("AWS::ApiGateway::RestApi")
        self.check(set(apis) == {ISOLATED_API}, f"REST APIs are {sorted(apis)}, expected {ISOLATED_API}")
        props = apis.get(ISOLATED_API, {}).get("Properties", {})
        self.check(props.get("EndpointConfiguration", {}).get("Types") == ["REGIONAL"], f"{ISOLATED_API}: not a Regional API")
        body = props.get("Body", {})
        binary = list(body.get("x-amazon-apigateway-binary-media-types", [])) + list(props.get("BinaryMediaTypes", []))
        self.check(
            "*/*" in binary,
            f"{ISOLATED_API}: binary media types are {binary}, expected */* (every body must reach ingest base64-encoded, "
            "byte for byte, or the digest check fails)",
        )
        paths = body.get("paths", {})
        self.check(set(paths) == set(REST_ROUTES), f"{ISOLATED_API}: routes are {sorted(paths)}, expected POST {sorted(REST_ROUTES)}")
        schemes = body.get("components", {}).get("securitySchemes", {}) or body.get("securityDefinitions", {})
        for path, identity in REST_ROUTES.items():
            route = paths.get(path, {})
            self.check(list(route) == ["post"], f"{ISOLATED_API} {path}: methods are {list(route)}, expected post")
            post = route.get("post", {})
            integration = post.get("x-amazon-apigateway-integration", {})
            what = f"{ISOLATED_API} POST {path}"
            self.check(integration.get("type") == "aws_proxy", f"{what}: integration type is {integration.get('type')!r}, expected aws_proxy")
            self.check(integration.get("httpMethod") == "POST", f"{what}: integration method is {integration.get('httpMethod')!r}, expected POST (Lambda's Invoke)")
            self.check(invokes(integration.get("uri"), ISOLATED_FUNCTION), f"{what}: does not call {ISOLATED_FUNCTION} ({integration.get('uri')!r})")
            timeout = integration.get("timeoutInMillis", REST_INTEGRATION_TIMEOUT_MS)
            self.check(isinstance(timeout, int) and 0 < timeout <= REST_INTEGRATION_TIMEOUT_MS, f"{what}: timeoutInMillis {timeout!r}")
            mapped = integration.get("requestParameters", {}).get(TENANT_HEADER)
            self.check(
                mapped == TENANT_SOURCE,
                f"{what}: {TENANT_HEADER} is {mapped!r}, expected {TENANT_SOURCE} (Lambda's tenant ID must be the "
                "tenant the authorizer checked)",
            )
            security = post.get("security", [])
            name = next(iter(security[0]), None) if len(security) == 1 and security[0] else None
            self.check(name in schemes, f"{what}: is not protected by an authorizer")
            scheme = schemes.get(name, {})
            self.check(scheme.get("x-amazon-apigateway-authtype") == "custom", f"{what}: its authorizer {name} is not a Lambda authorizer")
            self.rest_authorizer(f"{what}'s authorizer {name}", scheme.get("x-amazon-apigateway-authorizer", {}), identity)
        responses = body.get("x-amazon-apigateway-gateway-responses", {})
        for kind, (status, message) in GATEWAY_RESPONSES.items():
            response = responses.get(kind, {})
            template = response.get("responseTemplates", {}).get("application/json")
            try:
                parsed = json.loads(template) if isinstance(template, str) else None
            except ValueError:
                parsed = None
            self.check(
                str(response.get("statusCode")) == status and parsed == {"message": message},
                f"{ISOLATED_API}: gateway response {kind} is not {status} {{\"message\":\"{message}\"}} as on the HTTP API ({response!r})",
            )
        self.isolated_stage()
        self.isolated_permissions()
        self.isolated_function()
        url = outputs.get(ISOLATED_OUTPUT, {}).get("Value", {})
        expected_url = f"https://${{{ISOLATED_API}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{ISOLATED_STAGE}"
        self.check(url == {"Fn::Sub": expected_url}, f"output {ISOLATED_OUTPUT} is {url!r}, expected !Sub {expected_url}")

    def rest_authorizer(self, what: str, auth: dict, identity: set[str]) -> None:
        """A REQUEST authorizer calling AuthorizerFunction, never cached, with
        exactly these identity sources."""
        self.check(auth.get("type") == "request", f"{what}: type is {auth.get('type')!r}, expected request")
        self.check(
            auth.get("authorizerResultTtlInSeconds") == 0,
            f"{what}: results cached ({auth.get('authorizerResultTtlInSeconds', 'no TTL set: 300')} s); "
            "authorizerResultTtlInSeconds must be 0 (a cached allow lets replays through)",
        )
        sources = {s.strip() for s in auth.get("identitySource", "").split(",") if s.strip()}
        self.check(sources == identity, f"{what}: identity sources are {sorted(sources)}, expected {sorted(identity)}")
        self.check(invokes(auth.get("authorizerUri"), "AuthorizerFunction"), f"{what}: does not call AuthorizerFunction")

    def isolated_stage(self) -> None:
        """One stage, throttled as the HTTP API's routes, with access logs of
        its own."""
        stages = {k: r for k, r in self.of_type("AWS::ApiGateway::Stage").items() if ref(r["Properties"].get("RestApiId")) == ISOLATED_API}
        self.check(len(stages) == 1, f"{ISOLATED_API} has stages {sorted(stages)}, expected one")
        # A deployment with a StageName makes a stage of its own (SAM's
        # "Stage", when the Api has no OpenApiVersion): unthrottled, unlogged.
        for name, deployment in self.of_type("AWS::ApiGateway::Deployment").items():
            self.check(
                "StageName" not in deployment["Properties"],
                f"{name}: makes a stage {deployment['Properties'].get('StageName')!r} beside {ISOLATED_STAGE} "
                "(without the stage's throttles and logs; set the Api's OpenApiVersion)",
            )
        stage = next(iter(stages.values()), {}).get("Properties", {})
        self.check(stage.get("StageName") == ISOLATED_STAGE, f"{ISOLATED_API}: stage is {stage.get('StageName')!r}, expected {ISOLATED_STAGE}")
        settings = stage.get("MethodSettings", [])
        by_method = {(s.get("ResourcePath"), s.get("HttpMethod")): s for s in settings}
        # A setting for a path that is no route throttles nothing.
        known = {("/*", "*")} | {(resource_path(p), "POST") for p in REST_ROUTES}
        unknown = set(by_method) - known
        self.check(not unknown, f"{ISOLATED_API}: method settings for no method of the API: {sorted(unknown)} (known: {sorted(known)})")
        for (key, throttle) in ((("/*", "*"), API_THROTTLE), ((SOURCE_RESOURCE_PATH, "POST"), SOURCE_THROTTLE)):
            setting = by_method.get(key, {})
            for prop, param in throttle.items():
                self.check(
                    setting.get(prop) == {"Ref": param},
                    f"{ISOLATED_API}: method setting {key} {prop} is {setting.get(prop)!r}, expected !Ref {param}",
                )
        group = ref(stage.get("AccessLogSetting", {}).get("DestinationArn"))
        http_groups = {ref(r["Properties"].get("AccessLogSettings", {}).get("DestinationArn")) for r in self.of_type("AWS::ApiGatewayV2::Stage").values()}
        self.check(
            group in self.res and "RetentionInDays" in self.res[group].get("Properties", {}) and group not in http_groups,
            f"{ISOLATED_API}: access logs do not go to a log group of its own with a retention ({group!r})",
        )
        fmt = stage.get("AccessLogSetting", {}).get("Format", "")
        self.check("$context.requestId" in fmt and "$context.authorizer.tenant_id" in fmt,
                   f"{ISOLATED_API}: the access log format lacks the request ID or the tenant")

    def isolated_permissions(self) -> None:
        """API Gateway may invoke the isolated function from the isolated API's
        stage, and the authorizer from its authorizers; nothing else may
        invoke the isolated function."""
        prefix = f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{ISOLATED_API}}}/"
        scopes = {ISOLATED_FUNCTION: f"{prefix}{ISOLATED_STAGE}/POST/", "AuthorizerFunction": f"{prefix}authorizers/"}
        permissions = [r["Properties"] for r in self.of_type("AWS::Lambda::Permission").values()]
        for fn, scope in scopes.items():
            granted = [
                p for p in permissions
                if ref(p.get("FunctionName")) == fn and p.get("Principal") == "apigateway.amazonaws.com"
                and p.get("Action") == "lambda:InvokeFunction"
                and isinstance(p.get("SourceArn"), dict) and str(p["SourceArn"].get("Fn::Sub", "")).startswith(scope)
            ]
            self.check(len(granted) == 1, f"no permission for {ISOLATED_API} to invoke {fn} (SourceArn starting {scope})")
        for p in permissions:
            if ref(p.get("FunctionName")) == ISOLATED_FUNCTION:
                self.check(
                    isinstance(p.get("SourceArn"), dict) and str(p["SourceArn"].get("Fn::Sub", "")).startswith(scopes[ISOLATED_FUNCTION]),
                    f"a permission lets something other than {ISOLATED_API}'s stage invoke {ISOLATED_FUNCTION} ({p.get('SourceArn')!r})",
                )

    def isolated_function(self) -> None:
        """Ingest as IngestFunction is, with a role and log group of its own,
        and a reservation that fits both routes at their default rates."""
        fns = self.of_type("AWS::Lambda::Function")
        ingest = fns.get("IngestFunction", {}).get("Properties", {})
        isolated = fns.get(ISOLATED_FUNCTION, {}).get("Properties", {})
        self.check(
            isolated.get("Environment") == ingest.get("Environment"),
            f"{ISOLATED_FUNCTION}: environment differs from IngestFunction's (the same bus, idempotency table and tenant records)",
        )
        for prop in ("MemorySize", "Timeout", "Runtime", "Architectures", "Handler"):
            self.check(isolated.get(prop) == ingest.get(prop), f"{ISOLATED_FUNCTION}: {prop} {isolated.get(prop)!r} differs from IngestFunction's {ingest.get(prop)!r}")
        group = ref(isolated.get("LoggingConfig", {}).get("LogGroup"))
        self.check(group != ref(ingest.get("LoggingConfig", {}).get("LogGroup")), f"{ISOLATED_FUNCTION}: logs to IngestFunction's log group")
        rates = [self.params.get(p, {}).get("Default") for p in ("ThrottlingRateLimit", "SourceThrottlingRateLimit")]
        reserved = self.params.get(RESERVATIONS[ISOLATED_FUNCTION], {}).get("Default")
        if all(isinstance(r, int) for r in rates) and isinstance(reserved, int):
            self.check(
                sum(rates) * INGEST_SIZING_SECONDS <= reserved,
                f"both isolated routes at their default rates need {sum(rates) * INGEST_SIZING_SECONDS:.0f} executions, "
                f"over {RESERVATIONS[ISOLATED_FUNCTION]}'s {reserved}",
            )

    def run(self) -> list[str]:
        for step in (
            self.functions, self.concurrency, self.api, self.idempotency, self.routing, self.queues, self.iam,
            self.alarms, self.outputs, self.isolation_switch, self.tenancy, self.isolated_api,
        ):
            try:
                step()
            except (KeyError, TypeError, AttributeError, IndexError) as e:
                self.failures.append(f"{step.__name__}: unexpected shape ({type(e).__name__}: {e})")
        return self.failures


def ref(value) -> str | None:
    """The logical ID a `Ref` or `Fn::GetAtt` points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return att[0] if isinstance(att, list) else att.split(".")[0]
    return None


def is_nonzero(condition, param: str) -> bool:
    """Whether a condition is `!Not [!Equals [!Ref param, "0"]]` (either order)."""
    if not isinstance(condition, dict) or list(condition) != ["Fn::Not"]:
        return False
    inner = condition["Fn::Not"]
    if not isinstance(inner, list) or len(inner) != 1 or not isinstance(inner[0], dict):
        return False
    equals = inner[0].get("Fn::Equals")
    if not isinstance(equals, list) or len(equals) != 2:
        return False
    return {"Ref": param} in equals and any(v in ("0", 0) and not isinstance(v, bool) for v in equals)


def workspace_binaries() -> set[str]:
    """Binary names: `[[bin]]` entries, and packages with a src/main.rs."""
    names = set()
    for manifest in ROOT.glob("*/Cargo.toml"):
        text = manifest.read_text()
        names.update(re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', text))
        package = re.search(r'\[package\]\s*name\s*=\s*"([^"]+)"', text)
        if package and (manifest.parent / "src/main.rs").exists():
            names.add(package.group(1))
    return names


def cli_outputs() -> set[str]:
    """The stack outputs `formbridge` reads: the `output` of every entry of
    the table of stack names in cli/src/aws/stack.rs."""
    text = (ROOT / "cli/src/aws/stack.rs").read_text()
    return set(re.findall(r'^\s*output: "(\w+)",$', text, re.M))


def invokes(uri, function: str) -> bool:
    """Whether an integration's or authorizer's URI invokes this function:
    `!Sub "...functions/${F.Arn}/invocations"`, or the form SAM writes,
    `!Sub ["...functions/${V}/invocations", {V: !GetAtt F.Arn}]`."""
    if not isinstance(uri, dict) or "Fn::Sub" not in uri:
        return False
    sub = uri["Fn::Sub"]
    text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1]) if isinstance(sub, list) and len(sub) == 2 else ("", {})
    match = re.search(r"lambda:path/2015-03-31/functions/\$\{([^}]+)\}/invocations$", str(text))
    if not match:
        return False
    name = match.group(1)
    if name in variables:
        return ref(variables[name]) == function
    return name == f"{function}.Arn"


def mentions(value, name: str) -> bool:
    """Whether a logical ID appears in a resource (a `Ref`, a `GetAtt`, a
    `${name}` in a `Sub`), as a whole name: IsolatedIngestFunction does not
    mention IngestFunction."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", json.dumps(value)) is not None


def load(path: Path) -> dict:
    template, errors = decode(str(path))
    if errors:
        raise SystemExit(f"{path}: cannot parse: {errors}")
    return json.loads(json.dumps(template, default=str))


class _NoManagedPolicies:
    def load(self) -> dict:
        return {}


def parameter_values(source: dict, isolated: bool) -> dict:
    """Every parameter's value as CloudFormation passes it (a string): the
    defaults, and the isolation switch."""
    values = {
        name: str(spec["Default"]) for name, spec in source.get("Parameters", {}).items() if "Default" in spec
    }
    values[ISOLATION_PARAMETER] = "true" if isolated else "false"
    return values


def generate(source: dict, isolated: bool | None = None) -> dict:
    """The CloudFormation the SAM transform makes, as after `sam package`,
    with the isolation switch given to it (None: its default). The result
    still holds every resource with its condition, as CloudFormation
    receives it."""
    packaged = copy.deepcopy(source)
    packaged["Globals"]["Function"]["CodeUri"] = "s3://form-bridge-artifacts/form-bridge.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])
    values = dict(PSEUDO)
    if isolated is not None:
        values[ISOLATION_PARAMETER] = "true" if isolated else "false"
    return transform(packaged, values, _NoManagedPolicies())


def evaluate_conditions(template: dict, values: dict) -> dict[str, bool]:
    """Each condition's value with these parameter values, as CloudFormation
    evaluates it (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)."""
    conditions = template.get("Conditions", {})
    done: dict[str, bool] = {}

    def value(node):
        if isinstance(node, dict) and len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return values.get(arg, PSEUDO.get(arg))
            if key == "Condition":
                return condition(arg)
            if key == "Fn::Equals":
                return str(value(arg[0])) == str(value(arg[1]))
            if key == "Fn::Not":
                return not value(arg[0])
            if key == "Fn::And":
                return all(value(a) for a in arg)
            if key == "Fn::Or":
                return any(value(a) for a in arg)
            raise ValueError(f"cannot evaluate {key} in a condition")
        return node

    def condition(name: str) -> bool:
        if name not in done:
            done[name] = bool(value(conditions[name]))
        return done[name]

    for name in conditions:
        condition(name)
    return done


def deployed(template: dict, values: dict) -> dict:
    """The stack CloudFormation makes of a generated template with these
    parameter values: resources and outputs whose condition is false left
    out."""
    result = copy.deepcopy(template)
    conditions = evaluate_conditions(result, values)
    for section in ("Resources", "Outputs"):
        result[section] = {
            name: item for name, item in result.get(section, {}).items()
            if conditions.get(item.get("Condition"), True)
        }
    return result


def isolation_conditions(source: dict) -> set[str]:
    """The conditions that read an isolation parameter, directly or through
    another condition."""
    conditions = source.get("Conditions", {})
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, body in conditions.items():
            if name in found:
                continue
            if any(mentions(body, p) for p in ISOLATION_PARAMETERS) or any(
                '"Condition": "%s"' % c in json.dumps(body) for c in found
            ):
                found.add(name)
                changed = True
    return found


def without_isolation(source: dict) -> tuple[dict, set[str]]:
    """The template without the isolated path: its parameters, their
    conditions, and every resource and output under those conditions
    deleted. Also the deleted names, which nothing left may refer to."""
    stripped = copy.deepcopy(source)
    conditions = isolation_conditions(source)
    removed = set(ISOLATION_PARAMETERS) | conditions
    for name in ISOLATION_PARAMETERS:
        stripped.get("Parameters", {}).pop(name, None)
    for name in conditions:
        stripped.get("Conditions", {}).pop(name, None)
    for section in ("Resources", "Outputs"):
        for name, item in list(stripped.get(section, {}).items()):
            if item.get("Condition") in conditions:
                del stripped[section][name]
                removed.add(name)
    return stripped, removed


def references(template: dict, names: set[str]) -> list[str]:
    """Where the rest of a template refers to any of these names (Ref,
    GetAtt, Sub, Condition, Fn::If, DependsOn)."""
    found = []
    for section in ("Conditions", "Resources", "Outputs", "Globals"):
        for item, body in template.get(section, {}).items():
            for name in sorted(names):
                if mentions(body, name):
                    found.append(f"{section}.{item} refers to {name}")
    return found


def unchanged_when_off(source: dict) -> list[str]:
    """With the switch off, the stack is exactly the stack of the template
    without the isolated path, and nothing outside the path refers to it."""
    stripped, removed = without_isolation(source)
    failures = [f"outside the isolated path, {r} (the stack without the path would differ)" for r in references(stripped, removed)]
    values = parameter_values(source, isolated=False)
    generated = generate(source, isolated=False)
    off = deployed(generated, values)
    # What only the path uses belongs to it: left without the path's
    # condition, it would be in the stack with the path off. Read in the
    # generated template, where a function's events have become references
    # to it.
    conditions = isolation_conditions(source)
    path = [
        item for s in ("Resources", "Outputs") for item in generated.get(s, {}).values() if item.get("Condition") in conditions
    ]
    rest = {**off.get("Resources", {}), **off.get("Outputs", {})}
    for name in off.get("Resources", {}):
        if any(mentions(item, name) for item in path) and not any(
            mentions(body, name) for other, body in rest.items() if other != name
        ):
            failures.append(f"{name} is used only by the isolated path but is in the stack without it (no condition)")
    base = deployed(generate(stripped), values)
    for section in ("Parameters", "Conditions"):
        for name in removed:
            off.get(section, {}).pop(name, None)
    for section in sorted(set(off) | set(base)):
        a, b = off.get(section), base.get(section)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            failures.append(f"with {ISOLATION_PARAMETER} off, {section} differ from the template without the isolated path: {differing}")
        else:
            failures.append(f"with {ISOLATION_PARAMETER} off, {section} differs from the template without the isolated path")
    return failures


def failures_of(source: dict) -> list[str]:
    """Every check, on the stack with the isolated path off and on."""
    failures = []
    for isolated in (False, True):
        try:
            generated = generate(source, isolated)
        except Exception as e:  # the transform's own refusal is a failure too
            return [f"the SAM transform refused the template ({ISOLATION_PARAMETER} {str(isolated).lower()}): {e}"]
        mode = "on" if isolated else "off"
        try:
            stack = deployed(generated, parameter_values(source, isolated))
        except (KeyError, ValueError, TypeError, IndexError) as e:
            return [f"cannot evaluate the template's conditions (isolation {mode}): {type(e).__name__}: {e}"]
        failures += [f"[isolation {mode}] {f}" for f in Checker(source, stack, isolated).run()]
    try:
        failures += unchanged_when_off(source)
    except Exception as e:
        failures.append(f"cannot compare the stack with the isolated path off to the stack without it: {type(e).__name__}: {e}")
    return failures


def lint_generated(generated: dict) -> list[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(generated, f)
    lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(lint), f.name], capture_output=True, text=True)
    os.unlink(f.name)
    return [] if result.returncode == 0 else [f"cfn-lint on the generated template:\n{result.stdout}{result.stderr}"]


def lint_both(source: dict) -> list[str]:
    """cfn-lint on the generated template, generated with the switch off and
    on, and with that value as the switch's default."""
    failures = []
    for isolated in (False, True):
        generated = generate(source, isolated)
        generated["Parameters"][ISOLATION_PARAMETER]["Default"] = "true" if isolated else "false"
        failures += [f"[isolation {'on' if isolated else 'off'}] {f}" for f in lint_generated(generated)]
    return failures


MUTATIONS = {
    "misspelt ReauthorizeEvery": ("ReauthorizeEvery: 0", "ReauthorizeEvry: 0"),
    "misspelt EnableSimpleResponses": ("EnableSimpleResponses: true", "EnableSimpleResponse: true"),
    "authorizer cached for 300 s": ("ReauthorizeEvery: 0", "ReauthorizeEvery: 300"),
    "a missing identity header": ("                - Content-Digest\n", ""),
    "no ReportBatchItemFailures": ("              - ReportBatchItemFailures\n", "              - Nothing\n"),
    "x86_64 functions": ("Architectures: [arm64]", "Architectures: [x86_64]"),
    "a wildcard action": ("Action: events:PutEvents", "Action: events:*"),
    "no target dead-letter queue": ("          DeadLetterConfig:\n", "          DeadLetterConfg:\n"),
    "a misspelt variable": ("          EVENT_SOURCE: !Ref EventSource", "          EVENT_SOURCES: !Ref EventSource"),
    "queue prefix and permission apart": ('Value: !Sub "${AWS::StackName}_t_"', 'Value: !Sub "${AWS::StackName}-t-"'),
    "payload format 1.0": ('AuthorizerPayloadFormatVersion: "2.0"', 'AuthorizerPayloadFormatVersion: "1.0"'),
    "a reservation of 0 when the parameter is 0": (
        "ReservedConcurrentExecutions: !If [ReservesAuthorizerConcurrency, !Ref AuthorizerReservedConcurrency, !Ref AWS::NoValue]",
        "ReservedConcurrentExecutions: !Ref AuthorizerReservedConcurrency",
    ),
    "misspelt ReservedConcurrentExecutions": (
        "ReservedConcurrentExecutions: !If [ReservesIngestConcurrency",
        "ReservedConcurrentExecution: !If [ReservesIngestConcurrency",
    ),
    "an inverted reservation condition": (
        'ReservesConnectorConcurrency: !Not [!Equals [!Ref ConnectorReservedConcurrency, "0"]]',
        'ReservesConnectorConcurrency: !Equals [!Ref ConnectorReservedConcurrency, "0"]',
    ),
    "the authorizer with the connector's role": ("Role: !GetAtt AuthorizerRole.Arn", "Role: !GetAtt ConnectorRole.Arn"),
    "no SLOW_DELIVERY_MS": ("          SLOW_DELIVERY_MS: !Ref SlowDeliveryMs\n", ""),
    "a misspelt slow-delivery metric": ("MetricName: SlowDeliveries", "MetricName: SlowDelivery"),
    "ListSecrets with PutEvents": ("Action: events:PutEvents", "Action: [events:PutEvents, secretsmanager:ListSecrets]"),
    "the source route without its authorizer": ("            Auth:\n              Authorizer: SourceAuthorizer\n", ""),
    "the source route behind the signature authorizer": ("Authorizer: SourceAuthorizer", "Authorizer: SignatureAuthorizer"),
    "the source authorizer cached": ("Context: [routeKey]\n              ReauthorizeEvery: 0", "Context: [routeKey]\n              ReauthorizeEvery: 300"),
    "the source authorizer without an identity": ("            Identity:\n              Context: [routeKey]\n              ReauthorizeEvery: 0\n", ""),
    "the source authorizer asking for signature headers": (
        "Context: [routeKey]", "Context: [routeKey]\n              Headers: [X-FormBridge-Signature]",
    ),
    "the source authorizer with payload 1.0": (
        'AuthorizerPayloadFormatVersion: "2.0"\n            EnableSimpleResponses: true\n            EnableFunctionDefaultPermissions: true\n            Identity:\n              Context',
        'AuthorizerPayloadFormatVersion: "1.0"\n            EnableSimpleResponses: true\n            EnableFunctionDefaultPermissions: true\n            Identity:\n              Context',
    ),
    "no source route": ("Path: /v1/tenants/{tenant_id}/sources/{source_id}", "Path: /v1/tenants/{tenant_id}/source/{source_id}"),
    "a provisioned table": ("BillingMode: PAY_PER_REQUEST", "BillingMode: PROVISIONED\n      ProvisionedThroughput: {ReadCapacityUnits: 5, WriteCapacityUnits: 5}"),
    "a string key": ("          AttributeType: B", "          AttributeType: S"),
    "no TTL": ("        AttributeName: expires_at\n        Enabled: true", "        AttributeName: expires_at\n        Enabled: false"),
    "TTL on another attribute": ("        AttributeName: expires_at\n", "        AttributeName: ttl\n"),
    "no encryption": ("        SSEEnabled: true", "        SSEEnabled: false"),
    "no IDEMPOTENCY_TABLE for ingest": ("          IDEMPOTENCY_TABLE: !Ref IdempotencyTable\n", ""),
    "a Scan for ingest": ("                  - dynamodb:GetItem\n", "                  - dynamodb:GetItem\n                  - dynamodb:Scan\n"),
    "DynamoDB on every table": (
        "Resource: !GetAtt IdempotencyTable.Arn",
        'Resource: !Sub "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"',
    ),
    "DynamoDB for the connector": ("                  - sqs:GetQueueAttributes\n", "                  - sqs:GetQueueAttributes\n                  - dynamodb:GetItem\n"),
    "ingest without the item call that releases": ("                  - dynamodb:DeleteItem\n", ""),
    "ingest without its tenant records": ("          # sees.\n          TENANT_SECRET_PREFIX: !Ref TenantSecretPrefix\n", "          # sees.\n"),
    "ListSecrets with another action on every resource": (
        "Action: secretsmanager:ListSecrets",
        "Action: [secretsmanager:ListSecrets, secretsmanager:GetSecretValue]",
    ),
    "the source route without its own throttle": (
        '      RouteSettings:\n        "POST /v1/tenants/{tenant_id}/sources/{source_id}":\n'
        "          ThrottlingRateLimit: !Ref SourceThrottlingRateLimit\n"
        "          ThrottlingBurstLimit: !Ref SourceThrottlingBurstLimit\n",
        "",
    ),
    "misspelt RouteSettings": ('      RouteSettings:\n        "POST', '      RouteSetting:\n        "POST'),
    "the source throttle keyed without the method": (
        '"POST /v1/tenants/{tenant_id}/sources/{source_id}":', '"/v1/tenants/{tenant_id}/sources/{source_id}":',
    ),
    "the source throttle keyed to a route that does not exist": (
        '"POST /v1/tenants/{tenant_id}/sources/{source_id}":', '"POST /v1/tenants/{tenant_id}/source/{source_id}":',
    ),
    "the source throttle on the submissions route": (
        '"POST /v1/tenants/{tenant_id}/sources/{source_id}":', '"POST /v1/tenants/{tenant_id}/submissions":',
    ),
    "the source throttle without its burst": ("          ThrottlingBurstLimit: !Ref SourceThrottlingBurstLimit\n", ""),
    "the source throttle from the API's rate": (
        "ThrottlingRateLimit: !Ref SourceThrottlingRateLimit", "ThrottlingRateLimit: !Ref ThrottlingRateLimit",
    ),
    "the API's defaults from the source parameters": (
        "        ThrottlingRateLimit: !Ref ThrottlingRateLimit\n", "        ThrottlingRateLimit: !Ref SourceThrottlingRateLimit\n",
    ),
    "a source rate above the API's": (
        "  SourceThrottlingRateLimit:\n    Type: Number\n    Default: 250\n",
        "  SourceThrottlingRateLimit:\n    Type: Number\n    Default: 1500\n",
    ),
    "a source burst above the API's": (
        "  SourceThrottlingBurstLimit:\n    Type: Number\n    Default: 500\n",
        "  SourceThrottlingBurstLimit:\n    Type: Number\n    Default: 5000\n",
    ),
    "a source rate of 0 allowed": (
        "  SourceThrottlingRateLimit:\n    Type: Number\n    Default: 250\n    MinValue: 1\n",
        "  SourceThrottlingRateLimit:\n    Type: Number\n    Default: 250\n    MinValue: 0\n",
    ),
    "both routes beyond ingest's reservation": (
        "  IngestReservedConcurrency:\n    Type: Number\n    Default: 100\n",
        "  IngestReservedConcurrency:\n    Type: Number\n    Default: 30\n",
    ),
    # The isolated path (EnableTenantIsolation): each must fail with the
    # switch on, or make the stack with it off differ from the stack
    # without the path.
    "the isolated submissions route without the tenant header": (
        "                requestParameters:\n                  integration.request.header.X-Amz-Tenant-Id: context.authorizer.tenant_id\n",
        "",
    ),
    "the isolated source route without the tenant header": (
        "                requestParameters:\n                  integration.request.header.X-Amz-Tenant-Id: context.authorizer.tenant_id\n        components:",
        "        components:",
    ),
    "the tenant header from the path": (
        "integration.request.header.X-Amz-Tenant-Id: context.authorizer.tenant_id",
        "integration.request.header.X-Amz-Tenant-Id: method.request.path.tenant_id",
    ),
    "the tenant header from a client header": (
        "integration.request.header.X-Amz-Tenant-Id: context.authorizer.tenant_id\n        components:",
        "integration.request.header.X-Amz-Tenant-Id: method.request.header.X-Tenant-Id\n        components:",
    ),
    "the tenant header misspelt": ("integration.request.header.X-Amz-Tenant-Id: context", "integration.request.header.X-Amz-TenantId: context"),
    "TenancyConfig on IngestFunction": (
        "      Role: !GetAtt IngestRole.Arn\n",
        "      Role: !GetAtt IngestRole.Arn\n      TenancyConfig:\n        TenantIsolationMode: PER_TENANT\n",
    ),
    "TenancyConfig on ConnectorFunction": (
        "      Role: !GetAtt ConnectorRole.Arn\n",
        "      Role: !GetAtt ConnectorRole.Arn\n      TenancyConfig:\n        TenantIsolationMode: PER_TENANT\n",
    ),
    "TenancyConfig on the authorizer": (
        "      Role: !GetAtt AuthorizerRole.Arn\n",
        "      Role: !GetAtt AuthorizerRole.Arn\n      TenancyConfig:\n        TenantIsolationMode: PER_TENANT\n",
    ),
    "no TenancyConfig on the isolated function": ("      TenancyConfig:\n        TenantIsolationMode: PER_TENANT\n", ""),
    "the isolated function with an SQS event": (
        "      TenancyConfig:\n        TenantIsolationMode: PER_TENANT\n",
        "      TenancyConfig:\n        TenantIsolationMode: PER_TENANT\n      Events:\n        Queue:\n"
        "          Type: SQS\n          Properties:\n            Queue: !GetAtt SharedQueue.Arn\n",
    ),
    "an event source mapping feeding the isolated function": (
        "  IsolatedIngestLogGroup:\n",
        "  IsolatedQueueMapping:\n    Type: AWS::Lambda::EventSourceMapping\n    Condition: TenantIsolation\n    Properties:\n"
        "      EventSourceArn: !GetAtt SharedQueue.Arn\n      FunctionName: !Ref IsolatedIngestFunction\n\n  IsolatedIngestLogGroup:\n",
    ),
    "the isolated function behind the HTTP API": (
        "      TenancyConfig:\n        TenantIsolationMode: PER_TENANT\n",
        "      TenancyConfig:\n        TenantIsolationMode: PER_TENANT\n      Events:\n        Shared:\n"
        "          Type: HttpApi\n          Properties:\n            ApiId: !Ref Api\n            Method: POST\n"
        "            Path: /v1/isolated/{tenant_id}/submissions\n",
    ),
    "the isolated integration calling IngestFunction": ("${IsolatedIngestFunction.Arn}/invocations", "${IngestFunction.Arn}/invocations"),
    "the isolated authorizer cached for 300 s": ("authorizerResultTtlInSeconds: 0", "authorizerResultTtlInSeconds: 300"),
    "the isolated source authorizer with no TTL (API Gateway's 300 s)": (
        '${AuthorizerFunction.Arn}/invocations"\n                authorizerResultTtlInSeconds: 0\n        # The HTTP',
        '${AuthorizerFunction.Arn}/invocations"\n        # The HTTP',
    ),
    "the isolated signature authorizer without Content-Digest": (", method.request.header.Content-Digest\n", "\n"),
    "the isolated source authorizer asking for signature headers": (
        '${AuthorizerFunction.Arn}/invocations"\n                authorizerResultTtlInSeconds: 0\n        # The HTTP',
        '${AuthorizerFunction.Arn}/invocations"\n                identitySource: method.request.header.X-FormBridge-Signature\n'
        "                authorizerResultTtlInSeconds: 0\n        # The HTTP",
    ),
    "no binary media types": ('        x-amazon-apigateway-binary-media-types: ["*/*"]\n', ""),
    "binary media types for one type only": (
        'x-amazon-apigateway-binary-media-types: ["*/*"]', 'x-amazon-apigateway-binary-media-types: ["application/octet-stream"]',
    ),
    "the isolated API edge-optimized": ("        Type: REGIONAL\n", "        Type: EDGE\n"),
    "the isolated source route without its throttle": (
        '        - ResourcePath: "/~1v1~1tenants~1{tenant_id}~1sources~1{source_id}"\n          HttpMethod: POST\n'
        "          ThrottlingRateLimit: !Ref SourceThrottlingRateLimit\n          ThrottlingBurstLimit: !Ref SourceThrottlingBurstLimit\n",
        "",
    ),
    "the isolated source throttle keyed with plain slashes": (
        '"/~1v1~1tenants~1{tenant_id}~1sources~1{source_id}"', '"/v1/tenants/{tenant_id}/sources/{source_id}"',
    ),
    "the isolated defaults from the source parameters": (
        '          HttpMethod: "*"\n          ThrottlingRateLimit: !Ref ThrottlingRateLimit\n',
        '          HttpMethod: "*"\n          ThrottlingRateLimit: !Ref SourceThrottlingRateLimit\n',
    ),
    "the isolated API's deny with REST's default body": (
        "          ACCESS_DENIED:\n            statusCode: \"403\"\n            responseTemplates: {application/json: '{\"message\":\"Forbidden\"}'}\n",
        "",
    ),
    "the isolated function invocable from every API": ("${IsolatedApi}/isolated/POST/v1/tenants/*", "*/*/POST/v1/tenants/*"),
    "the authorizer's isolated permission on the stage's methods": ("${IsolatedApi}/authorizers/*", "${IsolatedApi}/isolated/*"),
    "the isolated function logging to ingest's group": (
        "        LogGroup: !Ref IsolatedIngestLogGroup\n", "        LogGroup: !Ref IngestLogGroup\n",
    ),
    "the isolated function without the idempotency table": (
        "          IDEMPOTENCY_TABLE: !Ref IdempotencyTable\n          IDEMPOTENCY_TTL_SECONDS: !Ref IdempotencyTtlSeconds\n          TENANT_SECRET_PREFIX",
        "          IDEMPOTENCY_TTL_SECONDS: !Ref IdempotencyTtlSeconds\n          TENANT_SECRET_PREFIX",
    ),
    "misspelt isolated ReservedConcurrentExecutions": (
        "ReservedConcurrentExecutions: !If [ReservesIsolatedIngestConcurrency",
        "ReservedConcurrentExecution: !If [ReservesIsolatedIngestConcurrency",
    ),
    "the isolated path on by default": (
        '    Default: "false"\n    AllowedValues: ["true", "false"]\n', '    Default: "true"\n    AllowedValues: ["true", "false"]\n',
    ),
    "the isolated URL without its condition": (
        "    Condition: TenantIsolation\n    Description: Base URL of the isolated path", "    Description: Base URL of the isolated path",
    ),
    "the isolated URL without its stage": ('.${AWS::URLSuffix}/isolated"', '.${AWS::URLSuffix}"'),
    "an isolated resource without its condition": (
        "  IsolatedIngestLogGroup:\n    Type: AWS::Logs::LogGroup\n    Condition: TenantIsolation\n",
        "  IsolatedIngestLogGroup:\n    Type: AWS::Logs::LogGroup\n",
    ),
    "the shared path depending on the switch": (
        "      Description: Form-Bridge connector (signed delivery to tenant endpoints)\n",
        "      Description: !If [TenantIsolation, Form-Bridge connector (isolated path on), Form-Bridge connector]\n",
    ),
    "SAM's extra stage (no OpenApiVersion)": ('      OpenApiVersion: "3.0.1"\n', ""),
    # Metrics of two stacks in one account apart.
    "the authorizer without STACK_NAME": ("          STACK_NAME: !Ref AWS::StackName\n\n  IngestFunction:", "\n  IngestFunction:"),
    "the connector without STACK_NAME": (
        "          SECRET_CACHE_TTL_SECONDS: !Ref SecretCacheTtlSeconds\n          STACK_NAME: !Ref AWS::StackName\n      Events:\n        SharedQueue:",
        "          SECRET_CACHE_TTL_SECONDS: !Ref SecretCacheTtlSeconds\n      Events:\n        SharedQueue:",
    ),
    "STACK_NAME a fixed name": ("STACK_NAME: !Ref AWS::StackName", "STACK_NAME: form-bridge"),
    "the deny alarm without the stack": (
        "        - Name: Stack\n          Value: !Ref AWS::StackName\n        - Name: Decision", "        - Name: Decision",
    ),
    "the deny alarm on a fixed stack": (
        "          Value: !Ref AWS::StackName\n        - Name: Decision", "          Value: form-bridge\n        - Name: Decision",
    ),
    "MaxBodyBytes up to 1 MiB": ("    MaxValue: 1040384\n", "    MaxValue: 1048576\n"),
    "EventSource without a MaxLength": ("    Default: form-bridge\n    MaxLength: 256\n", "    Default: form-bridge\n"),
    "a shared queue of 256 KiB messages": (
        "      MessageRetentionPeriod: 1209600\n      MaximumMessageSize: 1048576\n      SqsManagedSseEnabled: true\n      RedrivePolicy:",
        "      MessageRetentionPeriod: 1209600\n      MaximumMessageSize: 262144\n      SqsManagedSseEnabled: true\n      RedrivePolicy:",
    ),
    "the slow-delivery alarm without the stack": (
        "          Value: connector\n        - Name: Stack\n          Value: !Ref AWS::StackName\n", "          Value: connector\n",
    ),
}


def samconfig_failures(text: str) -> list[str]:
    """What is wrong with a samconfig.toml: a SAM CLI beta turned on, or
    `sam build`'s cache over a CodeUri that holds cargo's target/."""
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return [f"samconfig.toml: cannot parse: {e}"]
    failures = []
    for env, commands in config.items():
        if not isinstance(commands, dict):
            continue
        for command, section in commands.items():
            params = section.get("parameters", {}) if isinstance(section, dict) else {}
            where = f"samconfig.toml [{env}.{command}.parameters]"
            if params.get("beta_features"):
                failures.append(
                    f"{where}: beta_features is on (SAM CLI builds rust-cargolambda without it since 1.156.0; "
                    "the flag turns on every other SAM CLI beta too)"
                )
            if params.get("cached"):
                failures.append(
                    f"{where}: cached is on (SAM hashes every file under CodeUri, the workspace root with "
                    "cargo's target/, so the cache is never valid and each build reads target/ whole)"
                )
    return failures


# Mutations of samconfig.toml that samconfig_failures must catch.
SAMCONFIG_MUTATIONS = {
    "beta features for the build": ("[default.deploy.parameters]\n", "[default.build.parameters]\nbeta_features = true\n\n[default.deploy.parameters]\n"),
    "beta features for sync": ("[default.deploy.parameters]\n", "[default.sync.parameters]\nbeta_features = true\n\n[default.deploy.parameters]\n"),
    "the build cache": ("[default.deploy.parameters]\n", "[default.build.parameters]\ncached = true\n\n[default.deploy.parameters]\n"),
}


def self_test(path: Path) -> list[str]:
    """Each mutation of the template must make a check fail."""
    text = path.read_text()
    missed = []
    for what, (old, new) in MUTATIONS.items():
        if old not in text:
            missed.append(f"self-test: {what}: the template no longer contains {old!r}")
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text.replace(old, new, 1))
        try:
            if not failures_of(load(Path(f.name))):
                missed.append(f"self-test: {what}: not caught")
        finally:
            os.unlink(f.name)
    samconfig = path.with_name("samconfig.toml")
    text = samconfig.read_text() if samconfig.exists() else ""
    for what, (old, new) in SAMCONFIG_MUTATIONS.items():
        if old not in text:
            missed.append(f"self-test: samconfig.toml: {what}: the file no longer contains {old!r}")
        elif not samconfig_failures(text.replace(old, new, 1)):
            missed.append(f"self-test: samconfig.toml: {what}: not caught")
    return missed


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    path = Path(args[0]) if args else ROOT / "template.yaml"
    source = load(path)
    failures = failures_of(source)
    if not failures:
        failures += lint_both(source)
    samconfig = path.with_name("samconfig.toml")
    if samconfig.exists():
        failures += samconfig_failures(samconfig.read_text())
    if "--self-test" in sys.argv:
        failures += self_test(path)
    for failure in failures:
        print(f"check-template: {failure}", file=sys.stderr)
    if not failures:
        print(f"check-template: {path.name}: every check passed" + (f" ({len(MUTATIONS) + len(SAMCONFIG_MUTATIONS)} mutations caught)" if "--self-test" in sys.argv else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
