//! The deployed stack's resource names: one table ([`NAMES`]) from which
//! the command-line flags, their help, the hints in error messages and
//! the lookups of the stack's CloudFormation outputs (`template.yaml`) are
//! all derived, so that they cannot disagree.

use std::collections::HashMap;

use anyhow::{Context as _, anyhow, bail};
use clap::{Arg, ArgMatches};
use shared::Isolation;

/// One resource name: the stack output that carries it, the flag that
/// overrides it, and how the flag is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name {
    /// The stack output (`template.yaml`, `Outputs`).
    pub output: &'static str,
    /// The command-line flag, with its dashes.
    pub flag: &'static str,
    /// The flag's value in help (`NAME`, `URL`, ...).
    pub value_name: &'static str,
    /// What the name is, for help.
    pub help: &'static str,
    /// What is used when neither the flag nor the stack gives it (for
    /// help); `None` when the command needs it.
    pub fallback: Option<&'static str>,
    /// Shown in `-h` as well as `--help`.
    pub common: bool,
}

impl Name {
    /// The flag without its dashes (clap's long name and argument ID).
    pub fn long(&self) -> &'static str {
        self.flag.trim_start_matches('-')
    }

    /// The flag's help line: what it is and where its default comes from.
    fn help_line(&self) -> String {
        match self.fallback {
            Some(fallback) => format!(
                "{} [default: output {}, else {fallback}]",
                self.help, self.output
            ),
            None => format!("{} [default: output {}]", self.help, self.output),
        }
    }
}

/// Secrets Manager name prefix of tenant records.
pub const SECRET_PREFIX: Name = Name {
    output: "TenantSecretPrefix",
    flag: "--secret-prefix",
    value_name: "PREFIX",
    help: "Secrets Manager prefix of tenant records",
    fallback: Some(DEFAULT_SECRET_PREFIX),
    common: true,
};
/// How long the functions cache a record, in seconds.
pub const CACHE_TTL: Name = Name {
    output: "SecretCacheTtlSeconds",
    flag: "--secret-cache-ttl",
    value_name: "SECONDS",
    help: "How long the functions cache a tenant record (delete and demote wait for it)",
    fallback: Some("300"),
    common: false,
};
/// The dedicated queues' age alarm threshold, in seconds.
pub const QUEUE_AGE_ALARM: Name = Name {
    output: "QueueAgeAlarmSeconds",
    flag: "--queue-age-alarm",
    value_name: "SECONDS",
    help: "Age of a dedicated queue's oldest event that raises its alarm",
    fallback: Some("3600"),
    common: false,
};
/// The bus ingest publishes to.
pub const BUS: Name = Name {
    output: "EventBusName",
    flag: "--bus",
    value_name: "NAME",
    help: "The event bus",
    fallback: None,
    common: false,
};
/// The source of Form-Bridge events.
pub const EVENT_SOURCE: Name = Name {
    output: "EventSource",
    flag: "--event-source",
    value_name: "SOURCE",
    help: "The events' source",
    fallback: Some(shared::event::DEFAULT_EVENT_SOURCE),
    common: false,
};
/// Receives before a record is dead-lettered.
pub const MAX_RECEIVES: Name = Name {
    output: "MaxReceiveCount",
    flag: "--max-receive-count",
    value_name: "N",
    help: "Receives before a record is dead-lettered",
    fallback: Some("5"),
    common: false,
};
/// The shared delivery queue.
pub const SHARED_QUEUE: Name = Name {
    output: "SharedQueueUrl",
    flag: "--shared-queue-url",
    value_name: "URL",
    help: "The shared queue",
    fallback: None,
    common: false,
};
/// The shared queue's dead-letter queue.
pub const SHARED_DLQ: Name = Name {
    output: "SharedDeadLetterQueueUrl",
    flag: "--shared-dlq-url",
    value_name: "URL",
    help: "The shared dead-letter queue",
    fallback: None,
    common: false,
};
/// Where EventBridge puts events it could not put on a queue.
pub const EVENTS_DLQ: Name = Name {
    output: "EventTargetDeadLetterQueueUrl",
    flag: "--events-dlq-url",
    value_name: "URL",
    help: "The events dead-letter queue",
    fallback: None,
    common: false,
};
/// The same queue's ARN, for dedicated rules' targets.
pub const EVENTS_DLQ_ARN: Name = Name {
    output: "EventTargetDeadLetterQueueArn",
    flag: "--events-dlq-arn",
    value_name: "ARN",
    help: "The events dead-letter queue's ARN",
    fallback: None,
    common: false,
};
/// The connector function.
pub const CONNECTOR: Name = Name {
    output: "ConnectorFunctionName",
    flag: "--connector-function",
    value_name: "NAME",
    help: "The connector function",
    fallback: None,
    common: false,
};
/// Name prefix of dedicated tenants' queues.
pub const QUEUE_PREFIX: Name = Name {
    output: "DedicatedQueuePrefix",
    flag: "--queue-prefix",
    value_name: "PREFIX",
    help: "Name prefix of dedicated tenants' queues",
    fallback: None,
    common: false,
};
/// The alarms' SNS topic.
pub const ALARM_TOPIC: Name = Name {
    output: "AlarmTopicArn",
    flag: "--alarm-topic-arn",
    value_name: "ARN",
    help: "SNS topic for dedicated tenants' alarms",
    fallback: Some("no notification"),
    common: false,
};
/// The API's base URL (for the hint `create` prints).
pub const API_URL: Name = Name {
    output: "ApiUrl",
    flag: "--api-url",
    value_name: "URL",
    help: "The API's base URL, for the URLs and examples commands print",
    fallback: Some("paths only"),
    common: false,
};

