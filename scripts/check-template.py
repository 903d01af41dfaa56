"""Checks template.yaml for what cfn-lint cannot see.

SAM silently ignores a misspelt key (an authorizer's `ReauthorizeEvry: 0`
leaves results cached for 300 s, which lets replays through), so these
checks run the real SAM transform (aws-sam-translator, what CloudFormation
runs) and inspect what it generates: the authorizer as API Gateway receives
it, the route, the event source mapping, the rule, the queues, the roles and
the alarms. `cfn-lint` then lints the generated CloudFormation too.

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
FUNCTIONS = {
    # logical ID: (binary, environment variables it reads, required ones)
    "AuthorizerFunction": (
        "authorizer",
        {"TENANT_SECRET_PREFIX", "SECRET_CACHE_TTL_SECONDS", "REPLAY_WINDOW_SECONDS", "LOG_LEVEL"},
        set(),
    ),
    "IngestFunction": (
        "ingest",
        {"EVENT_BUS_NAME", "EVENT_SOURCE", "MAX_BODY_BYTES", "LOG_LEVEL"},
        {"EVENT_BUS_NAME"},
    ),
    "ConnectorFunction": (
        "connector",
        {
            "TENANT_SECRET_PREFIX", "SECRET_CACHE_TTL_SECONDS", "ALLOW_PRIVATE_DESTINATIONS",
            "DELIVERY_TIMEOUT_MS", "DELIVERY_ATTEMPTS", "DELIVERY_CONCURRENCY",
            "BREAKER_FAILURE_THRESHOLD", "BREAKER_FAILURE_RATE_PERCENT", "BREAKER_WINDOW",
            "BREAKER_MINIMUM_CALLS", "BREAKER_COOL_DOWN_SECONDS", "LOG_LEVEL",
        },
        set(),
    ),
}
ROUTE = "/v1/tenants/{tenant_id}/submissions"
IDENTITY = [
    "$request.header.X-FormBridge-Signature",
    "$request.header.X-FormBridge-Timestamp",
    "$request.header.Content-Digest",
]
# Actions each role may be granted, and nothing else.
ROLE_ACTIONS = {
    "AuthorizerRole": {"logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue"},
    "IngestRole": {"logs:CreateLogStream", "logs:PutLogEvents", "events:PutEvents"},
    "ConnectorRole": {
        "logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue",
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    },
}
TARGET_KEYS = {"Id", "Arn", "RetryPolicy", "DeadLetterConfig"}
MAX_EVENT_BYTES = 1_048_576  # EventBridge PutEvents request size
DEFAULT_MAX_BODY_BYTES = 262_144  # ingest's default (docs/protocol.md, section 7)


class Checker:
    def __init__(self, source: dict, generated: dict) -> None:
        self.source = source
        self.t = generated
        self.res = generated["Resources"]
        self.params = source.get("Parameters", {})
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

    # ---------------------------------------------------------------- checks
    def functions(self) -> None:
        fns = self.of_type("AWS::Lambda::Function")
        self.check(set(fns) == set(FUNCTIONS), f"functions are {sorted(fns)}, expected {sorted(FUNCTIONS)}")
        for name, (binary, known_env, required_env) in FUNCTIONS.items():
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
        timeouts = {n: fns.get(n, {}).get("Properties", {}).get("Timeout", 3) for n in FUNCTIONS}
        self.check(timeouts["AuthorizerFunction"] <= 10, "authorizer timeout over 10 s")
        self.check(timeouts["IngestFunction"] < 30, "ingest timeout not under the API's 30 s integration timeout")
        self.check(timeouts["ConnectorFunction"] <= 120, "connector timeout over 120 s")

    def api(self) -> None:
        apis = self.of_type("AWS::ApiGatewayV2::Api")
        self.check(len(apis) == 1, f"{len(apis)} HTTP APIs, expected 1")
        body = next(iter(apis.values()), {}).get("Properties", {}).get("Body", {})
        schemes = body.get("components", {}).get("securitySchemes", {})
        self.check(len(schemes) == 1, f"{len(schemes)} authorizers, expected 1")
        auth = next(iter(schemes.values()), {}).get("x-amazon-apigateway-authorizer", {})
        self.check(auth.get("type") == "request", "authorizer type is not request")
        self.check(
            auth.get("authorizerResultTtlInSeconds") == 0,
            f"authorizer results cached for {auth.get('authorizerResultTtlInSeconds', 300)} s: "
            "ReauthorizeEvery must be 0 (a cached allow lets replays through)",
        )
        self.check(auth.get("authorizerPayloadFormatVersion") == "2.0", "authorizer payload format is not 2.0")
        self.check(auth.get("enableSimpleResponses") is True, "authorizer simple responses are not enabled")
        self.check(
            sorted(auth.get("identitySource", [])) == sorted(IDENTITY),
            f"authorizer identity sources are {auth.get('identitySource')}, expected {IDENTITY}",
        )
        self.check("AuthorizerFunction" in json.dumps(auth.get("authorizerUri")), "authorizer does not call AuthorizerFunction")
        paths = body.get("paths", {})
        self.check(list(paths) == [ROUTE], f"routes are {list(paths)}, expected only POST {ROUTE}")
        route = paths.get(ROUTE, {})
        self.check(list(route) == ["post"], f"{ROUTE} methods are {list(route)}, expected post")
        post = route.get("post", {})
        self.check(
            post.get("security") == [{next(iter(schemes), "?"): []}],
            f"{ROUTE} is not protected by the authorizer",
        )
        integration = post.get("x-amazon-apigateway-integration", {})
        self.check(integration.get("payloadFormatVersion") == "2.0", "ingest integration payload format is not 2.0")
        self.check("IngestFunction" in json.dumps(integration.get("uri")), "route does not call IngestFunction")
        stages = self.of_type("AWS::ApiGatewayV2::Stage")
        stage = next(iter(stages.values()), {}).get("Properties", {})
        throttle = stage.get("DefaultRouteSettings", {})
        self.check(
            "ThrottlingRateLimit" in throttle and "ThrottlingBurstLimit" in throttle,
            "the API's stage has no route throttling",
        )
        self.check("AccessLogSettings" in stage, "the API's stage has no access logs")
        max_body = self.params.get("MaxBodyBytes", {})
        self.check(
            max_body.get("Default") == DEFAULT_MAX_BODY_BYTES and max_body.get("MaxValue", 1 << 40) <= MAX_EVENT_BYTES,
            "MaxBodyBytes must default to ingest's 262144 and be at most 1 MiB (an event's size)",
        )
        ingest_env = self.res.get("IngestFunction", {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        self.check(ingest_env.get("MAX_BODY_BYTES") == {"Ref": "MaxBodyBytes"}, "ingest's MAX_BODY_BYTES is not the MaxBodyBytes parameter")

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
        self.check(set(roles) == set(ROLE_ACTIONS), f"roles are {sorted(roles)}, expected {sorted(ROLE_ACTIONS)}")
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
                    self.check("*" not in resources, f"{name}: an action on every resource")
                    text = json.dumps(resources)
                    if any(a.startswith("secretsmanager:") for a in actions):
                        self.check("secret:${TenantSecretPrefix}*" in text, f"{name}: secrets not limited to the tenant prefix")
                    if any(a.startswith("events:") for a in actions):
                        self.check(resources == [{"Fn::GetAtt": ["EventBus", "Arn"]}], f"{name}: PutEvents not limited to the bus")
                    if any(a.startswith("sqs:") for a in actions):
                        self.check(
                            all(":sqs:" in json.dumps(r) or ref(r) == "SharedQueue" for r in resources),
                            f"{name}: queue actions on something other than queues",
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
        self.check(bool(wanted), "cannot read the output names from cli/src/aws/stack.rs")
        self.check(wanted <= outputs, f"outputs the CLI reads are missing: {sorted(wanted - outputs)}")

    def run(self) -> list[str]:
        for step in (self.functions, self.api, self.routing, self.queues, self.iam, self.alarms, self.outputs):
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


def load(path: Path) -> dict:
    template, errors = decode(str(path))
    if errors:
        raise SystemExit(f"{path}: cannot parse: {errors}")
    return json.loads(json.dumps(template, default=str))


class _NoManagedPolicies:
    def load(self) -> dict:
        return {}


def generate(source: dict) -> dict:
    """The CloudFormation the SAM transform makes, as after `sam package`."""
    packaged = copy.deepcopy(source)
    packaged["Globals"]["Function"]["CodeUri"] = "s3://form-bridge-artifacts/form-bridge.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])
    return transform(packaged, dict(PSEUDO), _NoManagedPolicies())


def failures_of(source: dict) -> list[str]:
    try:
        generated = generate(source)
    except Exception as e:  # the transform's own refusal is a failure too
        return [f"the SAM transform refused the template: {e}"]
    return Checker(source, generated).run()


def lint_generated(generated: dict) -> list[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(generated, f)
    lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(lint), f.name], capture_output=True, text=True)
    os.unlink(f.name)
    return [] if result.returncode == 0 else [f"cfn-lint on the generated template:\n{result.stdout}{result.stderr}"]


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
    return missed


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    path = Path(args[0]) if args else ROOT / "template.yaml"
    source = load(path)
    failures = failures_of(source)
    if not failures:
        failures += lint_generated(generate(source))
    if "--self-test" in sys.argv:
        failures += self_test(path)
    for failure in failures:
        print(f"check-template: {failure}", file=sys.stderr)
    if not failures:
        print(f"check-template: {path.name}: every check passed" + (f" ({len(MUTATIONS)} mutations caught)" if "--self-test" in sys.argv else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
