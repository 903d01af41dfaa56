//! The dead letters as an operator reads them: a paged list of summaries,
//! and one dead letter whole when asked for by its submission ID.
//!
//! The bus appends each dead letter to a file as one JSON line (the
//! operator's `--dead-letters FILE`, else an unnamed temporary file that
//! only this process can reach). [`DeadLetters`] indexes that file as it
//! grows: it keeps each line's summary (IDs, reason, time, size) and where
//! the line is, never a payload, and reads a payload back from the file
//! only for `GET /v1/dead-letters/{submission_id}`. So memory stays the
//! same whatever the dead letters' sizes, and a listing costs a page of
//! summaries however many large dead letters there are.
//!
//! Files holding payloads are created readable by their owner only (0600).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::warn;

/// Summaries kept for listing and lookup, the newest; older dead letters
/// stay in the file. About 250 bytes each: 12 MB at most.
pub const INDEXED: usize = 50_000;
/// The largest page of a listing.
pub const MAX_PAGE: usize = 1_000;
/// A listing's page when the request names none.
pub const DEFAULT_PAGE: usize = 100;
/// Longer strings in a summary are cut (every field the bus writes is
/// shorter): a summary's size is bounded whatever the file holds.
const MAX_FIELD_CHARS: usize = 128;
/// A line longer than this is not a dead letter the bus wrote (an event is
/// at most 1 MiB): it is skipped rather than held in memory.
const MAX_LINE_BYTES: usize = 8 << 20;
/// Bytes read from the file at a time while indexing.
const CHUNK_BYTES: usize = 64 << 10;

/// The dead-letter file and its index.
pub struct DeadLetters {
    /// The operator's file; `None` for the unnamed temporary file.
    named: Option<PathBuf>,
    /// The temporary file's path until [`DeadLetters::unlink_temporary`]
    /// removes it (the bus and the index keep it open).
    temporary: Mutex<Option<PathBuf>>,
    /// The path the bus appends to.
    path: PathBuf,
    /// A read-only handle for payloads, read by offset.
    payloads: File,
    index: Mutex<Index>,
}

/// What a listing shows of one dead letter: never its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Its position among this run's dead letters, from 1: the cursor of
    /// the next page (`?after=`).
    pub seq: u64,
    /// The submission's ID, by which its payload is fetched.
    pub submission_id: Option<Box<str>>,
    /// Its tenant.
    pub tenant_id: Option<Box<str>>,
    /// The last failure's reason code, or `shutdown_timeout`.
    pub reason: Box<str>,
    /// `permanent`, `retryable` or `shutdown`.
    pub class: Box<str>,
    /// Times delivery was attempted.
    pub receives: u32,
    /// When it was dead-lettered (RFC 3339, UTC).
    pub dead_lettered_at: Box<str>,
    /// The size of its event (the EventBridge event, payload included), in
    /// bytes.
    pub size: u64,
}

/// One page of the listing.
#[derive(Debug, Serialize)]
pub struct Page<'a> {
    /// Dead letters this run (listed or not).
    pub total: u64,
    /// The operator's dead-letter file, if any.
    pub file: Option<Cow<'a, str>>,
    /// At most the page's size, oldest first, after the cursor.
    pub dead_letters: Vec<Summary>,
    /// The cursor of the next page (`?after=`), when there is more.
    pub next: Option<u64>,
}

/// Where a dead letter's line is in the file.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    len: usize,
}

/// The summaries of the lines read so far, and where reading stopped.
struct Index {
    reader: File,
    /// The newest [`INDEXED`] dead letters.
    entries: VecDeque<(Summary, Span)>,
    /// Dead letters seen this run.
    total: u64,
    /// The file offset where `line` starts.
    line_start: u64,
    /// The start of a line whose end has not been written yet.
    line: Vec<u8>,
    /// The line being read is over [`MAX_LINE_BYTES`]: skip to its end.
    skipping: bool,
    chunk: Vec<u8>,
}

/// A dead-letter line as the bus writes it; the event is only measured.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    submission_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reason: Cow<'a, str>,
    #[serde(borrow)]
    class: Cow<'a, str>,
    receives: u32,
    #[serde(borrow)]
    dead_lettered_at: Cow<'a, str>,
    #[serde(borrow)]
    event: &'a RawValue,
}

