use std::collections::VecDeque;
use std::sync::Mutex;

use proptest::prelude::*;

use super::*;

/// What a [`Scripted`] bus does with one call.
#[derive(Clone, Debug)]
enum Answer {
    /// Publish every entry.
    Ok,
    /// Fail the entries at these positions of the call with this code.
    Fail(Vec<usize>, &'static str),
    /// Fail the entries at these positions, each with its code.
    FailEach(Vec<(usize, &'static str)>),
    /// Fail the call.
    Error(PublishError),
}

/// A bus that answers calls from a script (then publishes everything) and
/// remembers what it was sent and what it published.
#[derive(Default)]
struct Scripted {
    script: Mutex<VecDeque<Answer>>,
    calls: Mutex<Vec<Vec<String>>>,
    published: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(answers: impl IntoIterator<Item = Answer>) -> Self {
        Self {
            script: Mutex::new(answers.into_iter().collect()),
            ..Self::default()
        }
    }

    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().expect("lock").clone()
    }

    fn published(&self) -> Vec<String> {
        self.published.lock().expect("lock").clone()
    }
}

impl EventPublisher for Scripted {
    async fn put_events(
        &self,
        entries: &[BusEntry],
    ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
        assert!(entries.len() <= MAX_ENTRIES_PER_CALL);
        assert!(entries.iter().map(BusEntry::size).sum::<usize>() <= MAX_CALL_BYTES);
        let details: Vec<String> = entries.iter().map(|e| e.detail.clone()).collect();
        self.calls.lock().expect("lock").push(details.clone());
        let answer = self
            .script
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(Answer::Ok);
        let results: Vec<Result<(), EntryFailure>> = match answer {
            Answer::Error(e) => return Err(e),
            Answer::Ok => vec![Ok(()); entries.len()],
            Answer::Fail(positions, code) => {
                let each: Vec<(usize, &str)> = positions.iter().map(|&p| (p, code)).collect();
                fail_each(entries.len(), &each)
            }
            Answer::FailEach(each) => fail_each(entries.len(), &each),
        };
        let mut published = self.published.lock().expect("lock");
        for (detail, result) in details.into_iter().zip(&results) {
            if result.is_ok() {
                published.push(detail);
            }
        }
        Ok(results)
    }
}

fn fail_each(n: usize, each: &[(usize, &str)]) -> Vec<Result<(), EntryFailure>> {
    (0..n)
        .map(|i| match each.iter().find(|(p, _)| *p == i) {
            Some((_, code)) => Err(EntryFailure {
                code: (*code).to_owned(),
                retryable: is_retryable_entry_code(code),
            }),
            None => Ok(()),
        })
        .collect()
}

fn entry(i: usize, detail_bytes: usize) -> BusEntry {
    let tag = format!("{{\"i\":{i},\"pad\":\"");
    let pad = detail_bytes.saturating_sub(tag.len() + 2);
    BusEntry {
        source: Arc::from("form-bridge"),
        detail_type: "form.submission",
        time: SystemTime::UNIX_EPOCH,
        detail: format!("{tag}{}\"}}", "x".repeat(pad)),
    }
}

fn entries(n: usize, detail_bytes: usize) -> Vec<BusEntry> {
    (0..n).map(|i| entry(i, detail_bytes)).collect()
}

fn details(entries: &[BusEntry]) -> Vec<String> {
    entries.iter().map(|e| e.detail.clone()).collect()
}

fn unavailable() -> PublishError {
    PublishError::Unavailable("503 ServiceUnavailable".into())
}

#[test]
fn entry_size_is_counted_as_eventbridge_does() {
    let e = entry(0, 100);
    assert_eq!(e.detail.len(), 100);
    assert_eq!(
        e.size(),
        14 + "form-bridge".len() + "form.submission".len() + 100
    );
}

#[test]
fn calls_hold_at_most_ten_entries() {
    for (n, calls) in [(1, 1), (10, 1), (11, 2), (100, 10), (1000, 100)] {
        let plan = plan_calls(&entries(n, 200)).expect("fits");
        assert_eq!(plan.len(), calls, "{n} entries");
    }
    assert!(plan_calls(&[]).expect("empty").is_empty());
}

#[test]
fn calls_are_split_by_size() {
    // 300,000-byte details: three fit in 1 MiB, a fourth does not.
    let plan = plan_calls(&entries(10, 300_000)).expect("fits");
    assert_eq!(plan, vec![0..3, 3..6, 6..9, 9..10]);
    // An entry of exactly the largest size shares its call with what
    // still fits in 1 MiB beside it, and no more.
    let overhead = TIME_BYTES + "form-bridge".len() + "form.submission".len();
    let exact = entry(1, MAX_ENTRY_BYTES - overhead);
    assert_eq!(exact.size(), MAX_ENTRY_BYTES);
    let plan = plan_calls(&[entry(0, 10), exact, entry(2, 10_000)]).expect("fits");
    assert_eq!(plan, vec![0..2, 2..3]);
}

/// An event EventBridge takes but the queues behind it cannot hold once
/// wrapped (SQS: 1 MiB for body and attributes) would live only in the
/// archive: it is refused like one over the call's limit.
#[test]
fn an_entry_too_large_for_the_queues_is_refused() {
    let overhead = TIME_BYTES + "form-bridge".len() + "form.submission".len();
    let fits = entry(0, MAX_ENTRY_BYTES - overhead);
    let plan = plan_calls(std::slice::from_ref(&fits)).expect("fits");
    assert_eq!((plan.len(), plan.first()), (1, Some(&(0..1))));
    for size in [MAX_ENTRY_BYTES + 1, MAX_CALL_BYTES - 100, MAX_CALL_BYTES] {
        let over = entry(0, size - overhead);
        assert_eq!(
            plan_calls(&[over]),
            Err(EntryTooLarge { index: 0, size }),
            "{size}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_entry_over_the_limit_fails_before_anything_is_sent() {
    let bus = Scripted::default();
    let mut batch = entries(3, 100);
    batch.push(entry(3, MAX_CALL_BYTES));
    let err = publish(&bus, &batch, &RetryPolicy::default())
        .await
        .expect_err("too large");
    assert_eq!(err.index, 3);
    assert!(bus.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn only_failed_entries_are_sent_again() {
    let bus = Scripted::new([
        Answer::Fail(vec![1, 3], "ThrottlingException"),
        Answer::Fail(vec![0], "InternalFailure"),
    ]);
    let batch = entries(5, 100);
    let report = publish(&bus, &batch, &RetryPolicy::default())
        .await
        .expect("fits");
    assert_eq!(report.failed, vec![]);
    assert_eq!(report.calls, 3);
    assert_eq!(report.retried_entries, 3);
    let calls = bus.calls();
    assert_eq!(
        calls[1],
        vec![batch[1].detail.clone(), batch[3].detail.clone()]
    );
    assert_eq!(calls[2], vec![batch[1].detail.clone()]);
    let mut published = bus.published();
    published.sort();
    let mut all = details(&batch);
    all.sort();
    assert_eq!(published, all, "each entry exactly once");
}

#[tokio::test(start_paused = true)]
async fn entries_the_bus_rejects_are_not_sent_again() {
    let bus = Scripted::new([Answer::Fail(vec![2], "MalformedDetail")]);
    let report = publish(&bus, &entries(4, 100), &RetryPolicy::default())
        .await
        .expect("fits");
    assert_eq!(report.calls, 1);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, 2);
    assert_eq!(report.failed[0].1.code(), "MalformedDetail");
    assert_eq!(bus.published().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failing_bus_is_retried_up_to_the_attempt_limit() {
    let policy = RetryPolicy::default();
    let bus = Scripted::new(vec![Answer::Error(unavailable()); 10]);
    let report = publish(&bus, &entries(3, 100), &policy)
        .await
        .expect("fits");
    assert_eq!(report.calls, policy.max_attempts);
    assert_eq!(report.failed.len(), 3);
    assert!(
        report
            .failed
            .iter()
            .all(|(_, e)| e.code() == "bus_unavailable")
    );
    assert!(bus.published().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_recovering_bus_gets_everything() {
    let bus = Scripted::new([Answer::Error(unavailable()), Answer::Error(unavailable())]);
    let report = publish(&bus, &entries(25, 100), &RetryPolicy::default())
        .await
        .expect("fits");
    assert_eq!(report.failed, vec![]);
    assert_eq!(bus.published().len(), 25);
    assert_eq!(report.calls, 5, "3 planned calls, 2 of them retried once");
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_or_a_refusal_is_never_retried() {
    for error in [
        PublishError::Unknown("timeout".into()),
        PublishError::Refused("AccessDeniedException".into()),
    ] {
        let bus = Scripted::new([Answer::Error(error.clone())]);
        let report = publish(&bus, &entries(2, 100), &RetryPolicy::default())
            .await
            .expect("fits");
        assert_eq!(report.calls, 1);
        assert_eq!(report.failed.len(), 2);
        assert_eq!(
            report.failed[0].1.outcome_unknown(),
            matches!(error, PublishError::Unknown(_))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_time_budget() {
    let policy = RetryPolicy {
        max_attempts: 100,
        base_delay: Duration::from_millis(400),
        max_delay: Duration::from_secs(2),
        budget: Duration::from_secs(3),
    };
    let bus = Scripted::new(vec![Answer::Error(unavailable()); 100]);
    let started = Instant::now();
    let report = publish(&bus, &entries(1, 100), &policy)
        .await
        .expect("fits");
    assert_eq!(report.failed.len(), 1);
    assert!(
        started.elapsed() <= policy.budget,
        "{:?}",
        started.elapsed()
    );
    assert!(report.calls > 1 && report.calls < 100, "{}", report.calls);
}

#[tokio::test]
async fn the_memory_bus_queues_whole_calls_or_nothing() {
    let (bus, mut rx) = MemoryPublisher::channel(15);
    let batch = entries(10, 100);
    let results = bus.put_events(&batch).await.expect("room");
    assert_eq!(results.len(), 10);
    assert_eq!(
        bus.put_events(&batch).await,
        Err(PublishError::Unavailable("the local queue is full".into()))
    );
    for expected in &batch {
        assert_eq!(rx.recv().await.as_ref(), Some(expected));
    }
    drop(rx);
    assert!(matches!(
        bus.put_events(&batch[..1]).await,
        Err(PublishError::Refused(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn failures_are_reported_in_position_order() {
    // Entry 2 is rejected at once; entry 0 is throttled until the attempts
    // run out, so it fails later but must still be listed first.
    let bus = Scripted::new(
        std::iter::once(Answer::FailEach(vec![
            (0, "ThrottlingException"),
            (2, "MalformedDetail"),
        ]))
        .chain(std::iter::repeat_n(
            Answer::Fail(vec![0], "ThrottlingException"),
            10,
        )),
    );
    let report = publish(&bus, &entries(3, 100), &RetryPolicy::default())
        .await
        .expect("fits");
    let failed: Vec<usize> = report.failed.iter().map(|(i, _)| *i).collect();
    assert_eq!(failed, vec![0, 2]);
    assert_eq!(bus.published(), vec![entries(3, 100)[1].detail.clone()]);
}

fn any_answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        6 => (prop::collection::vec(0usize..10, 0..4), any::<bool>()).prop_map(|(p, retryable)| {
            Answer::Fail(p, if retryable { "ThrottlingException" } else { "MalformedDetail" })
        }),
        2 => Just(Answer::Error(unavailable())),
        1 => Just(Answer::Error(PublishError::Unknown("timeout".into()))),
        1 => Just(Answer::Error(PublishError::Refused("AccessDenied".into()))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the sizes and however the bus fails, every call respects the
    /// limits and keeps order, and every entry ends published exactly once
    /// or reported failed (in position order), never both.
    #[test]
    fn every_entry_is_published_once_or_reported_failed(
        sizes in prop::collection::vec(prop_oneof![1usize..2_000, 100_000usize..400_000], 1..120),
        answers in prop::collection::vec(any_answer(), 0..12),
    ) {
        let batch: Vec<BusEntry> = sizes.iter().enumerate().map(|(i, &s)| entry(i, s)).collect();
        let plan = plan_calls(&batch).expect("fits");
        let flat: Vec<usize> = plan.iter().flat_map(Clone::clone).collect();
        prop_assert_eq!(flat, (0..batch.len()).collect::<Vec<_>>());
        for call in &plan {
            prop_assert!(call.len() <= MAX_ENTRIES_PER_CALL);
            prop_assert!(batch[call.clone()].iter().map(BusEntry::size).sum::<usize>() <= MAX_CALL_BYTES);
        }
        let bus = Scripted::new(answers);
        let policy = RetryPolicy { max_attempts: 20, budget: Duration::from_secs(600), ..RetryPolicy::default() };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let report = runtime.block_on(publish(&bus, &batch, &policy)).expect("fits");
        let failed: Vec<usize> = report.failed.iter().map(|(i, _)| *i).collect();
        prop_assert!(failed.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates: {:?}", failed);
        let position = |d: &String| batch.iter().position(|e| &e.detail == d).expect("sent entry");
        let mut published: Vec<usize> = bus.published().iter().map(position).collect();
        published.sort_unstable();
        prop_assert!(published.windows(2).all(|w| w[0] < w[1]), "published twice");
        let mut all: Vec<usize> = published.iter().chain(&failed).copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..batch.len()).collect::<Vec<_>>(), "each once, published or failed");
        for call in bus.calls() {
            let positions: Vec<_> = call.iter().map(position).collect();
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "order kept in a call");
        }
    }
}
