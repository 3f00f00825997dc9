//! A tamper-evident, append-only audit log of significant RTI actions, and its verifier.
//!
//! The log is a text file with one JSON object per line. Each record carries a sequence number
//! (1, 2, 3, ... with no gaps), the wall-clock time, what happened ([`AuditEvent`]), the SHA-256
//! hash of the record before it (`previous`, 64 zeros for the first record) and its own hash:
//!
//! ```text
//! {"sequence":1,"time":1735689600000,"kind":"Join","identity":"plant-a","federation":"plant",
//!  "federate":"a","detail":"","previous":"0000…0000","hash":"5f1c…"}
//! ```
//!
//! (shown wrapped; in the file each record is on a single line.)
//!
//! `time` is Unix time in milliseconds. It is recorded, not checked: wall clocks step backwards.
//!
//! # Hashing
//!
//! `hash` is the lowercase hex SHA-256 of the serde_json serialization of the record *without*
//! its `hash` field, with the fields in the order shown above. That serialization is canonical
//! enough because the field order is fixed by a struct, serde_json writes no whitespace, and
//! strings are escaped the same way every time. The verifier also requires every line to be
//! byte-for-byte the canonical serialization of its record, so re-indenting a record, reordering
//! its keys or changing its escaping is reported too, although it changes no value.
//!
//! # What verification detects
//!
//! [`verify`] reports the first record where the chain is inconsistent:
//!
//! - an edited field: the record's hash no longer matches its contents;
//! - a removed record: the next record is out of sequence and does not follow its predecessor;
//! - an inserted record: it (or, when forged with a correct sequence, previous hash and hash,
//!   the record after it) is out of sequence;
//! - two records swapped: the first of them is out of sequence;
//! - an edited record whose hash was recomputed: the record after it no longer follows it.
//!
//! # What it cannot detect
//!
//! Truncating the tail (removing the last records), or rewriting the last record and its hash,
//! leaves a file that is consistent on its own: nothing after it refers to it. The file alone
//! cannot tell. Two things mitigate this: the daemon writes a [`AuditKind::DaemonStop`] record
//! on a clean shutdown, so a log that ends without one after a clean stop is suspect; and
//! [`Verified::last_hash`] can be anchored outside the file (printed, sent to another host or
//! signed), after which any change up to that record is detectable.
//!
//! # Writers
//!
//! [`AuditLog`] must be the only writer of its file: two logs appending to one file would break
//! the chain. It takes an exclusive advisory lock on the file when it opens it, so a second
//! daemon pointed at the same log is refused ([`AuditError::Locked`]) instead of interleaving.
//! [`AuditWriter`] runs a log on a thread of its own, so that syncing to the disk never holds up
//! the caller, and writes what queued up meanwhile with one sync.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

/// The `previous` hash of the first record: 64 zeros.
const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened: join, resign, loss, denial, sync point, destroy, daemon start/stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuditKind {
    /// The RTI daemon started.
    DaemonStart,
    /// The RTI daemon stopped cleanly.
    DaemonStop,
    /// A federation execution was created.
    FederationCreated,
    /// A federation execution was destroyed.
    FederationDestroyed,
    /// A federate joined a federation.
    Join,
    /// A federate resigned from a federation.
    Resign,
    /// A federate was lost (crash, omission or partition past its grace period).
    Lost,
    /// A call was refused by the policy.
    Denied,
    /// A synchronization point was registered.
    SyncPointRegistered,
    /// A federation reached a synchronization point.
    FederationSynchronized,
    /// A connection was refused before any protocol message (certificate or handshake).
    ConnectionRefused,
    /// A federate's connection was lost; its session is kept for the grace period.
    Suspended,
    /// A federate resumed its session on a new connection.
    Resumed,
    /// A federation's object model gained classes or members from a later creator.
    ModelExtended,
    /// The daemon loaded a changed certificate revocation list.
    RevocationsReloaded,
    /// An open connection was closed because its certificate was revoked meanwhile.
    CertificateRevoked,
    /// A federation's stability rule (safety factor, override) was changed.
    StabilityChanged,
}

/// One event to record (the writer adds the sequence number, time and hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// What happened.
    pub kind: AuditKind,
    /// Certificate identity of the actor, if any.
    pub identity: Option<String>,
    /// Federation concerned, if any.
    pub federation: Option<String>,
    /// Federate concerned, if any.
    pub federate: Option<String>,
    /// Free text, for example the denied permission.
    pub detail: String,
}