/// Why a listing's query was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// `limit` is not a whole number from 1 to [`MAX_PAGE`].
    #[error("limit must be a whole number from 1 to {MAX_PAGE}")]
    Limit,
    /// `after` is not a whole number.
    #[error("after must be a whole number: the seq of the last dead letter seen")]
    After,
    /// A parameter the listing does not take.
    #[error("unknown query parameter {0:?}: the listing takes limit and after")]
    Unknown(String),
}

/// A listing's query: `?after=SEQ&limit=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// Dead letters after this seq (0: from the oldest kept).
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

impl Query {
    /// Parses a query string (without the `?`).
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut parsed = Self {
            after: 0,
            limit: DEFAULT_PAGE,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "limit" => {
                    parsed.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or(QueryError::Limit)?;
                }
                "after" => parsed.after = value.parse().map_err(|_| QueryError::After)?,
                other => {
                    let shown: String = other.chars().take(40).collect();
                    return Err(QueryError::Unknown(shown));
                }
            }
        }
        Ok(parsed)
    }
}

impl DeadLetters {
    /// Opens the operator's file (created 0600 if missing; appended to,
    /// this run's dead letters listed), or creates an unnamed temporary
    /// one, 0600, when `named` is `None`. Returns it and, when the
    /// operator's file is readable by others, a warning to print.
    pub fn open(named: Option<&Path>) -> anyhow::Result<(Self, Option<String>)> {
        let (path, temporary) = match named {
            Some(path) => (path.to_owned(), None),
            None => {
                let path = std::env::temp_dir().join(format!(
                    "formbridge-dead-letters-{}-{}.jsonl",
                    std::process::id(),
                    uuid::Uuid::new_v4().simple()
                ));
                (path.clone(), Some(path))
            }
        };
        let mut options = File::options();
        options.append(true);
        if temporary.is_some() {
            options.create_new(true);
        } else {
            options.create(true);
        }
        private(&mut options);
        let appended = options
            .open(&path)
            .with_context(|| format!("cannot open the dead-letter file {}", path.display()))?;
        let warning = named.and_then(|path| shared_with_others(&appended, path));
        drop(appended);
        let mut reader = File::open(&path)
            .with_context(|| format!("cannot read the dead-letter file {}", path.display()))?;
        let payloads = reader
            .try_clone()
            .with_context(|| format!("cannot read the dead-letter file {}", path.display()))?;
        // What earlier runs left is in the file, not in this run's list.
        let end = reader
            .seek(SeekFrom::End(0))
            .with_context(|| format!("cannot read the dead-letter file {}", path.display()))?;
        let letters = Self {
            named: named.map(Path::to_owned),
            temporary: Mutex::new(temporary),
            path,
            payloads,
            index: Mutex::new(Index {
                reader,
                entries: VecDeque::new(),
                total: 0,
                line_start: end,
                line: Vec::new(),
                skipping: false,
                chunk: vec![0; CHUNK_BYTES],
            }),
        };
        Ok((letters, warning))
    }

    /// The path the bus appends to (the temporary file's until it is
    /// unlinked).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operator's dead-letter file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.named.as_deref()
    }

    /// Removes the temporary file's name once the bus has opened it: the
    /// open handles keep it, and nothing else can reach it, even after a
    /// crash.
    pub fn unlink_temporary(&self) {
        if let Some(path) = lock(&self.temporary).take()
            && let Err(e) = std::fs::remove_file(&path)
        {
            warn!(file = %path.display(), error = %e, "cannot remove the temporary dead-letter file");
        }
    }

    /// A page of summaries, oldest first, after `query.after`.
    pub fn page(&self, query: Query) -> Page<'_> {
        let mut index = lock(&self.index);
        index.refresh();
        // Entries are in seq order, one apart: find the first after the
        // cursor without a scan.
        let first = index.entries.front().map_or(0, |(s, _)| s.seq);
        let skip = query.after.saturating_add(1).saturating_sub(first);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let dead_letters: Vec<Summary> = index
            .entries
            .iter()
            .skip(skip)
            .take(query.limit)
            .map(|(summary, _)| summary.clone())
            .collect();
        let next = dead_letters
            .last()
            .map(|s| s.seq)
            .filter(|last| *last < index.total);
        Page {
            total: index.total,
            file: self.file().map(Path::to_string_lossy),
            dead_letters,
            next,
        }
    }

    /// The dead letter of `submission_id` as the file holds it (one JSON
    /// object, its event included), the newest if there are several.
    pub fn letter(&self, submission_id: &str) -> io::Result<Option<Vec<u8>>> {
        let span = {
            let mut index = lock(&self.index);
            index.refresh();
            index
                .entries
                .iter()
                .rev()
                .find(|(s, _)| s.submission_id.as_deref() == Some(submission_id))
                .map(|(_, span)| *span)
        };
        let Some(span) = span else {
            return Ok(None);
        };
        let mut line = vec![0; span.len];
        read_exact_at(&self.payloads, &mut line, span.offset)?;
        Ok(Some(line))
    }
}

