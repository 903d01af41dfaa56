//! What the account and the stack allow before a command adds to them:
//! the connector's concurrency, shared by every queue's event source
//! mapping, and the bus's rules.
//!
//! Each SQS mapping on the connector runs up to its `MaximumConcurrency`
//! invocations at once. When they add up to more than the connector can
//! get (its reserved concurrency, else the account's unreserved pool),
//! Lambda throttles the receives, and a throttled receive still counts
//! towards a record's receive limit: records are dead-lettered without an
//! attempt. So `create --dedicated`, `promote` and `scale` refuse a
//! maximum that would make the sum exceed it.
//!
//! Every dedicated tenant adds a rule to the bus, whose rules have a
//! quota (300 by default, adjustable); the commands warn as it nears.

use anyhow::anyhow;

use super::stack::{self, Stack};
use super::{Clients, describe};
use crate::output;

/// EventBridge's default quota of rules per event bus (adjustable in
/// Service Quotas).
pub const DEFAULT_RULES_PER_BUS: usize = 300;
/// The share of the quota from which a warning is printed, in percent.
pub const RULES_WARNING_PERCENT: usize = 90;

/// What the connector can run at once, and where that figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// The connector's reserved concurrency: its own, and its most.
    Reserved(i64),
    /// No reservation: the account's unreserved concurrency, which every
    /// function without a reservation shares.
    Unreserved(i64),
}

impl Capacity {
    fn limit(self) -> i64 {
        match self {
            Self::Reserved(n) | Self::Unreserved(n) => n,
        }
    }
}

/// One event source mapping's share of the connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The queue it reads (its name).
    pub queue: String,
    /// Its maximum concurrency; `None` when it has none (it may then use
    /// the connector's whole capacity).
    pub max_concurrency: Option<i32>,
}

/// The mappings of the connector other than `queue`'s, with `queue`'s at
/// `wanted`, checked against `capacity`. Returns the sum, or why it does
/// not fit (the numbers, and what raises them).
pub fn assess(
    shares: &[Share],
    queue: &str,
    wanted: i32,
    capacity: Capacity,
    dedicated_prefix: &str,
) -> Result<i64, String> {
    let limit = capacity.limit();
    let others: Vec<&Share> = shares.iter().filter(|s| s.queue != queue).collect();
    let counted = |s: &Share| s.max_concurrency.map_or(limit, i64::from);
    let (dedicated, shared): (Vec<&Share>, Vec<&Share>) = others
        .iter()
        .partition(|s| s.queue.starts_with(dedicated_prefix));
    let others_sum: i64 = others.iter().map(|s| counted(s)).sum();
    let total = others_sum + i64::from(wanted);
    if total <= limit {
        return Ok(total);
    }
    let mut parts: Vec<String> = shared
        .iter()
        .map(|s| match s.max_concurrency {
            Some(n) => format!("{} {n}", s.queue),
            None => format!("{} no maximum (counted as {limit})", s.queue),
        })
        .collect();
    if !dedicated.is_empty() {
        let unbounded = dedicated.iter().filter(|s| s.max_concurrency.is_none());
        parts.push(format!(
            "{} {}{}",
            output::count(dedicated.len() as u64, "other dedicated tenant"),
            dedicated.iter().map(|s| counted(s)).sum::<i64>(),
            match unbounded.count() {
                0 => String::new(),
                n => format!(" ({n} with no maximum, counted as {limit} each)"),
            }
        ));
    }
    parts.push(format!("this tenant {wanted}"));
    let room = limit - others_sum;
    let lower = if room >= 2 {
        format!("use --max-concurrency {room} or less, ")
    } else {
        String::new()
    };
    let (what, raise) = match capacity {
        Capacity::Reserved(_) => (
            "the connector's reserved concurrency (the stack's ConnectorReservedConcurrency parameter)",
            "or raise ConnectorReservedConcurrency (the account's concurrency quota permitting)",
        ),
        Capacity::Unreserved(_) => (
            "the account's unreserved concurrency, which the connector shares with every function \
             without a reservation (it has none: the stack's ConnectorReservedConcurrency is 0)",
            "give the connector a reservation (ConnectorReservedConcurrency), \
             or ask AWS for a higher Lambda concurrent executions quota",
        ),
    };
    Err(format!(
        "the connector's queue mappings would run up to {total} invocations at once ({}), \
         more than the {limit} it can get: {what}. Lambda would throttle the excess, and \
         throttled receives dead-letter records undelivered. To fit: {lower}lower another \
         dedicated tenant's (formbridge tenants scale ID --max-concurrency N) or the shared \
         queue's (ConnectorMaxConcurrency), {raise}",
        parts.join(", ")
    ))
}