/// The isolated API's base URL, stage included: the stack has it only when
/// deployed with `EnableTenantIsolation=true`, and isolated tenants'
/// requests go there.
pub const ISOLATED_API_URL: Name = Name {
    output: "IsolatedApiUrl",
    flag: "--isolated-api-url",
    value_name: "URL",
    help: "The isolated API's base URL with its stage (a stack deployed with EnableTenantIsolation=true), for isolated tenants: create --isolated and isolate need it",
    fallback: None,
    common: false,
};

/// Every name the command line reads from a stack
/// (`scripts/check-template.py` checks that `template.yaml` declares each
/// `output` here).
pub const NAMES: [Name; 15] = [
    SECRET_PREFIX,
    CACHE_TTL,
    QUEUE_AGE_ALARM,
    BUS,
    EVENT_SOURCE,
    MAX_RECEIVES,
    SHARED_QUEUE,
    SHARED_DLQ,
    EVENTS_DLQ,
    EVENTS_DLQ_ARN,
    CONNECTOR,
    QUEUE_PREFIX,
    ALARM_TOPIC,
    API_URL,
    ISOLATED_API_URL,
];

/// The flag naming the stack whose outputs are read.
pub const STACK_FLAG: &str = "--stack";

/// The secret name prefix when neither a stack nor a flag gives one
/// (docs/protocol.md, section 7).
pub const DEFAULT_SECRET_PREFIX: &str = shared::store::DEFAULT_TENANT_SECRET_PREFIX;

/// The functions' record cache TTL when neither a stack nor a flag gives
/// one (docs/protocol.md, section 7).
pub const DEFAULT_CACHE_TTL_SECONDS: u64 = shared::store::DEFAULT_CACHE_TTL_SECONDS;

/// The queue-age alarm's threshold when neither a stack nor a flag gives
/// one (`template.yaml`'s default).
pub const DEFAULT_AGE_ALARM_SECONDS: u64 = 3600;

/// Receives before a record is dead-lettered, as the template's default.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// The stack options every command on a deployed stack takes: `--stack`
/// and one override flag per entry of [`NAMES`], built from the table.
#[derive(Debug, Clone, Default)]
pub struct StackArgs {
    stack: Option<String>,
    flags: HashMap<&'static str, String>,
}