/// Outcome of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Number of records in the log.
    pub records: u64,
    /// Hash of the last record (64 zeros when the log is empty). Keep it outside the file to be
    /// able to detect a truncated tail later.
    pub last_hash: String,
}

/// Why an audit log could not be read, verified or appended to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The file could not be opened, read, written or synced.
    #[error("audit log {}: {source}", path.display())]
    Io {
        /// The audit log file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not a readable record (bad UTF-8, bad JSON, missing or unknown field, blank).
    #[error("audit log line {line} is malformed: {message}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A readable record does not fit the chain: the log was edited, or records were removed,
    /// inserted or reordered.
    #[error("audit log record at line {line} (sequence {sequence}) {reason}")]
    BrokenChain {
        /// 1-based line number.
        line: u64,
        /// The sequence number the record claims.
        sequence: u64,
        /// What is wrong, for example "was altered: its hash does not match its contents".
        reason: String,
    },
    /// A record could not be serialized.
    #[error("cannot encode audit record: {0}")]
    Encode(String),
    /// No record has the hash kept outside the log: it was rewritten or cut since.
    #[error(
        "no record of the audit log has the hash {anchor}: the log was rewritten, or cut before \
         that record, since the hash was taken"
    )]
    AnchorMissing {
        /// The hash looked for.
        anchor: String,
    },
    /// Another open log (another daemon, most likely) holds the file's lock.
    #[error(
        "audit log {} is in use by another process (another daemon?): each daemon needs a log \
         of its own, or the chain would break",
        path.display()
    )]
    Locked {
        /// The audit log file.
        path: PathBuf,
    },
    /// An earlier write failed and could not be rolled back, so the end of the file is unknown.
    #[error(
        "audit log {} is unusable after a failed write; reopen it to verify and continue",
        path.display()
    )]
    Unusable {
        /// The audit log file.
        path: PathBuf,
    },
}

/// A record as it is stored: the hashed part plus its hash. Field order is the file's key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    sequence: u64,
    time: u64,
    kind: AuditKind,
    identity: Option<String>,
    federation: Option<String>,
    federate: Option<String>,
    detail: String,
    previous: String,
    hash: String,
}

/// The part of a [`Record`] that its hash covers: every field but `hash`, in the same order.
#[derive(Serialize)]
struct HashedPart<'a> {
    sequence: u64,
    time: u64,
    kind: &'a AuditKind,
    identity: &'a Option<String>,
    federation: &'a Option<String>,
    federate: &'a Option<String>,
    detail: &'a str,
    previous: &'a str,
}

impl Record {
    /// A record for `event` with its hash computed.
    fn seal(
        sequence: u64,
        time: u64,
        event: AuditEvent,
        previous: String,
    ) -> Result<Self, AuditError> {
        let mut record = Self {
            sequence,
            time,
            kind: event.kind,
            identity: event.identity,
            federation: event.federation,
            federate: event.federate,
            detail: event.detail,
            previous,
            hash: String::new(),
        };
        record.hash = record.computed_hash()?;
        Ok(record)
    }

    /// Lowercase hex SHA-256 of the canonical serialization of every field but `hash`.
    fn computed_hash(&self) -> Result<String, AuditError> {
        let part = HashedPart {
            sequence: self.sequence,
            time: self.time,
            kind: &self.kind,
            identity: &self.identity,
            federation: &self.federation,
            federate: &self.federate,
            detail: &self.detail,
            previous: &self.previous,
        };
        let bytes = serde_json::to_vec(&part).map_err(|e| AuditError::Encode(e.to_string()))?;
        Ok(hex(digest(&SHA256, &bytes).as_ref()))
    }

    /// The record as one line of JSON, without the newline.
    fn to_line(&self) -> Result<String, AuditError> {
        serde_json::to_string(self).map_err(|e| AuditError::Encode(e.to_string()))
    }
}

/// Appends events to a file, one JSON object per line, each chained to the previous by SHA-256.
///
/// See the [module documentation](self) for the format and for what verification can and cannot
/// detect.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    /// Length of the file after the last complete record, to roll back a failed write.
    len: u64,
    last_sequence: u64,
    last_hash: String,
    /// The file's last record has no trailing newline yet.
    needs_newline: bool,
    /// A write failed and could not be rolled back.
    unusable: bool,
}

