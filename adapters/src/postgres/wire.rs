//! What the connection's socket carries, watched without a round trip.
//!
//! `tokio_postgres::Client` does not say whether its session is inside a transaction or
//! whether a request is still on its way. The pool must know both when a guard comes back
//! (synchronously, in `Poolable::reset`), so the connection's stream is wrapped in a
//! [`Tap`] that reads the protocol's framing as the bytes pass:
//!
//! - every frontend `Query` ('Q') or `Sync` ('S') written opens one request cycle, and every
//!   backend `ReadyForQuery` ('Z') closes one and carries the transaction status
//!   (`I` idle, `T` in a transaction block, `E` in a failed one);
//! - backend `ErrorResponse`s ('E') are counted, so a pipelined clean-up can be checked;
//! - a `CopyInResponse` ('G') to an extended-protocol request means the server ignores the
//!   `Sync` already written behind it (the protocol says so), so that cycle is closed there.
//!
//! The driver task polls the `Connection` through a waker that records wake-ups, so a
//! request the client queued but the driver has not written yet is seen as "not settled".
//! Parsing starts once start-up is over ([`Wire::activate`]), at a message boundary; with
//! TLS the tap above the TLS stream parses and the one on the raw socket passes through.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Transaction status byte of `ReadyForQuery`: idle.
pub(crate) const IDLE: u8 = b'I';

/// Shared between a connection's stream (written by the driver task) and its `PgConn`.
#[derive(Debug)]
pub(crate) struct Wire {
    /// Which tap parses: 0 none yet, 1 the raw socket, 2 the TLS stream.
    layer: AtomicU8,
    /// Set by the TLS connector once a TLS session is up.
    tls: AtomicBool,
    /// Request cycles written (each `Query` or `Sync`).
    sent: AtomicU64,
    /// Request cycles closed (each `ReadyForQuery`, or a `Sync` the server ignores).
    ready: AtomicU64,
    /// Cycles in flight that are not light (see `Cycle::light`).
    heavy: AtomicU64,
    /// Status byte of the last `ReadyForQuery`.
    status: AtomicU8,
    /// `ErrorResponse`s read.
    errors: AtomicU64,
    /// Cycles in flight that failed (an `ErrorResponse` read, their `ReadyForQuery` not
    /// yet).
    failing: AtomicU64,
    /// A write or flush is waiting on the socket (bytes may sit in the client's buffer).
    write_blocked: AtomicBool,
    /// The stream carries something the parser cannot follow (replication copy, a frame it
    /// did not expect): the session's state is unknown from here on.
    lost: AtomicBool,
    /// Times every prepared statement was dropped: a query written holding `DEALLOCATE`
    /// or `DISCARD ALL`, or the server reporting a statement gone (SQLSTATE 26000).
    deallocations: AtomicU64,
    /// Errors with SQLSTATE 0A000 (feature not supported) seen: among them "cached plan
    /// must not change result type", after which a prepared statement whose result type
    /// changed (`ALTER TABLE`, another `search_path`) fails at every use, so the cache must
    /// let its statements go. The routine that names that check comes too late in the
    /// error for the tap to read it: any 0A000 counts (a rarer error costs a refill).
    replans: AtomicU64,
    /// Driver state: bit 0 woken and not yet polled, bit 1 being polled, bit 2 ended.
    driver: AtomicU8,
    /// tokio-postgres prepared one of its type-lookup statements (for a user-defined type).
    /// The client keeps them for its whole life and has no way to forget them.
    typeinfo: AtomicBool,
    /// ... and a `DEALLOCATE` / `DISCARD ALL` dropped them since: the client's next lookup
    /// of a type it has not seen yet fails (`prepared statement "sN" does not exist`).
    typeinfo_lost: AtomicBool,
}

const WOKEN: u8 = 1;
const POLLING: u8 = 2;
const ENDED: u8 = 4;

/// What the wire says at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    /// Request cycles written and not yet answered.
    pub in_flight: u64,
    /// Of those, the ones that may run long or change state (anything but a `ROLLBACK`
    /// or statement closes).
    pub heavy: u64,
    /// Status byte of the last `ReadyForQuery`.
    pub status: u8,
    /// `ErrorResponse`s read so far.
    pub errors: u64,
    /// Cycles in flight that failed and whose `ReadyForQuery` (with the status after the
    /// failure) has not been read: `status` is stale while this is non-zero.
    pub failing: u64,
    /// The driver has caught up with every wake-up and flushed every byte: nothing the
    /// client queued is still unwritten.
    pub settled: bool,
    /// The parser lost track, or the driver ended.
    pub unknown: bool,
}