impl clap::FromArgMatches for StackArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let value = |id: &str| {
            matches
                .get_one::<String>(id)
                .filter(|v| !v.is_empty())
                .cloned()
        };
        if let Some(stack) = value(STACK_FLAG.trim_start_matches('-')) {
            self.stack = Some(stack);
        }
        for name in NAMES {
            if let Some(v) = value(name.long()) {
                self.flags.insert(name.flag, v);
            }
        }
        Ok(())
    }
}

impl clap::Args for StackArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let stack = Arg::new(STACK_FLAG.trim_start_matches('-'))
            .long(STACK_FLAG.trim_start_matches('-'))
            .value_name("NAME")
            .env("FORMBRIDGE_STACK")
            .help("The CloudFormation stack (deployed with template.yaml) whose outputs name the resources");
        NAMES.iter().fold(
            command
                .next_help_heading("Stack (each name from the stack's outputs unless given)")
                .arg(stack),
            |command, name| {
                command.arg(
                    Arg::new(name.long())
                        .long(name.long())
                        .value_name(name.value_name)
                        .help(name.help_line())
                        .hide_short_help(!name.common),
                )
            },
        )
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl StackArgs {
    /// The AWS clients and the stack's names (its outputs read when
    /// `--stack` is given).
    pub async fn resolve(self) -> anyhow::Result<(super::Clients, Stack)> {
        let aws = super::Clients::from_env().await;
        let names = Stack {
            name: None,
            outputs: HashMap::new(),
            flags: self.flags,
        };
        let stack = match self.stack {
            Some(stack) => names.with_outputs(&aws.cloudformation, &stack).await?,
            None => names,
        };
        Ok((aws, stack))
    }
}

/// Resource names: flags first, then the stack's outputs.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    /// The stack's name, when names came from one (for messages).
    pub name: Option<String>,
    outputs: HashMap<String, String>,
    flags: HashMap<&'static str, String>,
}

impl Stack {
    /// Names from flags only (`flag` → value).
    #[cfg(test)]
    fn from_flags(flags: impl IntoIterator<Item = (Name, String)>) -> Self {
        Self {
            flags: flags
                .into_iter()
                .map(|(name, value)| (name.flag, value))
                .collect(),
            ..Self::default()
        }
    }