impl AuditLog {
    /// Opens (creating if needed) and continues an existing chain: reads the file, verifies it,
    /// and continues from its last record's sequence number and hash.
    ///
    /// # Errors
    ///
    /// [`AuditError::Io`] if the file cannot be opened or read; [`AuditError::Malformed`] or
    /// [`AuditError::BrokenChain`] if it fails verification, in which case nothing is written.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io_error = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error)?;
        // Advisory (flock on Unix): it keeps out other logs, not an editor.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io_error(source)),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;

        let (verified, _) = verify_bytes(&bytes, None).inspect_err(|e| {
            tracing::debug!(path = %path.display(), error = %e, "refusing to continue audit log");
        })?;
        tracing::debug!(
            path = %path.display(),
            records = verified.records,
            "continuing audit log"
        );
        Ok(Self {
            path: path.to_path_buf(),
            file,
            len: bytes.len() as u64,
            last_sequence: verified.records,
            last_hash: verified.last_hash,
            needs_newline: bytes.last().is_some_and(|&b| b != b'\n'),
            unusable: false,
        })
    }

    /// Appends one record and flushes it to the OS, then syncs it to the disk (`sync_data`).
    ///
    /// On failure the file is truncated back to its last complete record, so the log stays
    /// verifiable and a later append may succeed.
    ///
    /// # Errors
    ///
    /// [`AuditError::Io`] if writing or syncing fails, [`AuditError::Encode`] if the record
    /// cannot be serialized, [`AuditError::Unusable`] if an earlier failed write could not be
    /// rolled back.
    pub fn append(&mut self, event: AuditEvent) -> Result<(), AuditError> {
        self.append_all(std::iter::once(event))
    }

    /// Appends records in order with one write and one sync: all of them, or on failure none
    /// (the file is truncated back to its last complete record, as by [`append`](Self::append)).
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    pub fn append_all(
        &mut self,
        events: impl IntoIterator<Item = AuditEvent>,
    ) -> Result<(), AuditError> {
        if self.unusable {
            return Err(AuditError::Unusable {
                path: self.path.clone(),
            });
        }
        let mut lines = String::new();
        if self.needs_newline {
            lines.push('\n');
        }
        let (mut sequence, mut hash) = (self.last_sequence, self.last_hash.clone());
        for event in events {
            sequence = sequence
                .checked_add(1)
                .ok_or_else(|| AuditError::Encode("sequence numbers are exhausted".to_owned()))?;
            let record = Record::seal(sequence, unix_millis(), event, hash)?;
            lines.push_str(&record.to_line()?);
            lines.push('\n');
            hash = record.hash;
        }
        if sequence == self.last_sequence {
            return Ok(());
        }

        if let Err(source) = self.write_durably(lines.as_bytes()) {
            // Roll back a partial line so the file still ends with a complete record.
            if self.file.set_len(self.len).is_err() {
                self.unusable = true;
            }
            return Err(AuditError::Io {
                path: self.path.clone(),
                source,
            });
        }
        tracing::trace!(
            records = sequence - self.last_sequence,
            sequence,
            "audit records appended"
        );

        self.len += lines.len() as u64;
        self.last_sequence = sequence;
        self.last_hash = hash;
        self.needs_newline = false;
        Ok(())
    }

    /// Sequence number of the last record written (0 when empty).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    fn write_durably(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.flush()?;
        self.file.sync_data()
    }
}

/// The most records [`AuditWriter`] writes with one sync.
const MAX_BATCH: usize = 256;

/// An [`AuditLog`] on a thread of its own. [`record`](Self::record) only queues: a sync takes
/// milliseconds on a disk, which the daemon's event loop, serving every federate, cannot spend.
/// Records that queue while one batch is synced go to disk together, in order.
///
/// A record that cannot be written is logged (`warn`) and dropped, as by the log itself; the
/// log then goes on with the next ones. [`finish`](Self::finish), or dropping the writer,
/// writes what is queued and waits for it.
#[derive(Debug)]
pub struct AuditWriter {
    queue: Option<std::sync::mpsc::Sender<AuditEvent>>,
    /// Ends with the hash of the last record.
    thread: Option<std::thread::JoinHandle<String>>,
}