/// Refuses `wanted` as the maximum concurrency of `queue`'s mapping when
/// the connector's mappings would then add up to more than it can get.
pub async fn check_concurrency(
    aws: &Clients,
    stack: &Stack,
    queue: &str,
    wanted: i32,
) -> anyhow::Result<()> {
    let connector = stack.require(stack::CONNECTOR)?;
    let prefix = stack.require(stack::QUEUE_PREFIX)?;
    let capacity = capacity(aws, connector).await?;
    let shares = shares(aws, connector).await?;
    assess(&shares, queue, wanted, capacity, prefix).map_err(|why| anyhow!("{why}"))?;
    Ok(())
}

/// The connector's reserved concurrency, else the account's unreserved.
async fn capacity(aws: &Clients, connector: &str) -> anyhow::Result<Capacity> {
    let reserved = aws
        .lambda
        .get_function_concurrency()
        .function_name(connector)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot read {connector}'s reserved concurrency (lambda:GetFunctionConcurrency), \
                 needed to check that the mappings fit in it: {}",
                describe(&e)
            )
        })?
        .reserved_concurrent_executions;
    if let Some(n) = reserved {
        return Ok(Capacity::Reserved(i64::from(n)));
    }
    let settings = aws
        .lambda
        .get_account_settings()
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "{connector} has no reserved concurrency, and the account's unreserved \
             concurrency cannot be read (lambda:GetAccountSettings), needed to check that \
             the mappings fit in it: {}",
                describe(&e)
            )
        })?;
    let unreserved = settings
        .account_limit()
        .and_then(|l| l.unreserved_concurrent_executions())
        .ok_or_else(|| anyhow!("GetAccountSettings answered without the unreserved concurrency"))?;
    Ok(Capacity::Unreserved(i64::from(unreserved)))
}

/// Every live SQS mapping of the connector.
async fn shares(aws: &Clients, connector: &str) -> anyhow::Result<Vec<Share>> {
    let mappings: Vec<_> = aws
        .lambda
        .list_event_source_mappings()
        .function_name(connector)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot list {connector}'s event source mappings: {}",
                describe(&e)
            )
        })?;
    Ok(mappings
        .iter()
        .filter(|m| super::dedicated::is_live(m))
        .filter_map(|m| {
            let arn = m.event_source_arn()?;
            (arn.split(':').nth(2) == Some("sqs"))
                .then(|| arn.rsplit(':').next())
                .flatten()
                .map(|queue| Share {
                    queue: queue.to_owned(),
                    max_concurrency: m.scaling_config().and_then(|c| c.maximum_concurrency()),
                })
        })
        .collect())
}

/// The bus's rules, counted (paged through), plus one if `adding`; a
/// warning when that reaches [`RULES_WARNING_PERCENT`] of the default
/// quota. The account's actual quota is not read (that needs the Service
/// Quotas API and its permission): the warning says to ignore it if the
/// quota was raised. A failure to count is a warning too: it never stops
/// a command.
pub async fn warn_if_rules_near_quota(aws: &Clients, stack: &Stack, adding: bool) {
    match count_rules(aws, stack).await {
        Ok(count) => {
            if let Some(warning) = rules_warning(count + usize::from(adding)) {
                eprintln!("formbridge: warning: {warning}");
            }
        }
        Err(e) => eprintln!(
            "formbridge: warning: cannot count the bus's rules (events:ListRules) to compare \
             with its quota of {DEFAULT_RULES_PER_BUS}: {e:#}"
        ),
    }
}

