//! The websocket tunnel between an upgraded client socket and the upstream.
//!
//! Both directions are driven by one poll loop (`Pump::poll_io`) that only
//! ever calls `poll_read` / `poll_write`, so every piece of state lives in the
//! pump and the surrounding `select!` (revocation events, shutdown, deadlines)
//! can interrupt it at any point without losing bytes. Directions stay
//! independent: a stalled writer on one side never stops the other side, and
//! a revocation is acted on even while a write is blocked.
//!
//! Client → upstream: frames are parsed; control frames pass at once; the
//! frames of a data message are held until the message is complete, then the
//! message is inspected for resume tokens (text and binary alike: Meteor
//! `JSON.parse`s binary frames too), read both as plain DDP and as SockJS
//! framing whatever the path (sockjs-node serves raw DDP under
//! `/sockjs/websocket`). A revoked resume token is replaced by a decoy of the
//! same length and the message forwarded, so the server answers that login
//! itself, `result` then `updated` (SPEC §11). A message bigger than
//! `max_inspect_bytes` stops being held and streams through while a
//! [`ddp::ResumeScanner`] reads it; only the bytes that would complete it wait
//! for the verdict (Meteor accepts messages up to 64 MiB, so padding a login
//! past the limit must not get it through).
//!
//! The connection's tokens are all the tokens it presented (cookie, resume
//! logins) or was granted, not just the last: a failed login with another
//! token must not make the gate forget the one the socket is logged in with.
//!
//! Upstream → client: bytes are forwarded as they arrive; frame boundaries are
//! tracked so the gate's own close frame only goes in between upstream
//! frames, and login results are copied aside to learn the tokens the server
//! grants.
//!
//! One concern in one file, the pump state machine, on purpose (about 1,000
//! lines): the two directions are not separable. Each direction's frame
//! processing calls back into the shared token and closing state (`learn` →
//! `revoke` → `start_closing`, which resets the inbound parser mid-message),
//! and a close decided on one direction (a revoked login read inbound) goes
//! out on the other, at its next frame boundary. Cut by direction, it would
//! be one `impl Pump` spread over files reaching into each other's fields.
//! The tests live in `tests.rs`.

use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::{TokenHash, hash_token};
use crate::revocation::{RevokedSet, TokenWatch};
use crate::ws::ddp;
use crate::ws::frame::{self, FrameHeader, OpCode};

/// Default bound on a message the gate holds back to inspect.
pub const DEFAULT_MAX_INSPECT_BYTES: usize = 1 << 20;

/// RFC 6455 §7.4.1 status codes the gate sends.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_POLICY_VIOLATION: u16 = 1008;

/// Stop reading a side while this much is queued toward the other.
const HIGH_WATER: usize = 64 * 1024;
/// One read's bound. Reads land in a stack buffer and only the bytes read
/// are kept, so buffers are sized to the traffic.
const READ_CHUNK: usize = 16 * 1024;
/// Room reserved up front for a held message, at most: the frame header
/// only claims a length, and 10,000 tunnels each claiming 1 MiB must not
/// cost 10 GiB before a byte of it has arrived.
const HELD_RESERVE: usize = 16 * 1024;
/// How long a close may take (finishing an upstream frame, flushing) before
/// the sockets are simply dropped.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// How long one direction may keep flowing after the other has finished.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Distinct tokens one connection may present. Each is watched for
/// revocation; a client cycling through more is not a chat client.
const MAX_TOKENS: usize = 32;
/// Loop iterations per poll before yielding, so a busy socket cannot starve
/// the revocation and shutdown arms of the `select!`.
const POLL_BUDGET: usize = 32;

/// What the tunnel needs to know about one connection.
#[derive(Clone)]
pub struct TunnelConfig {
    /// Hash of the `rc_token` cookie sent with the handshake, if any.
    pub cookie_token: Option<TokenHash>,
    /// Largest message held back for inspection (default 1 MiB).
    pub max_inspect_bytes: usize,
    /// Close (1001) after this long with no bytes either way; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Told `(user_id, token)` of every login the server grants on this
    /// socket, so the session can be recorded (SPEC §2). Must not block.
    pub on_login: Option<LoginHook>,
    /// Told each time a client login with a revoked token is forwarded with
    /// a decoy (for metrics). Must not block.
    pub on_revoked_login: Option<RevokedLoginHook>,
}