impl AuditWriter {
    /// Starts the thread that writes to `log`.
    ///
    /// # Errors
    ///
    /// [`AuditError::Io`] if the thread cannot be started.
    pub fn start(mut log: AuditLog) -> Result<Self, AuditError> {
        let (queue, queued) = std::sync::mpsc::channel::<AuditEvent>();
        let path = log.path.clone();
        let thread = std::thread::Builder::new()
            .name("fedtwin-audit".to_owned())
            .spawn(move || {
                while let Ok(first) = queued.recv() {
                    let batch: Vec<AuditEvent> = std::iter::once(first)
                        .chain(queued.try_iter().take(MAX_BATCH - 1))
                        .collect();
                    let count = batch.len();
                    if let Err(error) = log.append_all(batch) {
                        tracing::warn!(%error, records = count, "audit records not written");
                    }
                }
                log.last_hash
            })
            .map_err(|source| AuditError::Io { path, source })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `event`, to be written after those queued before it.
    pub fn record(&self, event: AuditEvent) {
        let sent = self.queue.as_ref().map(|queue| queue.send(event));
        if !matches!(sent, Some(Ok(()))) {
            tracing::warn!("audit record not written: the audit writer has stopped");
        }
    }

    /// Writes everything queued, stops the thread and returns the hash of the log's last record,
    /// to be kept outside the log ([`verify_anchored`]).
    pub fn finish(mut self) -> Option<String> {
        self.stop()
    }

    fn stop(&mut self) -> Option<String> {
        drop(self.queue.take());
        match self.thread.take()?.join() {
            Ok(last_hash) => Some(last_hash),
            Err(_) => {
                tracing::warn!("the audit writer panicked; records queued last may be missing");
                None
            }
        }
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Verifies a whole file.
///
/// Any edited, removed, inserted or reordered record makes it fail, and the error names the first
/// bad record. Removing the last records cannot be detected from the file alone: see the
/// [module documentation](self).
///
/// # Errors
///
/// [`AuditError::Io`] if the file cannot be read, otherwise as [`verify_text`].
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    let bytes = std::fs::read(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    verify_bytes(&bytes, None).map(|(verified, _)| verified)
}

/// Verifies the text of an audit log. An empty text is a valid log of 0 records; a final newline
/// is optional; a blank line anywhere else is malformed.
///
/// # Errors
///
/// [`AuditError::Malformed`] for the first line that is not a readable record,
/// [`AuditError::BrokenChain`] for the first record that does not fit the chain.
pub fn verify_text(text: &str) -> Result<Verified, AuditError> {
    verify_finding(text, None).map(|(verified, _)| verified)
}

/// [`verify_text`], also giving the sequence number of the record whose hash is `anchor`.
fn verify_finding(text: &str, anchor: Option<&str>) -> Result<(Verified, Option<u64>), AuditError> {
    let mut verified = Verified {
        records: 0,
        last_hash: GENESIS_HASH.to_owned(),
    };
    let mut found = None;
    if text.is_empty() {
        return Ok((verified, found));
    }
    let body = text.strip_suffix('\n').unwrap_or(text);

    for (line, line_text) in (1u64..).zip(body.split('\n')) {
        let record = parse_line(line, line_text)?;
        let broken = |reason: String| AuditError::BrokenChain {
            line,
            sequence: record.sequence,
            reason,
        };

        // The record's own integrity first: an edit is reported as such, not as a chain gap.
        if record.computed_hash()? != record.hash {
            return Err(broken(
                "was altered: its hash does not match its contents".to_owned(),
            ));
        }
        if record.to_line()? != line_text {
            return Err(broken(
                "was altered: its text is not the canonical serialization of its fields \
                 (whitespace, key order or escaping changed)"
                    .to_owned(),
            ));
        }

        // Then its place in the chain.
        if record.sequence.checked_sub(1) != Some(verified.records) {
            return Err(broken(format!(
                "is out of sequence: expected sequence {} (a record was removed, inserted or \
                 reordered)",
                verified.records.saturating_add(1)
            )));
        }
        if record.previous != verified.last_hash {
            let before = if line == 1 {
                "the start of the log".to_owned()
            } else {
                format!("the record at line {}", line - 1)
            };
            return Err(broken(format!(
                "does not follow {before}: its previous hash does not match (that record was \
                 altered, or records were removed, inserted or reordered)"
            )));
        }

        if anchor == Some(record.hash.as_str()) {
            found = Some(record.sequence);
        }
        verified.records = record.sequence;
        verified.last_hash = record.hash;
    }
    Ok((verified, found))
}

/// Verifies a whole file as [`verify`] does and finds the record whose hash is `anchor`, a
/// hash kept outside the file earlier (from [`Verified::last_hash`], `fedtwin audit verify` or
/// the daemon's log at its stop). A chain rewritten as a whole, or cut before that record, no
/// longer holds it, which the file alone cannot show.
///
/// # Errors
///
/// As [`verify`]; [`AuditError::AnchorMissing`] when no record has that hash.
pub fn verify_anchored(path: &Path, anchor: &str) -> Result<(Verified, u64), AuditError> {
    let bytes = std::fs::read(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let anchor = anchor.trim().to_ascii_lowercase();
    match verify_bytes(&bytes, Some(&anchor))? {
        (verified, Some(sequence)) => Ok((verified, sequence)),
        (_, None) => Err(AuditError::AnchorMissing { anchor }),
    }
}

/// Verifies raw file contents, reporting invalid UTF-8 with its line number.
fn verify_bytes(bytes: &[u8], anchor: Option<&str>) -> Result<(Verified, Option<u64>), AuditError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => verify_finding(text, anchor),
        Err(e) => Err(AuditError::Malformed {
            line: fedtwin_core::line_at(bytes, e.valid_up_to()) as u64,
            message: "not valid UTF-8".to_owned(),
        }),
    }
}

fn parse_line(line: u64, text: &str) -> Result<Record, AuditError> {
    if text.trim().is_empty() {
        return Err(AuditError::Malformed {
            line,
            message: "blank line".to_owned(),
        });
    }
    serde_json::from_str(text).map_err(|e| AuditError::Malformed {
        line,
        message: format!("not an audit record: {e}"),
    })
}

/// Current Unix time in milliseconds (0 if the clock is before 1970).
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A unique file under the temp directory, removed on drop.
    struct TempLog(PathBuf);

    impl TempLog {
        fn new() -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!(
                "fedtwin-audit-{}-{}-{n}.jsonl",
                std::process::id(),
                unix_millis()
            );
            let path = std::env::temp_dir().join(name);
            let _ = std::fs::remove_file(&path);
            Self(path)
        }

        fn text(&self) -> String {
            std::fs::read_to_string(&self.0).unwrap()
        }
    }

