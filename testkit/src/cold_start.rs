//! Cold starts of a `bootstrap` measured the way Lambda sees them: spawn to
//! first poll ("ready"), the first invocation, and peak memory; and a
//! criterion group that samples them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::runtime_api::{Answer, FakeRuntimeApi};

/// What one cold start of a `bootstrap` cost.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// From spawning the process to its first poll for an invocation.
    pub ready: Duration,
    /// From that poll to the answer to the first invocation.
    pub first_invocation: Duration,
    /// Peak resident memory (`VmHWM`) after answering.
    pub peak_rss_kib: u64,
    /// The answer to the first invocation.
    pub answer: Option<Answer>,
}

/// Cold-starts a `bootstrap` the way Lambda does: spawns `command` (from
/// [`FakeRuntimeApi::command`] on `runtime`, which holds at least one
/// event), times it to ready and through the first invocation, reads its
/// peak RSS, and kills it.
pub fn cold_start(runtime: &FakeRuntimeApi, command: &mut Command) -> ColdStart {
    let spawned = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bootstrap");
    let ready = runtime
        .wait_first_poll(Duration::from_secs(10))
        .expect("bootstrap polled");
    let answer = runtime
        .wait_for_answers(1, Duration::from_secs(10))
        .into_iter()
        .next();
    let answered = Instant::now();
    let peak_rss_kib = peak_rss_kib(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    ColdStart {
        ready: ready - spawned,
        first_invocation: answered - ready,
        peak_rss_kib,
        answer,
    }
}

/// One line about many cold starts: count, median first invocation, RSS.
pub fn cold_start_summary(name: &str, samples: &mut [ColdStart]) -> String {
    samples.sort_by_key(|s| s.first_invocation);
    let median = samples
        .get(samples.len() / 2)
        .map_or(Duration::ZERO, |s| s.first_invocation);
    let rss = |f: fn(u64, u64) -> u64| {
        samples
            .iter()
            .map(|s| s.peak_rss_kib)
            .reduce(f)
            .unwrap_or(0)
    };
    format!(
        "{name}: {} samples; first invocation median {median:?}; peak RSS {:.1}..{:.1} MiB",
        samples.len(),
        rss(u64::min) as f64 / 1024.0,
        rss(u64::max) as f64 / 1024.0
    )
}

/// Benchmarks cold starts as criterion group `name` (`spawn_to_ready`:
/// process spawn to first poll), taking each sample from `one`, then prints
/// [`cold_start_summary`] of every sample.
pub fn bench_cold_starts(
    c: &mut criterion::Criterion,
    name: &str,
    mut one: impl FnMut() -> ColdStart,
) {
    let mut samples = Vec::new();
    let mut g = c.benchmark_group(name);
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.bench_function("spawn_to_ready", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let s = one();
                total += s.ready;
                samples.push(s);
            }
            total
        })
    });
    g.finish();
    println!("{}", cold_start_summary(name, &mut samples));
}

/// Peak resident memory of a running process, from `/proc/<pid>/status`.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
