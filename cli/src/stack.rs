//! The deployed stack's resource names, from its CloudFormation outputs
//! (`template.yaml`) or from flags, for the commands that operate on AWS.

use std::collections::HashMap;

use anyhow::{Context as _, anyhow, bail};

/// The stack outputs the command line reads (`scripts/check-template.py`
/// checks that `template.yaml` declares each of them).
pub const OUTPUTS: [&str; 14] = [
    "ApiUrl",
    "TenantSecretPrefix",
    "SecretCacheTtlSeconds",
    "QueueAgeAlarmSeconds",
    "EventBusName",
    "EventSource",
    "MaxReceiveCount",
    "SharedQueueUrl",
    "SharedDeadLetterQueueUrl",
    "EventTargetDeadLetterQueueUrl",
    "EventTargetDeadLetterQueueArn",
    "ConnectorFunctionName",
    "DedicatedQueuePrefix",
    "AlarmTopicArn",
];

/// The secret name prefix when neither a stack nor a flag gives one
/// (contract section 7).
pub const DEFAULT_SECRET_PREFIX: &str = "form-bridge/tenants/";

/// The functions' record cache TTL when neither a stack nor a flag gives
/// one (contract section 7).
pub const DEFAULT_CACHE_TTL_SECONDS: u64 = 300;

/// One resource name: which output carries it and which flag overrides it.
#[derive(Debug, Clone, Copy)]
pub struct Name {
    /// The stack output.
    pub output: &'static str,
    /// The command-line flag.
    pub flag: &'static str,
}

/// Secrets Manager name prefix of tenant records.
pub const SECRET_PREFIX: Name = Name {
    output: "TenantSecretPrefix",
    flag: "--secret-prefix",
};
/// How long the functions cache a record (optional: 300).
pub const CACHE_TTL: Name = Name {
    output: "SecretCacheTtlSeconds",
    flag: "--secret-cache-ttl",
};
/// The dedicated queues' age alarm threshold (optional: 3600).
pub const QUEUE_AGE_ALARM: Name = Name {
    output: "QueueAgeAlarmSeconds",
    flag: "--queue-age-alarm",
};
/// The bus ingest publishes to.
pub const BUS: Name = Name {
    output: "EventBusName",
    flag: "--bus",
};
/// The source of Form-Bridge events (optional: `form-bridge`).
pub const EVENT_SOURCE: Name = Name {
    output: "EventSource",
    flag: "--event-source",
};
/// Receives before a record is dead-lettered (optional: 5).
pub const MAX_RECEIVES: Name = Name {
    output: "MaxReceiveCount",
    flag: "--max-receive-count",
};
/// The shared delivery queue.
pub const SHARED_QUEUE: Name = Name {
    output: "SharedQueueUrl",
    flag: "--shared-queue-url",
};
/// The shared queue's dead-letter queue.
pub const SHARED_DLQ: Name = Name {
    output: "SharedDeadLetterQueueUrl",
    flag: "--shared-dlq-url",
};
/// Where EventBridge puts events it could not put on a queue.
pub const EVENTS_DLQ: Name = Name {
    output: "EventTargetDeadLetterQueueUrl",
    flag: "--events-dlq-url",
};
/// The same queue's ARN, for dedicated rules' targets.
pub const EVENTS_DLQ_ARN: Name = Name {
    output: "EventTargetDeadLetterQueueArn",
    flag: "--events-dlq-arn",
};
/// The connector function.
pub const CONNECTOR: Name = Name {
    output: "ConnectorFunctionName",
    flag: "--connector-function",
};
/// Name prefix of dedicated tenants' queues.
pub const QUEUE_PREFIX: Name = Name {
    output: "DedicatedQueuePrefix",
    flag: "--queue-prefix",
};
/// The alarms' SNS topic (optional).
pub const ALARM_TOPIC: Name = Name {
    output: "AlarmTopicArn",
    flag: "--alarm-topic-arn",
};

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
    pub fn from_flags(flags: impl IntoIterator<Item = (&'static str, Option<String>)>) -> Self {
        Self {
            name: None,
            outputs: HashMap::new(),
            flags: flags
                .into_iter()
                .filter_map(|(flag, value)| Some((flag, value.filter(|v| !v.is_empty())?)))
                .collect(),
        }
    }

    /// Adds the outputs of the CloudFormation stack `name`.
    pub async fn with_outputs(
        mut self,
        cloudformation: &aws_sdk_cloudformation::Client,
        name: &str,
    ) -> anyhow::Result<Self> {
        let answer = cloudformation
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| anyhow!("cannot read stack {name}: {}", crate::aws::describe(&e)))?;
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
                "{} is needed: pass --stack NAME (the deployed stack) or {}",
                name.flag,
                name.flag
            ),
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
        match self.get(MAX_RECEIVES) {
            None => Ok(crate::dedicated::DEFAULT_MAX_RECEIVE_COUNT),
            Some(n) => n
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .with_context(|| format!("{} must be 1 to 1000, not {n:?}", MAX_RECEIVES.flag)),
        }
    }

    /// How long the functions cache a tenant record: flag, stack output,
    /// or the default 300 s.
    pub fn cache_ttl(&self) -> anyhow::Result<u64> {
        match self.get(CACHE_TTL) {
            None => Ok(DEFAULT_CACHE_TTL_SECONDS),
            Some(n) => n.parse().ok().filter(|n| *n <= 86_400).with_context(|| {
                format!("{} must be 0 to 86400 seconds, not {n:?}", CACHE_TTL.flag)
            }),
        }
    }

    /// The API's base URL, when the stack gives it.
    pub fn api_url(&self) -> Option<&str> {
        self.outputs.get("ApiUrl").map(String::as_str)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_outputs_and_missing_names_say_where_to_get_them() {
        let mut stack = Stack::from_flags([(BUS.flag, Some("flag-bus".to_owned()))]);
        stack
            .outputs
            .insert("EventBusName".into(), "stack-bus".into());
        stack
            .outputs
            .insert("SharedQueueUrl".into(), "http://q".into());
        assert_eq!(stack.get(BUS), Some("flag-bus"));
        assert_eq!(stack.get(SHARED_QUEUE), Some("http://q"));
        assert_eq!(stack.secret_prefix(), DEFAULT_SECRET_PREFIX);
        let error = stack.require(CONNECTOR).unwrap_err().to_string();
        assert!(error.contains("--connector-function"), "{error}");
        stack.name = Some("fb".into());
        let error = stack.require(CONNECTOR).unwrap_err().to_string();
        assert!(error.contains("ConnectorFunctionName"), "{error}");
    }

    #[test]
    fn every_name_is_an_output() {
        for name in [
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
        ] {
            assert!(OUTPUTS.contains(&name.output), "{}", name.output);
        }
    }
}