    impl Drop for TempLog {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn event(kind: AuditKind, detail: &str) -> AuditEvent {
        AuditEvent {
            kind,
            identity: Some("plant-a".to_owned()),
            federation: Some("plant".to_owned()),
            federate: Some("a".to_owned()),
            detail: detail.to_owned(),
        }
    }

    /// A log of `n` records written through [`AuditLog`], and its text.
    fn written_log(n: u64) -> (TempLog, String) {
        let temp = TempLog::new();
        let mut log = AuditLog::open(&temp.0).unwrap();
        log.append(event(AuditKind::DaemonStart, "")).unwrap();
        for i in 2..=n {
            log.append(event(AuditKind::Denied, &format!("publish Pump.flow #{i}")))
                .unwrap();
        }
        let text = temp.text();
        (temp, text)
    }

    fn split_lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    fn join(lines: &[String]) -> String {
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    fn record(line: &str) -> Record {
        serde_json::from_str(line).unwrap()
    }

    /// Asserts `result` is a broken chain at `line`, for a record claiming `sequence`, with a
    /// reason containing `because`.
    fn assert_broken(
        result: Result<Verified, AuditError>,
        line: u64,
        sequence: u64,
        because: &str,
    ) {
        match result {
            Err(AuditError::BrokenChain {
                line: l,
                sequence: s,
                reason,
            }) => {
                assert_eq!((l, s), (line, sequence), "reason: {reason}");
                assert!(
                    reason.contains(because),
                    "reason {reason:?} lacks {because:?}"
                );
            }
            other => panic!("expected a broken chain at line {line}, got {other:?}"),
        }
    }

    /// Asserts `result` is a malformed line `line`, with a message containing `because`.
    fn assert_malformed(result: Result<Verified, AuditError>, line: u64, because: &str) {
        match result {
            Err(AuditError::Malformed { line: l, message }) => {
                assert_eq!(l, line, "message: {message}");
                assert!(
                    message.contains(because),
                    "message {message:?} lacks {because:?}"
                );
            }
            other => panic!("expected malformed line {line}, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_verifies_and_chains() {
        let (temp, text) = written_log(4);
        let verified = verify(&temp.0).unwrap();
        assert_eq!(verified.records, 4);

        let records: Vec<Record> = text.lines().map(record).collect();
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].previous, GENESIS_HASH);
        assert_eq!(records[0].kind, AuditKind::DaemonStart);
        assert_eq!(records[3].detail, "publish Pump.flow #4");
        assert_eq!(records[3].identity.as_deref(), Some("plant-a"));
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.sequence, i as u64 + 1);
            assert_eq!(r.hash.len(), 64);
            if i > 0 {
                assert_eq!(r.previous, records[i - 1].hash);
            }
        }
        assert_eq!(verified.last_hash, records[3].hash);
    }