/// The warning for a bus with `count` rules, if any.
pub fn rules_warning(count: usize) -> Option<String> {
    (count * 100 >= DEFAULT_RULES_PER_BUS * RULES_WARNING_PERCENT).then(|| {
        format!(
            "the bus has {count} rules, {}% of the default quota of {DEFAULT_RULES_PER_BUS} \
             rules per bus (ignore if raised; the shared rule and the archive's count too, and \
             each dedicated tenant adds one): before it is reached, ask AWS for more (Service \
             Quotas, Amazon EventBridge, \"Rules per event bus\"), or demote tenants that no \
             longer need their own path",
            count * 100 / DEFAULT_RULES_PER_BUS
        )
    })
}

async fn count_rules(aws: &Clients, stack: &Stack) -> anyhow::Result<usize> {
    let bus = stack.require(stack::BUS)?;
    let mut count = 0;
    let mut next: Option<String> = None;
    loop {
        let page = aws
            .events
            .list_rules()
            .event_bus_name(bus)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| anyhow!("cannot list the rules of bus {bus}: {}", describe(&e)))?;
        count += page.rules().len();
        match page.next_token {
            Some(token) if !token.is_empty() => next = Some(token),
            _ => return Ok(count),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn share(queue: &str, max: Option<i32>) -> Share {
        Share {
            queue: queue.to_owned(),
            max_concurrency: max,
        }
    }

    #[test]
    fn the_sum_of_maxima_must_fit_what_the_connector_can_get() {
        let shares = [
            share("fb-shared", Some(10)),
            share("fb_t_acme", Some(5)),
            share("fb_t_bigco", Some(40)),
        ];
        // A new tenant: the others plus it.
        assert_eq!(
            assess(&shares, "fb_t_new", 45, Capacity::Reserved(100), "fb_t_"),
            Ok(100)
        );
        let refused =
            assess(&shares, "fb_t_new", 46, Capacity::Reserved(100), "fb_t_").unwrap_err();
        assert!(refused.contains("up to 101 invocations"), "{refused}");
        assert!(
            refused.contains("fb-shared 10, 2 other dedicated tenants 45, this tenant 46"),
            "{refused}"
        );
        assert!(refused.contains("more than the 100"), "{refused}");
        assert!(
            refused.contains("--max-concurrency 45 or less"),
            "{refused}"
        );
        assert!(
            refused.contains("ConnectorReservedConcurrency"),
            "{refused}"
        );
        // A changed tenant's old value does not count.
        assert_eq!(
            assess(&shares, "fb_t_bigco", 85, Capacity::Reserved(100), "fb_t_"),
            Ok(100)
        );
        // The account's pool when the connector has no reservation.
        let refused =
            assess(&shares, "fb_t_new", 5, Capacity::Unreserved(50), "fb_t_").unwrap_err();
        assert!(refused.contains("unreserved concurrency"), "{refused}");
        assert!(refused.contains("more than the 50"), "{refused}");
        assert!(
            !refused.contains("or less"),
            "no room to suggest: {refused}"
        );
        // A mapping without a maximum may take everything.
        let unbounded = [share("fb-shared", None)];
        let refused =
            assess(&unbounded, "fb_t_new", 2, Capacity::Reserved(100), "fb_t_").unwrap_err();
        assert!(
            refused.contains("fb-shared no maximum (counted as 100)"),
            "{refused}"
        );
    }

    #[test]
    fn rules_warn_from_ninety_percent_of_the_quota() {
        assert_eq!(rules_warning(269), None);
        let warning = rules_warning(270).unwrap();
        assert!(warning.contains("270 rules, 90%"), "{warning}");
        assert!(
            warning.contains("default quota of 300 rules per bus (ignore if raised;"),
            "{warning}"
        );
        assert!(rules_warning(301).unwrap().contains("100%"));
    }
}