impl std::fmt::Debug for TunnelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelConfig")
            .field("cookie_token", &self.cookie_token.map(|_| "<redacted>"))
            .field("max_inspect_bytes", &self.max_inspect_bytes)
            .field("idle_timeout", &self.idle_timeout)
            .field("on_login", &self.on_login.is_some())
            .field("on_revoked_login", &self.on_revoked_login.is_some())
            .finish()
    }
}

/// Callback for logins granted over a websocket.
pub type LoginHook = std::sync::Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Callback for client logins whose revoked token was replaced.
pub type RevokedLoginHook = std::sync::Arc<dyn Fn() + Send + Sync>;

impl Default for TunnelConfig {
    fn default() -> Self {
        Self {
            cookie_token: None,
            max_inspect_bytes: DEFAULT_MAX_INSPECT_BYTES,
            idle_timeout: None,
            on_login: None,
            on_revoked_login: None,
        }
    }
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// The client closed first (close frame or EOF).
    ClientClosed,
    /// The upstream closed first.
    UpstreamClosed,
    /// A token of this connection was revoked: closed with 1008.
    Revoked,
    /// The gate is shutting down: closed with 1001.
    Shutdown,
    /// Nothing moved either way for `idle_timeout`: closed with 1001.
    Idle,
    /// A peer broke the protocol; the client got a close frame.
    ProtocolError(&'static str),
    /// A socket failed.
    Io,
}

/// Tunnel websocket frames between `client` and `upstream` until either side
/// closes, a token of the connection is revoked, or `shutdown` fires.
pub async fn tunnel<C, U>(
    client: C,
    upstream: U,
    cfg: TunnelConfig,
    revoked: RevokedSet,
    shutdown: CancellationToken,
) -> TunnelEnd
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    U: AsyncRead + AsyncWrite + Unpin + Send,
{
    // Every token the connection holds is watched in the set's registry
    // (`Pump::learn`): a revocation raises this signal, and only this
    // connection's, never a broadcast to every tunnel.
    let cookie_token = cfg.cookie_token;
    let mut pump = Pump::new(client, upstream, cfg, revoked);
    let signal = pump.watch.signal();
    if let Some(hash) = cookie_token {
        pump.learn(hash);
    }
    let idle_timeout = pump.idle_timeout;
    // Shutdown and revocation, polled only once they have woken the task.
    let mut cancelled = pin!(shutdown.cancelled());
    let mut raised = pin!(signal.raised());
    let mut alarms = Alarms::default();
    loop {
        let deadline = pump.deadline();
        let closing = pump.closing.is_some();
        // Armed from the last byte moved, re-checked when it fires.
        let idle_at = idle_timeout.map(|idle| pump.last_activity + idle);
        let step = tokio::select! {
            biased;
            step = poll_fn(|cx| alarms.poll(cx, cancelled.as_mut(), raised.as_mut())), if !closing => step,
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Step::Deadline,
            () = tokio::time::sleep_until(idle_at.unwrap_or_else(Instant::now)), if idle_at.is_some() && !closing => Step::Idle,
            end = poll_fn(|cx| pump.poll_io(cx)) => Step::End(end),
        };
        match step {
            Step::End(end) => return end,
            Step::Deadline => return pump.end_reason(),
            Step::Idle => {
                // Bytes may have moved since the timer was armed.
                if idle_timeout.is_some_and(|idle| pump.last_activity + idle <= Instant::now()) {
                    tracing::info!(target: "sessiongate::ws", "closing websocket: idle timeout");
                    pump.start_closing(CLOSE_GOING_AWAY, "idle timeout", TunnelEnd::Idle);
                }
            }
            Step::Shutdown => pump.start_closing(
                CLOSE_GOING_AWAY,
                "server shutting down",
                TunnelEnd::Shutdown,
            ),
            Step::Revoked => pump.revoke(),
        }
    }
}

/// The tunnel's two rare wake-up sources, shutdown and revocation. Their
/// futures take a mutex each time they are polled (the cancellation token's
/// is shared by every tunnel), and a `select!` polls every arm on every
/// wake-up, that is on every message. Here they are polled with a waker of
/// their own that raises `fired` before waking the task: after the first
/// poll has registered them, a wake-up that is not theirs costs one atomic
/// swap. Once either resolves the tunnel is closing and they are not polled
/// again.
#[derive(Default)]
struct Alarms {
    wake: Arc<AlarmWake>,
    armed: bool,
}

#[derive(Default)]
struct AlarmWake {
    fired: AtomicBool,
    /// The tunnel task's waker, refreshed on every poll that polls the alarms.
    task: Mutex<Option<Waker>>,
}

impl Wake for AlarmWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

impl Alarms {
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        cancelled: Pin<&mut impl Future<Output = ()>>,
        raised: Pin<&mut impl Future<Output = ()>>,
    ) -> Poll<Step> {
        if self.armed && !self.wake.fired.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        {
            let mut task = self.wake.task.lock().unwrap_or_else(|e| e.into_inner());
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        self.armed = true;
        let waker = Waker::from(self.wake.clone());
        let mut alarm_cx = Context::from_waker(&waker);
        if cancelled.poll(&mut alarm_cx).is_ready() {
            return Poll::Ready(Step::Shutdown);
        }
        if raised.poll(&mut alarm_cx).is_ready() {
            return Poll::Ready(Step::Revoked);
        }
        Poll::Pending
    }
}

enum Step {
    End(TunnelEnd),
    Deadline,
    Idle,
    Shutdown,
    Revoked,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

/// Bytes queued toward one socket, and how far its shutdown has got.
#[derive(Default)]
struct Sink {
    out: BytesMut,
    /// Written but not yet flushed (TLS streams buffer).
    dirty: bool,
    /// Nothing more will be queued: shut the socket down once `out` drains.
    closing: bool,
    shut: bool,
}

impl Sink {
    fn push(&mut self, bytes: &[u8]) {
        if !self.closing {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Queue bytes already in a buffer of their own: taken as the queue
    /// when it is empty, joined without a copy when they follow it in the
    /// same allocation (consecutive `split_to`s of a read buffer).
    fn push_owned(&mut self, bytes: BytesMut) {
        if self.closing {
            return;
        }
        if self.out.is_empty() {
            self.out = bytes;
        } else {
            self.out.unsplit(bytes);
        }
    }

    /// The peer is gone: forget what was queued.
    fn abandon(&mut self) {
        self.out.clear();
        self.closing = true;
        self.shut = true;
    }

    /// Write, flush, then shut down when asked. `Ready(Ok(true))` when
    /// something moved.
    fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<bool>> {
        if self.shut {
            return Poll::Ready(Ok(false));
        }
        let mut progress = false;
        while !self.out.is_empty() {
            match Pin::new(&mut *writer).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.out.advance(n);
                    self.dirty = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return pending_unless(progress),
            }
        }
        if self.dirty {
            match Pin::new(&mut *writer).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.dirty = false;
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return pending_unless(progress),
            }
        }
        if self.closing {
            match Pin::new(&mut *writer).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => {
                    self.shut = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return pending_unless(progress),
            }
        }
        Poll::Ready(Ok(progress))
    }
}

fn pending_unless(progress: bool) -> Poll<io::Result<bool>> {
    if progress {
        Poll::Ready(Ok(true))
    } else {
        Poll::Pending
    }
}

/// Where the client → upstream parser is inside the current frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InFrame {
    Header,
    /// Payload of a data frame being held for inspection.
    Held {
        remaining: u64,
        mask: [u8; 4],
        offset: u64,
        fin: bool,
    },
    /// Payload of a message too big to hold, streamed through while a
    /// [`ddp::ResumeScanner`] reads it.
    Passthrough {
        remaining: u64,
        mask: [u8; 4],
        offset: u64,
        fin: bool,
    },
}

/// Client → upstream.
struct Inbound {
    rbuf: BytesMut,
    sink: Sink,
    frame: InFrame,
    /// Opcode of the data message in progress (between its first frame and FIN).
    message: Option<OpCode>,
    /// The frames of the message in progress, as received (still masked).
    held_raw: BytesMut,
    /// Their unmasked payload.
    held_text: Vec<u8>,
    holding: bool,
    /// Reads a message too big to hold as it streams through.
    scanner: Option<ddp::ResumeScanner>,
    eof: bool,
}

/// Where the upstream → client forwarder is inside the current frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OutFrame {
    Header,
    Payload {
        remaining: u64,
        mask: Option<[u8; 4]>,
        offset: u64,
        fin: bool,
        data: bool,
    },
}