    #[test]
    fn record_format_has_fixed_key_order() {
        let (_temp, text) = written_log(1);
        let line = text.lines().next().unwrap();
        let keys = [
            "sequence",
            "time",
            "kind",
            "identity",
            "federation",
            "federate",
            "detail",
            "previous",
            "hash",
        ];
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
        assert!(line.starts_with("{\"sequence\":1,\"time\":"), "{line}");
        assert!(line.contains("\"kind\":\"DaemonStart\""), "{line}");
    }

    #[test]
    fn hash_covers_every_field_but_hash() {
        let (_temp, text) = written_log(1);
        let r = record(text.lines().next().unwrap());
        // The hashed text, written out in the documented order, without `hash`.
        let hashed = format!(
            "{{\"sequence\":{},\"time\":{},\"kind\":\"DaemonStart\",\"identity\":\"plant-a\",\
             \"federation\":\"plant\",\"federate\":\"a\",\"detail\":\"\",\"previous\":\"{}\"}}",
            r.sequence, r.time, GENESIS_HASH
        );
        assert_eq!(r.hash, hex(digest(&SHA256, hashed.as_bytes()).as_ref()));
    }

    #[test]
    fn empty_log_verifies_as_zero_records() {
        let verified = verify_text("").unwrap();
        assert_eq!(verified.records, 0);
        assert_eq!(verified.last_hash, GENESIS_HASH);

        let temp = TempLog::new();
        let log = AuditLog::open(&temp.0).unwrap();
        assert_eq!(log.last_sequence(), 0);
        assert!(temp.0.exists());
        assert_eq!(verify(&temp.0).unwrap().records, 0);
    }

    #[test]
    fn a_second_log_on_the_same_file_is_refused_while_the_first_is_open() {
        let (temp, _) = written_log(1);
        let first = AuditLog::open(&temp.0).unwrap();
        let second = AuditLog::open(&temp.0).unwrap_err();
        assert!(matches!(second, AuditError::Locked { .. }), "{second}");
        assert!(second.to_string().contains("another daemon"), "{second}");
        drop(first);
        AuditLog::open(&temp.0).unwrap();
    }

    #[test]
    fn the_writer_thread_writes_every_record_in_order_and_chained() {
        let temp = TempLog::new();
        let writer = AuditWriter::start(AuditLog::open(&temp.0).unwrap()).unwrap();
        for i in 0..1000 {
            writer.record(event(AuditKind::Denied, &format!("call {i}")));
        }
        let last_hash = writer.finish();
        let verified = verify(&temp.0).unwrap();
        assert_eq!(verified.records, 1000);
        assert_eq!(last_hash.as_deref(), Some(verified.last_hash.as_str()));
        let details: Vec<String> = temp.text().lines().map(|l| record(l).detail).collect();
        let expected: Vec<String> = (0..1000).map(|i| format!("call {i}")).collect();
        assert_eq!(details, expected);

        // Appending a batch is one chain step per record; an empty batch writes nothing.
        let mut log = AuditLog::open(&temp.0).unwrap();
        log.append_all(Vec::new()).unwrap();
        log.append_all((0..3).map(|i| event(AuditKind::Join, &i.to_string())))
            .unwrap();
        drop(log);
        assert_eq!(verify(&temp.0).unwrap().records, 1003);
    }