    /// Adds the outputs of the CloudFormation stack `name`.
    async fn with_outputs(
        mut self,
        cloudformation: &aws_sdk_cloudformation::Client,
        name: &str,
    ) -> anyhow::Result<Self> {
        let answer = cloudformation
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| anyhow!("cannot read stack {name}: {}", super::describe(&e)))?;
        let stack = answer
            .stacks()
            .first()
            .with_context(|| format!("stack {name} not found"))?;
        self.outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        self.name = Some(name.to_owned());
        Ok(self)
    }

    /// A name, if the flags or the stack give it.
    pub fn get(&self, name: Name) -> Option<&str> {
        self.flags
            .get(name.flag)
            .or_else(|| self.outputs.get(name.output))
            .map(String::as_str)
    }

    /// A name the command needs; the error says where it can come from.
    pub fn require(&self, name: Name) -> anyhow::Result<&str> {
        match (self.get(name), &self.name) {
            (Some(value), _) => Ok(value),
            (None, Some(stack)) => bail!(
                "stack {stack} has no output {}: deploy the current template.yaml, or pass {}",
                name.output,
                name.flag
            ),
            (None, None) => bail!(
                "{} is needed: pass {STACK_FLAG} NAME (the deployed stack) or {} {}",
                name.flag,
                name.flag,
                name.value_name
            ),
        }
    }

    /// A whole number within `range`, from the flag or the stack, else
    /// `default`; the error names the flag.
    fn number<T>(
        &self,
        name: Name,
        range: std::ops::RangeInclusive<T>,
        default: T,
    ) -> anyhow::Result<T>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| range.contains(n))
                .with_context(|| {
                    format!(
                        "{} must be a whole number from {} to {}, not {v:?}",
                        name.flag,
                        range.start(),
                        range.end()
                    )
                }),
        }
    }

    /// The tenant secret prefix: flag, stack output, or the default.
    pub fn secret_prefix(&self) -> &str {
        self.get(SECRET_PREFIX).unwrap_or(DEFAULT_SECRET_PREFIX)
    }

    /// The events' source: flag, stack output, or `form-bridge`.
    pub fn event_source(&self) -> &str {
        self.get(EVENT_SOURCE)
            .unwrap_or(shared::event::DEFAULT_EVENT_SOURCE)
    }

    /// Receives before dead-lettering: flag, stack output, or 5.
    pub fn max_receive_count(&self) -> anyhow::Result<u32> {
        self.number(MAX_RECEIVES, 1..=1000, DEFAULT_MAX_RECEIVE_COUNT)
    }

    /// How long the functions cache a tenant record, in seconds: flag,
    /// stack output, or 300.
    pub fn cache_ttl(&self) -> anyhow::Result<u64> {
        self.number(
            CACHE_TTL,
            shared::store::CACHE_TTL_SECONDS_RANGE,
            DEFAULT_CACHE_TTL_SECONDS,
        )
    }

    /// The dedicated queues' age alarm, in seconds: flag, stack output, or
    /// 3600.
    pub fn queue_age_alarm(&self) -> anyhow::Result<u64> {
        self.number(QUEUE_AGE_ALARM, 60..=1_209_600, DEFAULT_AGE_ALARM_SECONDS)
    }

    /// The stack options as they were given (` --stack NAME` and each
    /// override flag), to repeat in a command a message suggests.
    pub fn options(&self) -> String {
        let stack = self.name.iter().map(|name| format!(" {STACK_FLAG} {name}"));
        let flags = NAMES.iter().filter_map(|name| {
            let value = self.flags.get(name.flag)?;
            Some(format!(" {} {value}", name.flag))
        });
        stack.chain(flags).collect()
    }

    /// The API's base URL, when the flag or the stack gives it.
    pub fn api_url(&self) -> Option<&str> {
        self.get(API_URL)
    }

    /// The base URL of the API a tenant with this isolation uses (the
    /// shared `ApiUrl` or the `IsolatedApiUrl`), when the flag or the
    /// stack gives it.
    pub fn api_url_for(&self, isolation: Isolation) -> Option<&str> {
        self.get(api_url_name(isolation))
    }

    /// The isolated API's base URL, which isolating a tenant needs: a
    /// stack deployed without `EnableTenantIsolation=true` has none, and
    /// an isolated tenant's requests would be denied on both APIs.
    pub fn require_isolated_api_url(&self) -> anyhow::Result<&str> {
        let name = ISOLATED_API_URL;
        match (self.get(name), &self.name) {
            (Some(url), _) => Ok(url),
            (None, Some(stack)) => bail!(
                "stack {stack} has no isolated API (no output {}): it was deployed without \
                 EnableTenantIsolation=true. Deploy it again with that parameter set to true \
                 first, or pass {} URL",
                name.output,
                name.flag
            ),
            (None, None) => bail!(
                "{} is needed for an isolated tenant: pass {STACK_FLAG} NAME (a stack deployed \
                 with EnableTenantIsolation=true) or {} URL",
                name.flag,
                name.flag
            ),
        }
    }
}