/// Upstream → client.
struct Outbound {
    rbuf: BytesMut,
    sink: Sink,
    frame: OutFrame,
    /// A fragmented data message is open: only control frames may go in.
    in_message: bool,
    /// Unmasked text of the current message, while it is small enough.
    copy: Option<Vec<u8>>,
    eof: bool,
}

struct Closing {
    code: u16,
    reason: &'static str,
    end: TunnelEnd,
    deadline: Instant,
    client_done: bool,
    upstream_done: bool,
    /// The upstream was at a frame boundary: it can be sent a close frame.
    upstream_at_boundary: bool,
}

struct Pump<C, U> {
    client: C,
    upstream: U,
    max_inspect: usize,
    on_login: Option<LoginHook>,
    on_revoked_login: Option<RevokedLoginHook>,
    revoked: RevokedSet,
    /// Hashes of every token this connection presented or was granted.
    tokens: Vec<TokenHash>,
    /// Their registration in the set's registry (dropped with the pump).
    watch: TokenWatch,
    inb: Inbound,
    outb: Outbound,
    closing: Option<Closing>,
    first_closer: Option<Side>,
    drain_deadline: Option<Instant>,
    idle_timeout: Option<Duration>,
    /// When bytes last arrived from either side.
    last_activity: Instant,
}