    #[test]
    fn an_anchor_kept_outside_finds_its_record_until_the_chain_is_rewritten() {
        let (temp, text) = written_log(3);
        let second = record(text.lines().nth(1).unwrap());
        let (verified, sequence) = verify_anchored(&temp.0, &second.hash).unwrap();
        assert_eq!((verified.records, sequence), (3, 2));
        // Rewritten as a whole (a record changed, every hash after it recomputed): it verifies
        // on its own, but the anchor is gone.
        let mut records: Vec<Record> = text.lines().map(record).collect();
        records[0].detail = "forged".to_owned();
        let mut previous = GENESIS_HASH.to_owned();
        let mut forged = String::new();
        for mut r in records {
            r.previous = previous;
            r.hash = r.computed_hash().unwrap();
            previous = r.hash.clone();
            forged.push_str(&r.to_line().unwrap());
            forged.push('\n');
        }
        std::fs::write(&temp.0, forged).unwrap();
        assert_eq!(verify(&temp.0).unwrap().records, 3);
        let error = verify_anchored(&temp.0, &second.hash).unwrap_err();
        assert!(matches!(error, AuditError::AnchorMissing { .. }), "{error}");
    }

    #[test]
    fn reopening_continues_the_chain() {
        let (temp, _) = written_log(2);
        let mut log = AuditLog::open(&temp.0).unwrap();
        assert_eq!(log.last_sequence(), 2);
        log.append(event(AuditKind::Resign, "")).unwrap();
        assert_eq!(log.last_sequence(), 3);
        drop(log);

        let verified = verify(&temp.0).unwrap();
        assert_eq!(verified.records, 3);
        let records: Vec<Record> = temp.text().lines().map(record).collect();
        assert_eq!(records[2].sequence, 3);
        assert_eq!(records[2].kind, AuditKind::Resign);
        assert_eq!(records[2].previous, records[1].hash);
    }

    #[test]
    fn reopening_a_log_without_final_newline_keeps_lines_apart() {
        let (temp, text) = written_log(2);
        std::fs::write(&temp.0, text.trim_end_matches('\n')).unwrap();
        let mut log = AuditLog::open(&temp.0).unwrap();
        log.append(event(AuditKind::DaemonStop, "")).unwrap();
        assert_eq!(verify(&temp.0).unwrap().records, 3);
        assert_eq!(temp.text().lines().count(), 3);
    }

    #[test]
    fn edited_field_is_detected() {
        let (_temp, text) = written_log(5);
        let edited = text.replace("publish Pump.flow #3", "publish Pump.flow #9");
        assert_ne!(edited, text);
        assert_broken(
            verify_text(&edited),
            3,
            3,
            "hash does not match its contents",
        );
    }

    #[test]
    fn edited_sequence_is_detected_as_alteration() {
        let (_temp, text) = written_log(3);
        let mut lines = split_lines(&text);
        lines[1] = lines[1].replacen("\"sequence\":2", "\"sequence\":7", 1);
        assert_broken(verify_text(&join(&lines)), 2, 7, "was altered");
    }

    #[test]
    fn removed_record_is_detected() {
        let (_temp, text) = written_log(5);
        let mut lines = split_lines(&text);
        lines.remove(1);
        assert_broken(
            verify_text(&join(&lines)),
            2,
            3,
            "out of sequence: expected sequence 2",
        );
    }

    #[test]
    fn removed_first_record_is_detected() {
        let (_temp, text) = written_log(3);
        let mut lines = split_lines(&text);
        lines.remove(0);
        assert_broken(verify_text(&join(&lines)), 1, 2, "expected sequence 1");
    }

    #[test]
    fn inserted_copy_is_detected() {
        let (_temp, text) = written_log(5);
        let mut lines = split_lines(&text);
        let copy = lines[1].clone();
        lines.insert(3, copy);
        assert_broken(
            verify_text(&join(&lines)),
            4,
            2,
            "out of sequence: expected sequence 4",
        );
    }

    #[test]
    fn forged_insertion_is_detected_at_the_next_record() {
        let (_temp, text) = written_log(4);
        let mut lines = split_lines(&text);
        let before = record(&lines[1]);
        let forged = Record::seal(
            3,
            before.time,
            event(AuditKind::Join, "forged"),
            before.hash,
        )
        .unwrap()
        .to_line()
        .unwrap();
        lines.insert(2, forged);
        // The forged record itself fits; the genuine record 3 after it does not.
        assert_broken(verify_text(&join(&lines)), 4, 3, "expected sequence 4");
    }