impl Wire {
    pub(crate) fn new() -> Arc<Wire> {
        Arc::new(Wire {
            layer: AtomicU8::new(0),
            tls: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            heavy: AtomicU64::new(0),
            status: AtomicU8::new(IDLE),
            errors: AtomicU64::new(0),
            failing: AtomicU64::new(0),
            write_blocked: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            deallocations: AtomicU64::new(0),
            replans: AtomicU64::new(0),
            driver: AtomicU8::new(0),
            typeinfo: AtomicBool::new(false),
            typeinfo_lost: AtomicBool::new(false),
        })
    }

    /// Start-up is over: the tap of the layer that carries the protocol starts parsing.
    pub(crate) fn activate(&self) {
        let layer = if self.tls.load(Ordering::Acquire) {
            2
        } else {
            1
        };
        self.layer.store(layer, Ordering::Release);
    }

    pub(crate) fn set_tls(&self) {
        self.tls.store(true, Ordering::Release);
    }

    /// Simple queries that dropped prepared statements, so far.
    /// Every prepared statement of the session is gone (seen sent, or its absence
    /// reported by the server): the cache empties at its next use, and tokio-postgres'
    /// type-lookup statements, if it made any, are lost with them.
    fn statements_dropped(&self) {
        self.deallocations.fetch_add(1, Ordering::Release);
        if self.typeinfo.load(Ordering::Acquire) {
            self.typeinfo_lost.store(true, Ordering::Release);
        }
    }

    pub(crate) fn deallocations(&self) -> u64 {
        self.deallocations.load(Ordering::Acquire)
    }

    /// How many errors may have been a statement's result type changing under it (see
    /// `replans`).
    pub(crate) fn replans(&self) -> u64 {
        self.replans.load(Ordering::Acquire)
    }

    /// Whether tokio-postgres has prepared type-lookup statements on this connection.
    pub(crate) fn has_typeinfo(&self) -> bool {
        self.typeinfo.load(Ordering::Acquire)
    }

    /// Whether those statements were deallocated since (the client's lookups of new
    /// user-defined types are broken for good).
    pub(crate) fn typeinfo_lost(&self) -> bool {
        self.typeinfo_lost.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        // The driver publishes its counters with the Release that clears POLLING; read the
        // driver word first so the counters are at least that fresh.
        let driver = self.driver.load(Ordering::Acquire);
        let ready = self.ready.load(Ordering::Acquire);
        let sent = self.sent.load(Ordering::Acquire);
        Snapshot {
            in_flight: sent.saturating_sub(ready),
            heavy: self.heavy.load(Ordering::Acquire),
            status: self.status.load(Ordering::Acquire),
            errors: self.errors.load(Ordering::Acquire),
            failing: self.failing.load(Ordering::Acquire),
            settled: driver == 0 && !self.write_blocked.load(Ordering::Acquire),
            unknown: self.lost.load(Ordering::Acquire) || driver & ENDED != 0,
        }
    }
}

/// A stream that parses the protocol's framing as it passes (when its layer is active).
pub(crate) struct Tap<S> {
    inner: S,
    wire: Arc<Wire>,
    layer: u8,
    rd: Frames,
    wr: Frames,
    /// The request cycles written and not yet closed, oldest first.
    cycles: VecDeque<Cycle>,
    /// The extended-protocol cycle being written has only `Close` messages so far.
    light: bool,
    /// The extended-protocol cycle being written has an `Execute`.
    executes: bool,
}