impl<C, U> Pump<C, U>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    fn new(client: C, upstream: U, cfg: TunnelConfig, revoked: RevokedSet) -> Self {
        Self {
            client,
            upstream,
            max_inspect: cfg.max_inspect_bytes,
            on_login: cfg.on_login.clone(),
            on_revoked_login: cfg.on_revoked_login.clone(),
            watch: revoked.watch_tokens(),
            revoked,
            tokens: Vec::new(),
            inb: Inbound {
                rbuf: BytesMut::new(),
                sink: Sink::default(),
                frame: InFrame::Header,
                message: None,
                held_raw: BytesMut::new(),
                held_text: Vec::new(),
                holding: false,
                scanner: None,
                eof: false,
            },
            outb: Outbound {
                rbuf: BytesMut::new(),
                sink: Sink::default(),
                frame: OutFrame::Header,
                in_message: false,
                copy: None,
                eof: false,
            },
            closing: None,
            first_closer: None,
            drain_deadline: None,
            idle_timeout: cfg.idle_timeout,
            last_activity: Instant::now(),
        }
    }

    /// Watch `hash` from now on; close at once if it is already revoked.
    fn learn(&mut self, hash: TokenHash) {
        if !self.tokens.contains(&hash) {
            self.tokens.push(hash);
            // Registered before the check below: a revocation landing in
            // between is seen by one or the other (see `revocation::watch`).
            self.watch.watch(&hash);
        }
        if self.revoked.contains(&hash) {
            self.revoke();
        } else if self.tokens.len() > MAX_TOKENS {
            self.start_closing(
                CLOSE_POLICY_VIOLATION,
                "too many logins",
                TunnelEnd::ProtocolError("too many logins on one connection"),
            );
        }
    }

    fn revoke(&mut self) {
        tracing::info!(target: "sessiongate::ws", "closing websocket: session revoked");
        self.start_closing(
            CLOSE_POLICY_VIOLATION,
            "session revoked",
            TunnelEnd::Revoked,
        );
    }

    fn protocol_error(&mut self, reason: &'static str) {
        tracing::debug!(target: "sessiongate::ws", reason, "closing websocket: protocol error");
        self.start_closing(
            CLOSE_PROTOCOL_ERROR,
            reason,
            TunnelEnd::ProtocolError(reason),
        );
    }

    /// Stop forwarding client data and close both sides: a close frame to the
    /// client at the next upstream frame boundary, then the upstream.
    fn start_closing(&mut self, code: u16, reason: &'static str, end: TunnelEnd) {
        if self.closing.is_some() {
            return;
        }
        let upstream_at_boundary = !matches!(self.inb.frame, InFrame::Passthrough { .. });
        let inb = &mut self.inb;
        inb.rbuf.clear();
        inb.held_raw.clear();
        inb.held_text.clear();
        inb.message = None;
        inb.scanner = None;
        inb.frame = InFrame::Header;
        self.closing = Some(Closing {
            code,
            reason,
            end,
            deadline: Instant::now() + CLOSE_GRACE,
            client_done: false,
            upstream_done: false,
            upstream_at_boundary,
        });
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.closing {
            Some(closing) => Some(closing.deadline),
            None => self.drain_deadline,
        }
    }

    fn end_reason(&self) -> TunnelEnd {
        match (&self.closing, self.first_closer) {
            (Some(closing), _) => closing.end,
            (None, Some(Side::Upstream)) => TunnelEnd::UpstreamClosed,
            (None, _) => TunnelEnd::ClientClosed,
        }
    }

    fn closed_by(&mut self, side: Side) {
        self.first_closer.get_or_insert(side);
    }

    fn finished(&self) -> bool {
        if self.closing.is_some() {
            // Wait for the client's EOF too, so unread bytes do not turn our
            // close into a reset that could destroy the close frame.
            return self.inb.sink.shut && self.outb.sink.shut && self.inb.eof;
        }
        self.inb.eof && self.inb.sink.shut && self.outb.eof && self.outb.sink.shut
    }

    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<TunnelEnd> {
        for _ in 0..POLL_BUDGET {
            let mut progress = false;
            if self.closing.is_none() {
                progress |= self.process_inbound();
            }
            progress |= self.process_outbound();
            progress |= self.queue_close_frames();

            let upstream_gone = self.outb.eof || self.closing.is_some();
            match self.inb.sink.poll_drain(&mut self.upstream, cx) {
                Poll::Ready(Ok(moved)) => progress |= moved,
                Poll::Ready(Err(_)) if upstream_gone => {
                    self.inb.sink.abandon();
                    progress = true;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(TunnelEnd::Io),
                Poll::Pending => {}
            }
            let client_gone = self.inb.eof || self.closing.is_some();
            match self.outb.sink.poll_drain(&mut self.client, cx) {
                Poll::Ready(Ok(moved)) => progress |= moved,
                Poll::Ready(Err(_)) if client_gone => {
                    self.outb.sink.abandon();
                    progress = true;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(TunnelEnd::Io),
                Poll::Pending => {}
            }

            match self.poll_read_client(cx) {
                Poll::Ready(Ok(moved)) => progress |= moved,
                Poll::Ready(Err(_)) => return Poll::Ready(TunnelEnd::Io),
                Poll::Pending => {}
            }
            match self.poll_read_upstream(cx) {
                Poll::Ready(Ok(moved)) => progress |= moved,
                Poll::Ready(Err(_)) => return Poll::Ready(TunnelEnd::Io),
                Poll::Pending => {}
            }

            if self.finished() {
                return Poll::Ready(self.end_reason());
            }
            if !progress {
                self.shed();
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Going to sleep: free every buffer that holds nothing, so an idle
    /// tunnel costs its sockets and its state, not its last message's room.
    fn shed(&mut self) {
        for buf in [
            &mut self.inb.rbuf,
            &mut self.inb.sink.out,
            &mut self.inb.held_raw,
            &mut self.outb.rbuf,
            &mut self.outb.sink.out,
        ] {
            if buf.is_empty() && buf.capacity() > 0 {
                *buf = BytesMut::new();
            }
        }
        if self.inb.held_text.is_empty() && self.inb.held_text.capacity() > 0 {
            self.inb.held_text = Vec::new();
        }
    }

    fn poll_read_client(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.inb.eof {
            return Poll::Ready(Ok(false));
        }
        let closing = self.closing.is_some();
        let backlog = self.inb.sink.out.len() >= HIGH_WATER;
        if !closing && backlog {
            return Poll::Ready(Ok(false));
        }
        match poll_read_kept(&mut self.client, cx, &mut self.inb.rbuf) {
            Poll::Ready(Ok(0)) => {
                self.client_eof();
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Ok(_)) => {
                self.last_activity = Instant::now();
                if closing {
                    // Read only to see the client's EOF; nothing goes upstream.
                    self.inb.rbuf.clear();
                }
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(_)) if closing => {
                self.inb.eof = true;
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_read_upstream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.outb.eof || self.outb.sink.out.len() >= HIGH_WATER {
            return Poll::Ready(Ok(false));
        }
        // While closing, read only to finish the frame the client is in.
        if self.closing.is_some() && self.outb.frame == OutFrame::Header {
            return Poll::Ready(Ok(false));
        }
        match poll_read_kept(&mut self.upstream, cx, &mut self.outb.rbuf) {
            Poll::Ready(Ok(0)) => {
                self.upstream_eof();
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Ok(_)) => {
                self.last_activity = Instant::now();
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(_)) if self.closing.is_some() => {
                self.upstream_eof();
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn client_eof(&mut self) {
        let inb = &mut self.inb;
        inb.eof = true;
        // A message cut off by EOF is never complete: it is not forwarded.
        inb.rbuf.clear();
        inb.held_raw.clear();
        inb.held_text.clear();
        inb.message = None;
        inb.scanner = None;
        inb.sink.closing = true;
        self.closed_by(Side::Client);
        self.drain_deadline
            .get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
    }

    fn upstream_eof(&mut self) {
        let outb = &mut self.outb;
        outb.eof = true;
        outb.rbuf.clear();
        outb.sink.closing = true;
        self.closed_by(Side::Upstream);
        self.drain_deadline
            .get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
    }

    /// Parse buffered client bytes into frames. Returns whether anything moved.
    fn process_inbound(&mut self) -> bool {
        let mut progress = false;
        loop {
            match self.inb.frame {
                InFrame::Header => {
                    let header = match frame::parse_header(&self.inb.rbuf) {
                        Ok(Some(header)) => header,
                        Ok(None) => return progress,
                        Err(_) => {
                            self.protocol_error("invalid frame header");
                            return true;
                        }
                    };
                    let mask = match self.check_client_header(&header) {
                        Ok(mask) => mask,
                        Err(reason) => {
                            self.protocol_error(reason);
                            return true;
                        }
                    };
                    if header.opcode.is_control() {
                        // At most 14 + 125 bytes: wait for all of it.
                        let total = header.header_len + header.payload_len as usize;
                        if self.inb.rbuf.len() < total {
                            return progress;
                        }
                        let whole = self.inb.rbuf.split_to(total);
                        if header.opcode == OpCode::Close {
                            self.closed_by(Side::Client);
                        }
                        // Control frames may come between the fragments of a held
                        // message (RFC 6455 §5.4); they go ahead of it.
                        self.inb.sink.push_owned(whole);
                    } else {
                        self.start_data_frame(&header, mask);
                    }
                    progress = true;
                }
                InFrame::Held {
                    remaining,
                    mask,
                    offset,
                    fin,
                } => {
                    let take = remaining.min(self.inb.rbuf.len() as u64) as usize;
                    if take > 0 {
                        let chunk = self.inb.rbuf.split_to(take);
                        let start = self.inb.held_text.len();
                        self.inb.held_text.extend_from_slice(&chunk);
                        if let Some(fresh) = self.inb.held_text.get_mut(start..) {
                            frame::apply_mask(fresh, mask, offset);
                        }
                        // Right after the header in the same read: no copy.
                        self.inb.held_raw.unsplit(chunk);
                        progress = true;
                    }
                    let remaining = remaining - take as u64;
                    if remaining > 0 {
                        self.inb.frame = InFrame::Held {
                            remaining,
                            mask,
                            offset: offset + take as u64,
                            fin,
                        };
                        return progress;
                    }
                    self.inb.frame = InFrame::Header;
                    if fin {
                        self.finish_held_message();
                        progress = true;
                    }
                }
                InFrame::Passthrough {
                    remaining,
                    mask,
                    offset,
                    fin,
                } => {
                    let take = remaining.min(self.inb.rbuf.len() as u64) as usize;
                    let remaining = remaining - take as u64;
                    if take > 0 {
                        let chunk = self.inb.rbuf.split_to(take);
                        if let Some(scanner) = &mut self.inb.scanner {
                            let mut plain = chunk.to_vec();
                            frame::apply_mask(&mut plain, mask, offset);
                            scanner.feed(&plain);
                        }
                        // The bytes that complete the message go out only
                        // once the whole message has been read.
                        if remaining == 0 && fin && self.streamed_login_refused() {
                            return true;
                        }
                        self.inb.sink.push_owned(chunk);
                        progress = true;
                    }
                    if remaining > 0 {
                        self.inb.frame = InFrame::Passthrough {
                            remaining,
                            mask,
                            offset: offset + take as u64,
                            fin,
                        };
                        return progress;
                    }
                    self.inb.frame = InFrame::Header;
                    if fin {
                        self.inb.message = None;
                        self.inb.scanner = None;
                    }
                }
            }
        }
    }

    /// RFC 6455 rules for a client frame; returns its masking key.
    fn check_client_header(&self, header: &FrameHeader) -> Result<[u8; 4], &'static str> {
        // §5.1: "The server MUST close the connection upon receiving a frame
        // that is not masked."
        let Some(mask) = header.mask else {
            return Err("unmasked client frame");
        };
        // §5.2: RSV bits "MUST be 0 unless an extension is negotiated". The
        // proxy strips the permessage-deflate offer, so a compressed frame
        // (RSV1) is one the gate could not read: refuse it.
        if header.rsv != 0 {
            return Err("reserved bits set without a negotiated extension");
        }
        match (header.opcode, self.inb.message) {
            (OpCode::Continuation, None) => Err("continuation frame outside a message"),
            (OpCode::Text | OpCode::Binary, Some(_)) => Err("new message inside a fragmented one"),
            _ => Ok(mask),
        }
    }

    fn start_data_frame(&mut self, header: &FrameHeader, mask: [u8; 4]) {
        let max = self.max_inspect as u64;
        let inb = &mut self.inb;
        let head = inb.rbuf.split_to(header.header_len);
        if header.opcode == OpCode::Continuation {
            if inb.holding && inb.held_text.len() as u64 + header.payload_len > max {
                // Too big to hold: release what is held (it cannot complete the
                // message) and scan the rest as it streams.
                let mut scanner = ddp::ResumeScanner::new();
                scanner.feed(&inb.held_text);
                inb.scanner = Some(scanner);
                inb.sink.push(&inb.held_raw);
                inb.held_raw.clear();
                inb.held_text.clear();
                inb.holding = false;
            }
        } else {
            inb.message = Some(header.opcode);
            inb.holding = header.payload_len <= max;
            if !inb.holding {
                inb.scanner = Some(ddp::ResumeScanner::new());
            }
        }
        if inb.holding {
            // The unmasked copy is sized to the frame (bounded: the length
            // is only a claim): one allocation, not a doubling series. The
            // raw frame stays where it was read when it arrived in one read.
            inb.held_text
                .reserve((header.payload_len as usize).min(HELD_RESERVE));
            inb.held_raw.unsplit(head);
            inb.frame = InFrame::Held {
                remaining: header.payload_len,
                mask,
                offset: 0,
                fin: header.fin,
            };
        } else {
            inb.frame = InFrame::Passthrough {
                remaining: header.payload_len,
                mask,
                offset: 0,
                fin: header.fin,
            };
            // An empty final frame completes the message by its header alone.
            if header.fin && header.payload_len == 0 && self.streamed_login_refused() {
                return;
            }
            self.inb.sink.push_owned(head);
        }
    }

    /// A streamed message is complete: did it carry a revoked resume token?
    /// Its last bytes are still held back, so the upstream never gets a whole
    /// message to run; the socket cannot go on after a cut frame, so it is
    /// closed (the client's next login, normal-sized, gets the Meteor answer).
    fn streamed_login_refused(&mut self) -> bool {
        let Some(scanner) = self.inb.scanner.take() else {
            return false;
        };
        let hashes: Vec<TokenHash> = scanner.tokens().iter().map(|t| hash_token(t)).collect();
        if hashes.iter().any(|hash| self.revoked.contains(hash)) {
            tracing::info!(target: "sessiongate::ws", "refused an oversized resume login with a revoked token");
            self.start_closing(
                CLOSE_POLICY_VIOLATION,
                "session revoked",
                TunnelEnd::Revoked,
            );
            return true;
        }
        for hash in hashes {
            self.learn(hash);
        }
        false
    }

    /// A held message is complete: learn its live resume tokens and forward
    /// it, with every revoked resume token replaced by a decoy (SPEC §11).
    /// The server then answers that login itself, `result` and `updated`,
    /// exactly as it answers any unknown token, and the socket stays open for
    /// the client's next login.
    fn finish_held_message(&mut self) {
        let opcode = self.inb.message.take().unwrap_or(OpCode::Text);
        let raw = std::mem::take(&mut self.inb.held_raw);
        let text = std::mem::take(&mut self.inb.held_text);
        self.inb.holding = false;

        let revoked = &self.revoked;
        let message = ddp::inspect_client_message(
            &text,
            |token| revoked.contains(&hash_token(token)),
            crate::auth::decoy_token,
        );
        for token in &message.live {
            self.learn(hash_token(token));
        }
        match message.rewritten {
            None => self.inb.sink.push_owned(raw),
            Some(rewritten) => {
                tracing::info!(
                    target: "sessiongate::ws",
                    replaced = message.replaced,
                    "resume login with a revoked token forwarded with a decoy token"
                );
                if let Some(hook) = &self.on_revoked_login {
                    hook();
                }
                let frame = frame::encode_frame(opcode, rewritten.as_bytes(), Some(rand::random()));
                self.inb.sink.push(&frame);
            }
        }
    }

    /// Forward buffered upstream bytes, tracking frame boundaries and copying
    /// text messages aside for [`ddp::granted_logins`].
    fn process_outbound(&mut self) -> bool {
        let mut progress = false;
        loop {
            match self.outb.frame {
                OutFrame::Header => {
                    if self.closing.is_some() {
                        // No new upstream frame once a close is under way.
                        self.outb.rbuf.clear();
                        return progress;
                    }
                    let header = match frame::parse_header(&self.outb.rbuf) {
                        Ok(Some(header)) => header,
                        Ok(None) => return progress,
                        Err(_) => {
                            self.outb.rbuf.clear();
                            self.protocol_error("upstream sent an invalid frame");
                            return true;
                        }
                    };
                    let outb = &mut self.outb;
                    let head = outb.rbuf.split_to(header.header_len);
                    outb.sink.push_owned(head);
                    let data = !header.opcode.is_control();
                    if data {
                        if header.opcode != OpCode::Continuation {
                            // Compressed (RSV1) text cannot be read: skip it.
                            let readable = header.opcode == OpCode::Text && header.rsv == 0;
                            outb.copy = readable.then(Vec::new);
                        }
                        outb.in_message = !header.fin;
                    }
                    outb.frame = OutFrame::Payload {
                        remaining: header.payload_len,
                        mask: header.mask,
                        offset: 0,
                        fin: header.fin,
                        data,
                    };
                    if header.opcode == OpCode::Close {
                        self.closed_by(Side::Upstream);
                    }
                    progress = true;
                }
                OutFrame::Payload {
                    remaining,
                    mask,
                    offset,
                    fin,
                    data,
                } => {
                    let max = self.max_inspect;
                    let outb = &mut self.outb;
                    let take = remaining.min(outb.rbuf.len() as u64) as usize;
                    if take > 0 {
                        let chunk = outb.rbuf.split_to(take);
                        if data {
                            copy_aside(&mut outb.copy, &chunk, mask, offset, max);
                        }
                        outb.sink.push_owned(chunk);
                        progress = true;
                    }
                    let remaining = remaining - take as u64;
                    if remaining > 0 {
                        outb.frame = OutFrame::Payload {
                            remaining,
                            mask,
                            offset: offset + take as u64,
                            fin,
                            data,
                        };
                        return progress;
                    }
                    outb.frame = OutFrame::Header;
                    if data && fin {
                        if let Some(text) = outb.copy.take() {
                            self.learn_granted(&text);
                        }
                    }
                }
            }
        }
    }

    fn learn_granted(&mut self, text: &[u8]) {
        for grant in ddp::granted_logins(text) {
            if let Some(hook) = &self.on_login {
                hook(&grant.user_id, &grant.token);
            }
            self.learn(hash_token(&grant.token));
        }
    }

    /// While closing: queue the close frames once each side is at a frame
    /// boundary, and ask for the sockets to be shut down.
    fn queue_close_frames(&mut self) -> bool {
        let Some(closing) = &mut self.closing else {
            return false;
        };
        let mut progress = false;
        if !closing.client_done && (self.outb.frame == OutFrame::Header || self.outb.eof) {
            if self.outb.frame == OutFrame::Header {
                let frame = frame::encode_close(closing.code, closing.reason, None);
                self.outb.sink.push(&frame);
            }
            self.outb.sink.closing = true;
            closing.client_done = true;
            progress = true;
        }
        if !closing.upstream_done {
            if closing.upstream_at_boundary {
                let frame = frame::encode_close(closing.code, closing.reason, Some(rand::random()));
                self.inb.sink.push(&frame);
            }
            self.inb.sink.closing = true;
            closing.upstream_done = true;
            progress = true;
        }
        progress
    }
}

/// Read what `reader` has (up to [`READ_CHUNK`]) and append it to `rbuf`.
/// The read goes through an uninitialised stack buffer, so `rbuf` grows by
/// the bytes read only: a 150-byte DDP message costs a 150-byte buffer.
fn poll_read_kept<R: AsyncRead + Unpin>(
    reader: &mut R,
    cx: &mut Context<'_>,
    rbuf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut buf = ReadBuf::uninit(&mut chunk);
    match Pin::new(reader).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) => {
            rbuf.extend_from_slice(buf.filled());
            Poll::Ready(Ok(buf.filled().len()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// Append a payload chunk to the inspection copy, unmasking it; drop the copy
/// once the message outgrows `max`.
fn copy_aside(
    copy: &mut Option<Vec<u8>>,
    chunk: &[u8],
    mask: Option<[u8; 4]>,
    offset: u64,
    max: usize,
) {
    let Some(text) = copy else { return };
    if text.len() + chunk.len() > max {
        *copy = None;
        return;
    }
    let start = text.len();
    text.extend_from_slice(chunk);
    if let (Some(key), Some(fresh)) = (mask, text.get_mut(start..)) {
        frame::apply_mask(fresh, key, offset);
    }
}

#[cfg(test)]
mod tests;