impl Drop for DeadLetters {
    fn drop(&mut self) {
        self.unlink_temporary();
    }
}

impl Index {
    /// Reads what the bus appended since the last call. A read error
    /// leaves the index as it was (logged); the next call tries again.
    fn refresh(&mut self) {
        loop {
            let n = match self.reader.read(&mut self.chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!(error = %e, "cannot read the dead-letter file");
                    break;
                }
            };
            let mut rest = 0;
            while let Some(end) = self.chunk[rest..n].iter().position(|b| *b == b'\n') {
                let piece = rest..rest + end;
                if !self.skipping {
                    self.line.extend_from_slice(&self.chunk[piece]);
                }
                self.end_line(end);
                rest += end + 1;
            }
            let tail = n - rest;
            if !self.skipping && self.line.len() + tail > MAX_LINE_BYTES {
                warn!("skipped a dead-letter line over {MAX_LINE_BYTES} bytes");
                self.skipping = true;
                self.line_start += self.line.len() as u64;
                self.line.clear();
            }
            if self.skipping {
                self.line_start += tail as u64;
            } else {
                self.line.extend_from_slice(&self.chunk[rest..n]);
            }
        }
        // A large line's buffer is not kept for the next one.
        self.line.shrink_to(CHUNK_BYTES);
    }

    /// A line ended (`end`: the bytes of it in the last chunk, for a
    /// skipped line): indexes it and moves past it and its newline.
    fn end_line(&mut self, end: usize) {
        if self.skipping {
            self.skipping = false;
            self.line_start += end as u64 + 1;
            return;
        }
        let span = Span {
            offset: self.line_start,
            len: self.line.len(),
        };
        self.line_start += self.line.len() as u64 + 1;
        let line = std::mem::take(&mut self.line);
        match serde_json::from_slice::<Line<'_>>(&line) {
            Ok(parsed) => {
                self.total += 1;
                let summary = summary(parsed, self.total);
                if self.entries.len() == INDEXED {
                    self.entries.pop_front();
                }
                self.entries.push_back((summary, span));
            }
            Err(e) => warn!(error = %e, "skipped a dead-letter line that is not one"),
        }
        self.line = line;
        self.line.clear();
    }
}

fn summary(line: Line<'_>, seq: u64) -> Summary {
    Summary {
        seq,
        submission_id: line.submission_id.map(|s| cut(&s)),
        tenant_id: line.tenant_id.map(|s| cut(&s)),
        reason: cut(&line.reason),
        class: cut(&line.class),
        receives: line.receives,
        dead_lettered_at: cut(&line.dead_lettered_at),
        size: line.event.get().len() as u64,
    }
}

fn cut(text: &str) -> Box<str> {
    match text.char_indices().nth(MAX_FIELD_CHARS) {
        Some((end, _)) => text[..end].into(),
        None => text.into(),
    }
}

/// Files this module creates are readable by their owner only.
#[cfg(unix)]
fn private(options: &mut std::fs::OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt as _;
    options.mode(0o600);
}

#[cfg(not(unix))]
fn private(_: &mut std::fs::OpenOptions) {}