    #[test]
    fn swapped_records_are_detected() {
        let (_temp, text) = written_log(5);
        let mut lines = split_lines(&text);
        lines.swap(2, 3);
        assert_broken(
            verify_text(&join(&lines)),
            3,
            4,
            "out of sequence: expected sequence 3",
        );
    }

    #[test]
    fn edit_with_recomputed_hash_is_detected_by_the_next_record() {
        let (_temp, text) = written_log(5);
        let mut lines = split_lines(&text);
        let mut edited = record(&lines[1]);
        edited.detail = "nothing to see".to_owned();
        edited.hash = edited.computed_hash().unwrap();
        lines[1] = edited.to_line().unwrap();
        assert_broken(
            verify_text(&join(&lines)),
            3,
            3,
            "does not follow the record at line 2",
        );
    }

    #[test]
    fn reformatted_record_is_detected() {
        let (_temp, text) = written_log(3);
        let mut lines = split_lines(&text);
        lines[1] = lines[1].replacen(",\"time\"", ", \"time\"", 1);
        assert_broken(
            verify_text(&join(&lines)),
            2,
            2,
            "not the canonical serialization",
        );
    }

    #[test]
    fn malformed_json_names_its_line() {
        let (_temp, text) = written_log(4);
        let mut lines = split_lines(&text);
        let half = lines[2].len() / 2;
        lines[2].truncate(half);
        assert_malformed(verify_text(&join(&lines)), 3, "not an audit record");

        let mut lines = split_lines(&text);
        lines[1] = lines[1].replacen("{", "{\"extra\":1,", 1);
        assert_malformed(verify_text(&join(&lines)), 2, "unknown field");
    }

    #[test]
    fn blank_lines_are_malformed_except_a_final_newline() {
        let (_temp, text) = written_log(3);
        assert_eq!(verify_text(text.trim_end_matches('\n')).unwrap().records, 3);

        let mut lines = split_lines(&text);
        lines.insert(1, String::new());
        assert_malformed(verify_text(&join(&lines)), 2, "blank line");

        assert_malformed(verify_text(&format!("{text}\n")), 4, "blank line");
        assert_malformed(verify_text("\n"), 1, "blank line");
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let (temp, text) = written_log(3);
        let mut bytes = text.into_bytes();
        let second_line = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        bytes[second_line + 20] = 0xff;
        std::fs::write(&temp.0, bytes).unwrap();
        assert_malformed(verify(&temp.0), 2, "UTF-8");
    }

    #[test]
    fn appending_to_a_tampered_log_is_refused() {
        let (temp, text) = written_log(3);
        let tampered = text.replace("publish Pump.flow #2", "publish Pump.flow #0");
        std::fs::write(&temp.0, &tampered).unwrap();

        let result = AuditLog::open(&temp.0).map(|_| ());
        match result {
            Err(AuditError::BrokenChain {
                line: 2,
                sequence: 2,
                ..
            }) => {}
            other => panic!("expected a refusal naming line 2, got {other:?}"),
        }
        assert_eq!(
            temp.text(),
            tampered,
            "a refused log must not be written to"
        );
    }

    #[test]
    fn appending_to_a_malformed_log_is_refused() {
        let (temp, text) = written_log(2);
        std::fs::write(&temp.0, format!("{text}{{\"sequence\":3,")).unwrap();
        match AuditLog::open(&temp.0) {
            Err(AuditError::Malformed { line: 3, .. }) => {}
            other => panic!("expected a refusal naming line 3, got {other:?}"),
        }
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let temp = TempLog::new();
        let err = verify(&temp.0).unwrap_err();
        assert!(
            matches!(&err, AuditError::Io { path, .. } if *path == temp.0),
            "{err:?}"
        );
        assert!(err.to_string().contains(&temp.0.display().to_string()));
    }

    #[test]
    fn messages_say_what_and_where() {
        let err = AuditError::BrokenChain {
            line: 7,
            sequence: 7,
            reason: "was altered: its hash does not match its contents".to_owned(),
        };
        assert_eq!(
            err.to_string(),
            "audit log record at line 7 (sequence 7) was altered: its hash does not match its \
             contents"
        );
        let err = AuditError::Malformed {
            line: 3,
            message: "blank line".to_owned(),
        };
        assert_eq!(err.to_string(), "audit log line 3 is malformed: blank line");
    }
}