/// The name of the base URL of the API a tenant with this isolation uses.
pub fn api_url_name(isolation: Isolation) -> Name {
    match isolation {
        Isolation::Shared => API_URL,
        Isolation::PerTenant => ISOLATED_API_URL,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::{Args as _, FromArgMatches as _};

    fn parse(args: &[&str]) -> StackArgs {
        let command = StackArgs::augment_args(clap::Command::new("t").no_binary_name(true));
        StackArgs::from_arg_matches(&command.try_get_matches_from(args).unwrap()).unwrap()
    }

    #[test]
    fn every_name_has_a_flag_and_the_flags_reach_the_lookup() {
        let mut args = Vec::new();
        for name in NAMES {
            args.push(name.flag.to_owned());
            args.push(format!("value-of-{}", name.output));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let parsed = parse(&args);
        let stack = Stack {
            flags: parsed.flags,
            ..Stack::default()
        };
        for name in NAMES {
            assert_eq!(
                stack.get(name),
                Some(format!("value-of-{}", name.output).as_str())
            );
        }
        let outputs: std::collections::HashSet<_> = NAMES.iter().map(|n| n.output).collect();
        assert_eq!(outputs.len(), NAMES.len(), "an output named twice");
        // What help says is used without a flag or output is what is used.
        let text = |n: u64| Some(n.to_string());
        assert_eq!(
            CACHE_TTL.fallback.map(str::to_owned),
            text(DEFAULT_CACHE_TTL_SECONDS)
        );
        assert_eq!(
            QUEUE_AGE_ALARM.fallback.map(str::to_owned),
            text(DEFAULT_AGE_ALARM_SECONDS)
        );
        assert_eq!(
            MAX_RECEIVES.fallback.map(str::to_owned),
            text(DEFAULT_MAX_RECEIVE_COUNT.into())
        );
        assert_eq!(SECRET_PREFIX.fallback, Some(DEFAULT_SECRET_PREFIX));
    }

    #[test]
    fn flags_win_over_outputs_and_missing_names_say_where_to_get_them() {
        let mut stack = Stack::from_flags([(BUS, "flag-bus".to_owned())]);
        stack
            .outputs
            .insert("EventBusName".into(), "stack-bus".into());
        stack
            .outputs
            .insert("SharedQueueUrl".into(), "http://q".into());
        assert_eq!(stack.get(BUS), Some("flag-bus"));
        assert_eq!(stack.options(), " --bus flag-bus");
        assert_eq!(stack.get(SHARED_QUEUE), Some("http://q"));
        assert_eq!(stack.secret_prefix(), DEFAULT_SECRET_PREFIX);
        let error = stack.require(CONNECTOR).unwrap_err().to_string();
        assert!(error.contains("--connector-function NAME"), "{error}");
        stack.name = Some("fb".into());
        assert_eq!(stack.options(), " --stack fb --bus flag-bus");
        let error = stack.require(CONNECTOR).unwrap_err().to_string();
        assert!(error.contains("ConnectorFunctionName"), "{error}");
    }

    #[test]
    fn the_isolated_api_comes_from_its_output_and_its_absence_says_how_to_get_it() {
        let mut stack = Stack::default();
        stack
            .outputs
            .insert("ApiUrl".into(), "https://shared".into());
        assert_eq!(stack.api_url_for(Isolation::Shared), Some("https://shared"));
        assert_eq!(stack.api_url_for(Isolation::PerTenant), None);
        let error = stack.require_isolated_api_url().unwrap_err().to_string();
        assert!(
            error.contains("--isolated-api-url is needed") && error.contains("--stack NAME"),
            "{error}"
        );
        stack.name = Some("fb".into());
        let error = stack.require_isolated_api_url().unwrap_err().to_string();
        assert!(
            error.contains("stack fb has no isolated API (no output IsolatedApiUrl)")
                && error.contains("EnableTenantIsolation=true"),
            "{error}"
        );
        stack
            .outputs
            .insert("IsolatedApiUrl".into(), "https://iso/isolated".into());
        assert_eq!(
            stack.require_isolated_api_url().unwrap(),
            "https://iso/isolated"
        );
        assert_eq!(
            stack.api_url_for(Isolation::PerTenant),
            Some("https://iso/isolated")
        );
    }

    #[test]
    fn numbers_are_checked_naming_their_flag() {
        let stack = Stack::from_flags([
            (CACHE_TTL, "five".to_owned()),
            (QUEUE_AGE_ALARM, "30".to_owned()),
            (MAX_RECEIVES, "7".to_owned()),
        ]);
        let error = stack.cache_ttl().unwrap_err().to_string();
        assert!(error.contains("--secret-cache-ttl"), "{error}");
        let error = stack.queue_age_alarm().unwrap_err().to_string();
        assert!(
            error.contains("--queue-age-alarm") && error.contains("60"),
            "{error}"
        );
        assert_eq!(stack.max_receive_count().unwrap(), 7);
        assert_eq!(Stack::default().cache_ttl().unwrap(), 300);
    }
}