/// A warning when an existing file can be read by other users: it was
/// there before (its mode is the operator's), and holds payloads.
#[cfg(unix)]
fn shared_with_others(file: &File, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = file.metadata().ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "the dead-letter file {} can be read by other users (mode {mode:o}) and holds submissions' payloads; chmod 600 it",
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn shared_with_others(_: &File, _: &Path) -> Option<String> {
    None
}

/// Reads `buf.len()` bytes at `offset` without moving any cursor, so that
/// payload reads need no lock.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// A lock whose holder may have panicked: the index stays consistent
/// between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn line(id: &str, payload: &str) -> String {
        format!(
            r#"{{"submission_id":"{id}","tenant_id":"acme","reason":"no_destination","class":"permanent","receives":1,"dead_lettered_at":"2026-01-01T00:00:00.000Z","event":{{"detail":{{"payload":"{payload}"}}}}}}"#
        )
    }

    fn append(path: &Path, text: &str) {
        let mut file = File::options().append(true).open(path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn pages_hold_summaries_and_a_letter_is_read_back_by_its_id() {
        let dir = std::env::temp_dir().join(format!("fb-dl-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dead.jsonl");
        // An earlier run's letter: in the file, not in this run's list.
        std::fs::write(&path, format!("{}\n", line("old", "x"))).unwrap();
        let (letters, _) = DeadLetters::open(Some(&path)).unwrap();
        assert_eq!(letters.page(Query::parse("").unwrap()).total, 0);
        for i in 0..5 {
            append(
                &path,
                &format!("{}\n", line(&format!("s{i}"), &"p".repeat(1000))),
            );
        }
        // Half a line: the bus is writing it.
        let sixth = line("s5", "last");
        append(&path, &sixth[..20]);
        let page = letters.page(Query::parse("limit=2").unwrap());
        assert_eq!(page.total, 5);
        let ids: Vec<_> = page
            .dead_letters
            .iter()
            .map(|s| s.submission_id.as_deref().unwrap())
            .collect();
        assert_eq!(ids, ["s0", "s1"]);
        assert_eq!(page.next, Some(2));
        assert!(page.dead_letters[0].size > 1000);
        let json = serde_json::to_string(&page).unwrap();
        assert!(!json.contains("ppp"), "no payload in a page: {json}");
        let last = letters.page(Query::parse("after=4&limit=10").unwrap());
        assert_eq!(last.dead_letters.len(), 1);
        assert_eq!(last.next, None);
        append(&path, &format!("{}\n", &sixth[20..]));
        let page = letters.page(Query::parse("after=5").unwrap());
        assert_eq!(page.dead_letters[0].submission_id.as_deref(), Some("s5"));
        let letter = letters.letter("s3").unwrap().unwrap();
        let letter: serde_json::Value = serde_json::from_slice(&letter).unwrap();
        assert_eq!(letter["submission_id"], "s3");
        assert_eq!(letter["event"]["detail"]["payload"], "p".repeat(1000));
        assert!(letters.letter("old").unwrap().is_none());
        assert!(letters.letter("nope").unwrap().is_none());
    }

    #[test]
    fn lines_that_are_not_dead_letters_are_skipped_and_counted_out() {
        let (letters, warning) = DeadLetters::open(None).unwrap();
        assert!(warning.is_none());
        let path = letters.path().to_owned();
        append(&path, "not json\n");
        append(&path, &"y".repeat(MAX_LINE_BYTES + 10));
        append(&path, "\n");
        append(&path, &format!("{}\n", line("ok", "z")));
        let page = letters.page(Query::parse("").unwrap());
        assert_eq!(page.total, 1);
        assert_eq!(page.file, None);
        assert!(letters.letter("ok").unwrap().is_some());
        letters.unlink_temporary();
        assert!(!path.exists());
        // Still readable through the open handles.
        assert!(letters.letter("ok").unwrap().is_some());
    }

    #[cfg(unix)]
    #[test]
    fn files_are_created_for_their_owner_only_and_shared_ones_are_warned_about() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("fb-dl-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("new.jsonl");
        let (letters, warning) = DeadLetters::open(Some(&path)).unwrap();
        assert!(warning.is_none());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(letters);
        assert!(path.exists(), "the operator's file is kept");
        let (temporary, _) = DeadLetters::open(None).unwrap();
        let mode = std::fs::metadata(temporary.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let shared = dir.join("shared.jsonl");
        std::fs::write(&shared, "").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warning) = DeadLetters::open(Some(&shared)).unwrap();
        assert!(warning.unwrap().contains("chmod 600"));
    }

    #[test]
    fn queries_are_bounded_and_unknown_parameters_refused() {
        assert_eq!(
            Query::parse("after=7&limit=1000"),
            Ok(Query {
                after: 7,
                limit: 1000
            })
        );
        assert_eq!(Query::parse("limit=1001"), Err(QueryError::Limit));
        assert_eq!(Query::parse("limit=0"), Err(QueryError::Limit));
        assert_eq!(Query::parse("limit="), Err(QueryError::Limit));
        assert_eq!(Query::parse("after=-1"), Err(QueryError::After));
        assert!(matches!(
            Query::parse("offset=3"),
            Err(QueryError::Unknown(_))
        ));
    }
}