impl<S> Tap<S> {
    pub(crate) fn new(inner: S, wire: Arc<Wire>, layer: u8) -> Self {
        Tap {
            inner,
            wire,
            layer,
            rd: Frames::default(),
            wr: Frames::default(),
            cycles: VecDeque::new(),
            light: true,
            executes: false,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    fn active(&self) -> bool {
        self.wire.layer.load(Ordering::Acquire) == self.layer
    }

    fn on_written(&mut self, bytes: &[u8]) {
        if !self.active() {
            return;
        }
        let Tap {
            wr,
            wire,
            cycles,
            light,
            executes,
            ..
        } = self;
        wr.feed(bytes, |ty, prefix| match ty {
            b'Q' => {
                // A lone `ROLLBACK` (or `ROLLBACK TO sp`, what a dropped `Transaction`
                // sends) is quick and leaves no state: light. Any other query may run for
                // long: heavy, and so is a string that only starts with `ROLLBACK`
                // (`ROLLBACK; BEGIN; ...`): light only when the whole query (up to its
                // terminating NUL) was seen and holds one statement.
                let is_light = is_lone_rollback(prefix);
                open_cycle(wire, cycles, false, is_light);
                if drops_statements(prefix) {
                    wire.statements_dropped();
                }
            }
            b'P' => {
                *light = false;
                if is_typeinfo_parse(prefix) {
                    wire.typeinfo.store(true, Ordering::Release);
                }
                // `name\0query`: a `DEALLOCATE` sent through the extended protocol.
                let query = prefix
                    .iter()
                    .position(|&b| b == 0)
                    .map(|n| &prefix[n + 1..]);
                if query.is_some_and(drops_statements) {
                    wire.statements_dropped();
                }
            }
            b'S' => {
                let is_light = *light;
                let execute = *executes;
                *light = true;
                *executes = false;
                open_cycle(wire, cycles, true, is_light);
                if let Some(c) = cycles.back_mut() {
                    c.execute = execute;
                }
            }
            // `Close` (a dropped statement) keeps a cycle light; anything else makes it heavy.
            b'C' => {}
            b'E' => {
                *light = false;
                *executes = true;
            }
            _ => *light = false,
        });
    }

    fn on_read(&mut self, bytes: &[u8]) {
        if !self.active() {
            return;
        }
        let Tap {
            rd, wire, cycles, ..
        } = self;
        rd.feed(bytes, |ty, prefix| match ty {
            b'Z' => {
                // The status first: whoever sees the cycle closed sees its status.
                wire.status
                    .store(prefix.first().copied().unwrap_or(0), Ordering::Release);
                close_cycle(wire, cycles);
            }
            b'E' => {
                match error_kind(prefix) {
                    // The server ends the session after a FATAL (a killed backend, a
                    // shutdown): the client may not have seen the socket close yet, but
                    // nothing may use the connection again.
                    ErrorKind::Fatal => wire.lost.store(true, Ordering::Release),
                    // A prepared statement is gone that the client thought it had: some
                    // deallocation went unseen, so the cache (and tokio-postgres' own
                    // type-lookup statements) must be taken as dropped.
                    ErrorKind::NoSuchStatement => wire.statements_dropped(),
                    // Perhaps a prepared statement whose result type changed: the cache
                    // lets its statements go (see `Wire::replans`).
                    ErrorKind::NotSupported => {
                        wire.replans.fetch_add(1, Ordering::Release);
                    }
                    ErrorKind::Other => {}
                }
                if let Some(c) = cycles.front_mut().filter(|c| !c.failed) {
                    c.failed = true;
                    wire.failing.fetch_add(1, Ordering::Release);
                }
                wire.errors.fetch_add(1, Ordering::Release);
                // After an error the server skips to the end of the cycle: nothing of it
                // runs any more.
                lighten(wire, cycles);
            }
            // An extended-protocol cycle (one `Execute` at most, as tokio-postgres sends)
            // is over once its command completed, or, without an `Execute`, once the
            // statement is described: only `ReadyForQuery` is left.
            b'C' | b'I' | b's' if cycles.front().is_some_and(|c| c.sync) => lighten(wire, cycles),
            b'T' | b'n' if cycles.front().is_some_and(|c| c.sync && !c.execute) => {
                lighten(wire, cycles)
            }
            b'G' => {
                // COPY FROM STDIN started. After an extended-protocol request the `Sync`
                // written behind its `Execute` is ignored by the server: that cycle closes
                // here. After a simple `Query`, the server waits for data tokio-postgres
                // never sends on that path: give up on tracking.
                if cycles.front().is_some_and(|c| c.sync) {
                    close_cycle(wire, cycles);
                } else {
                    wire.lost.store(true, Ordering::Release);
                }
            }
            b'W' => wire.lost.store(true, Ordering::Release),
            _ => {}
        });
        if rd.broken {
            wire.lost.store(true, Ordering::Release);
        }
    }
}

/// A request cycle written and not yet answered.
struct Cycle {
    /// Opened by a `Sync` (extended protocol), not a simple `Query`.
    sync: bool,
    /// Nothing of it can run for long any more: only `ROLLBACK` or statement closes, or
    /// what is left after its command completed or failed.
    light: bool,
    /// It has an `Execute`.
    execute: bool,
    /// An `ErrorResponse` of it was read: until its `ReadyForQuery` arrives, the status
    /// read last is stale (a transaction block may now be failed).
    failed: bool,
}

fn lighten(wire: &Wire, cycles: &mut VecDeque<Cycle>) {
    if let Some(c) = cycles.front_mut() {
        if !c.light {
            c.light = true;
            wire.heavy.fetch_sub(1, Ordering::Release);
        }
    }
}

fn open_cycle(wire: &Wire, cycles: &mut VecDeque<Cycle>, sync: bool, light: bool) {
    cycles.push_back(Cycle {
        sync,
        light,
        execute: false,
        failed: false,
    });
    if !light {
        wire.heavy.fetch_add(1, Ordering::Release);
    }
    wire.sent.fetch_add(1, Ordering::Release);
}

fn close_cycle(wire: &Wire, cycles: &mut VecDeque<Cycle>) {
    if let Some(c) = cycles.pop_front() {
        if !c.light {
            wire.heavy.fetch_sub(1, Ordering::Release);
        }
        if c.failed {
            wire.failing.fetch_sub(1, Ordering::Release);
        }
    }
    wire.ready.fetch_add(1, Ordering::Release);
}

/// Whether a query's text (the prefix of it in a frame) holds a statement that drops
/// prepared statements: one that begins with `DEALLOCATE` or `DISCARD ALL`, the first
/// or any after a `;` (a multi-statement string). A mention inside a string literal, a
/// quoted identifier, a dollar-quoted body or a comment is not one (it would cost the
/// cache, or a connection whose client made type-lookup statements). A deallocation
/// hidden from the text (`EXECUTE 'DEALLOCATE ALL'` in a function) is seen when the
/// server reports a statement gone (SQLSTATE 26000) instead.
fn drops_statements(text: &[u8]) -> bool {
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    // The keyword at `i` as a whole word (a word the prefix cuts short counts: the rest
    // cannot be seen).
    let word_at = |i: usize, kw: &[u8]| {
        text.len() >= i + kw.len()
            && text[i..i + kw.len()].eq_ignore_ascii_case(kw)
            && text.get(i + kw.len()).is_none_or(|&b| !is_word(b))
    };
    let skip_space = |mut i: usize| {
        while text.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let (mut i, mut at_start) = (0, true);
    while i < text.len() {
        match text[i] {
            b if b.is_ascii_whitespace() => i += 1,
            b';' => {
                at_start = true;
                i += 1;
            }
            b'-' if text.get(i + 1) == Some(&b'-') => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if text.get(i + 1) == Some(&b'*') => {
                // Block comments nest in PostgreSQL.
                let mut depth = 0usize;
                while i < text.len() {
                    if text[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if text[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            q @ (b'\'' | b'"') => {
                // To the closing quote (a doubled one closes and reopens: same effect).
                i += 1;
                while i < text.len() && text[i] != q {
                    i += 1;
                }
                i += 1;
                at_start = false;
            }
            b'$' => {
                // A dollar quote `$tag$ ... $tag$` (tag empty or an identifier); `$1` is
                // a parameter.
                let tag_end = text[i + 1..]
                    .iter()
                    .position(|&b| !is_word(b))
                    .map(|n| i + 1 + n)
                    .filter(|&e| {
                        text[e] == b'$' && !text.get(i + 1).is_some_and(u8::is_ascii_digit)
                    });
                match tag_end {
                    Some(e) => {
                        let tag = &text[i..=e];
                        i = text[e + 1..]
                            .windows(tag.len())
                            .position(|w| w == tag)
                            .map_or(text.len(), |n| e + 1 + n + tag.len());
                    }
                    None => i += 1,
                }
                at_start = false;
            }
            _ => {
                if at_start
                    && (word_at(i, b"DEALLOCATE")
                        || word_at(i, b"DISCARD") && word_at(skip_space(i + 7), b"ALL"))
                {
                    return true;
                }
                at_start = false;
                i += 1;
            }
        }
    }
    false
}

/// What an `ErrorResponse` means for the session, from its fields (`code value\0` each):
/// the severity (`V`, or the localized `S` before PostgreSQL 9.6) and the SQLSTATE (`C`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    /// `FATAL` or `PANIC`: the server ends the session.
    Fatal,
    /// SQLSTATE 26000, invalid statement name: a prepared statement is gone.
    NoSuchStatement,
    /// SQLSTATE 0A000, feature not supported (see `Wire::replans`).
    NotSupported,
    Other,
}

fn error_kind(prefix: &[u8]) -> ErrorKind {
    let mut kind = ErrorKind::Other;
    let mut rest = prefix;
    while let Some((&code, tail)) = rest.split_first() {
        let Some(end) = tail.iter().position(|&b| b == 0) else {
            break; // cut by the prefix
        };
        let value = &tail[..end];
        match code {
            b'S' | b'V' if value == b"FATAL" || value == b"PANIC" => return ErrorKind::Fatal,
            b'C' if value == b"26000" => kind = ErrorKind::NoSuchStatement,
            b'C' if value == b"0A000" => kind = ErrorKind::NotSupported,
            0 => break,
            _ => {}
        }
        rest = &tail[end + 1..];
    }
    kind
}

/// Whether a `Parse` payload's prefix (`name\0query...`) prepares one of tokio-postgres'
/// type-lookup statements (its `TYPEINFO_*` queries), which its client caches for life.
fn is_typeinfo_parse(prefix: &[u8]) -> bool {
    let Some(nul) = prefix.iter().position(|&b| b == 0) else {
        return false;
    };
    let query = &prefix[nul + 1..];
    nul > 0
        && [
            b"SELECT t.typname".as_slice(),
            b"SELECT enumlabel",
            b"SELECT attname, atttypid",
        ]
        .iter()
        .any(|q| query.starts_with(q) || (query.len() >= 12 && q.starts_with(query)))
}

/// Whether a `Query` payload's prefix is a whole query (NUL-terminated within the prefix)
/// that is a single `ROLLBACK` statement.
fn is_lone_rollback(prefix: &[u8]) -> bool {
    match prefix.split_last() {
        Some((0, text)) => text.starts_with(b"ROLLBACK") && !text.contains(&b';'),
        _ => false,
    }
}

/// Payload bytes reported with each frame (enough for `ROLLBACK TO <savepoint>\0` and a
/// status byte).
const PREFIX: usize = 32;

/// Incremental parser of `type (1 byte) + length (4 bytes, counts itself) + payload`
/// frames. Each frame is reported once, with the first (up to [`PREFIX`]) payload bytes.
#[derive(Default)]
struct Frames {
    header: [u8; 5],
    have: usize,
    /// Payload bytes of the current frame not yet seen.
    left: u64,
    prefix: [u8; PREFIX],
    /// Prefix bytes collected; the frame is reported when it reaches `want`.
    got: usize,
    want: usize,
    ty: u8,
    broken: bool,
}

impl Frames {
    fn feed(&mut self, mut bytes: &[u8], mut on: impl FnMut(u8, &[u8])) {
        while !bytes.is_empty() && !self.broken {
            if self.have == 5 {
                if self.got < self.want {
                    let n = (self.want - self.got).min(bytes.len());
                    self.prefix[self.got..self.got + n].copy_from_slice(&bytes[..n]);
                    self.got += n;
                    self.left -= n as u64;
                    bytes = &bytes[n..];
                    if self.got == self.want {
                        on(self.ty, &self.prefix[..self.got]);
                    }
                }
                let n = self.left.min(bytes.len() as u64) as usize;
                self.left -= n as u64;
                bytes = &bytes[n..];
                if self.left == 0 && self.got == self.want {
                    self.have = 0;
                }
                continue;
            }
            let n = (5 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < 5 {
                break;
            }
            self.ty = self.header[0];
            let len = u32::from_be_bytes([
                self.header[1],
                self.header[2],
                self.header[3],
                self.header[4],
            ]);
            if len < 4 {
                self.broken = true;
                break;
            }
            self.left = u64::from(len - 4);
            self.got = 0;
            self.want = (self.left as usize).min(PREFIX);
            if self.want == 0 {
                on(self.ty, &[]);
                self.have = 0;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let this = &mut *self;
            this.on_read(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        match r {
            Poll::Ready(Ok(n)) => {
                self.on_written(&buf[..n]);
                if self.active() {
                    // More may follow in the client's buffer until the next flush.
                    self.wire.write_blocked.store(true, Ordering::Release);
                }
            }
            Poll::Pending if self.active() => {
                self.wire.write_blocked.store(true, Ordering::Release);
            }
            _ => {}
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if self.active() {
            let blocked = !matches!(r, Poll::Ready(Ok(())));
            self.wire.write_blocked.store(blocked, Ordering::Release);
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The driver's waker: records the wake-up, then wakes the driver task.
struct Flag {
    wire: Arc<Wire>,
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wire.driver.fetch_or(WOKEN, Ordering::AcqRel);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(w) = task {
            w.wake();
        }
    }
}

/// Drives a `tokio_postgres::Connection` until it ends, recording wake-ups and polls in
/// the wire so `PgConn` can tell whether queued requests are still unwritten. Notices are
/// logged at debug level (a pipelined `ROLLBACK` outside a transaction warns, harmlessly).
pub(crate) async fn drive<S, T>(
    mut conn: tokio_postgres::Connection<S, T>,
    wire: Arc<Wire>,
    closed: tokio::sync::oneshot::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let flag = Arc::new(Flag {
        wire: wire.clone(),
        task: Mutex::new(None),
    });
    let waker = Waker::from(flag.clone());
    let run = std::future::poll_fn(|cx| {
        {
            let mut task = flag.task.lock().unwrap_or_else(|e| e.into_inner());
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let mut inner = Context::from_waker(&waker);
        loop {
            wire.driver.swap(POLLING, Ordering::AcqRel);
            let r = conn.poll_message(&mut inner);
            let end = match r {
                Poll::Ready(Some(Ok(tokio_postgres::AsyncMessage::Notice(n)))) => {
                    tracing::debug!(severity = n.severity(), "postgres notice: {}", n.message());
                    false
                }
                Poll::Ready(Some(Ok(_))) => false,
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!("postgres connection ended: {e}");
                    true
                }
                Poll::Ready(None) => true,
                Poll::Pending => {
                    // A wake-up during the poll leaves WOKEN set: the task is woken again.
                    wire.driver.fetch_and(!POLLING, Ordering::AcqRel);
                    return Poll::Pending;
                }
            };
            if end {
                wire.driver.store(ENDED, Ordering::Release);
                return Poll::Ready(());
            }
        }
    });
    let mut run = std::pin::pin!(run);
    tokio::select! {
        biased;
        () = &mut run => {}
        _ = closed => {
            // The client was dropped: the connection sends Terminate and ends by itself;
            // a server that stopped answering gets a bounded wait, not a stuck task.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), run).await;
        }
    }
    wire.driver.store(ENDED, Ordering::Release);
}

/// A future that is ready at once: used to send a request without waiting for its answer.
pub(crate) fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    f.as_mut().poll(&mut cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_are_told_apart() {
        let fatal = b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to ad";
        assert_eq!(error_kind(&fatal[..PREFIX]), ErrorKind::Fatal);
        // A localized severity: the non-localized field decides.
        assert_eq!(
            error_kind(b"SSCHWERWIEGEND\0VFATAL\0C57P"),
            ErrorKind::Fatal
        );
        assert_eq!(
            error_kind(b"SERROR\0VERROR\0C26000\0Mprepared st"),
            ErrorKind::NoSuchStatement
        );
        assert_eq!(
            error_kind(b"SERROR\0VERROR\0C0A000\0Mcached plan mu"),
            ErrorKind::NotSupported
        );
        assert_eq!(error_kind(b"SERROR\0VERROR\0C42P01\0M"), ErrorKind::Other);
        assert_eq!(
            error_kind(b"SERROR\0VERROR\0C2600"),
            ErrorKind::Other,
            "cut"
        );
        assert_eq!(error_kind(b""), ErrorKind::Other);
    }

    #[test]
    fn statement_drops_are_seen_at_any_statement_of_the_prefix() {
        assert!(drops_statements(b"DEALLOCATE ALL\0"));
        assert!(drops_statements(b"select 1; deallocate all\0"));
        assert!(drops_statements(b"\n    DEALLOCATE ALL;\n\0"));
        assert!(drops_statements(b"discard all"));
        assert!(drops_statements(b"DISCARD\n  ALL"));
        assert!(drops_statements(b"deallocate s0"));
        assert!(drops_statements(b"-- reset\nDEALLOCATE ALL"));
        assert!(drops_statements(b"/* a /* nested */ note */ DISCARD ALL"));
        assert!(drops_statements(b"SELECT '; x'; DEALLOCATE ALL"));
        // Cut by the prefix: what can be seen counts.
        assert!(drops_statements(b"SELECT 1;DEALLOCATE"));
        assert!(!drops_statements(b"DISCARD TEMP; SELECT 1\0"));
        assert!(!drops_statements(b"SELECT 1\0"));
        // Mentions that drop nothing.
        assert!(!drops_statements(b"SELECT 'deallocated' AS status\0"));
        assert!(!drops_statements(b"SELECT 'DEALLOCATE ALL'\0"));
        assert!(!drops_statements(b"SELECT \"discard all\" FROM t\0"));
        assert!(!drops_statements(b"SELECT 1 -- DEALLOCATE ALL\0"));
        assert!(!drops_statements(b"/* DISCARD ALL */ SELECT 1\0"));
        assert!(!drops_statements(b"DO $$ BEGIN DEALLOCATE ALL; END $$\0"));
        assert!(!drops_statements(b"SELECT $t$;DEALLOCATE$t$\0"));
        assert!(!drops_statements(b"SELECT deallocated FROM t\0"));
        assert!(!drops_statements(b"SELECT $1; SELECT 2\0"));
        assert!(!drops_statements(b"DISCARD PLANS\0"));
    }

    fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![ty];
        v.extend_from_slice(&((payload.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn frames_split_anywhere_are_parsed() {
        let mut bytes = frame(b'C', b"SELECT 1\0");
        bytes.extend(frame(b'Z', b"T"));
        bytes.extend(frame(b'E', b"a long error message, longer than the prefix"));
        bytes.extend(frame(b'1', b""));
        bytes.extend(frame(b'Z', b"E"));
        for split in 1..bytes.len() {
            let mut f = Frames::default();
            let mut seen = Vec::new();
            for chunk in bytes.chunks(split) {
                f.feed(chunk, |ty, prefix| seen.push((ty, prefix.to_vec())));
            }
            assert_eq!(
                seen,
                [
                    (b'C', b"SELECT 1\0".to_vec()),
                    (b'Z', b"T".to_vec()),
                    (b'E', b"a long error message, longer tha".to_vec()),
                    (b'1', vec![]),
                    (b'Z', b"E".to_vec())
                ],
                "chunks of {split}"
            );
            assert!(!f.broken);
        }
    }

    #[test]
    fn type_lookup_statements_are_recognised() {
        assert!(is_typeinfo_parse(b"s1\0SELECT t.typname, t.typtype"));
        assert!(is_typeinfo_parse(b"s12\0SELECT enumlabel\nFROM pg"));
        assert!(is_typeinfo_parse(b"s4\0SELECT attname, atttypid\nFRO"));
        assert!(is_typeinfo_parse(b"s1234567890123\0SELECT t.typna"));
        assert!(!is_typeinfo_parse(b"\0SELECT t.typname, t.typtype"));
        assert!(!is_typeinfo_parse(b"s1\0SELECT $1::int4 + 1\0\0\0"));
    }

    #[test]
    fn only_a_lone_rollback_is_light() {
        assert!(is_lone_rollback(b"ROLLBACK\0"));
        assert!(is_lone_rollback(b"ROLLBACK TO sp_1\0"));
        assert!(!is_lone_rollback(b"ROLLBACK; BEGIN; SELECT pg_sleep(1)\0"));
        // A query longer than the prefix: its end (and any `;`) is unseen.
        let long = [b"ROLLBACK ".as_slice(), &[b' '; PREFIX]].concat();
        assert!(!is_lone_rollback(&long[..PREFIX]));
        assert!(!is_lone_rollback(b"ROLLBACK"));
        assert!(!is_lone_rollback(b"SELECT 1\0"));
    }

    #[test]
    fn a_bad_length_marks_the_stream_lost() {
        let mut f = Frames::default();
        f.feed(&[b'Z', 0, 0, 0, 2], |_, _| {});
        assert!(f.broken);
    }
}
