//! Logout endpoint throughput: `POST /api/v1/sessions/logout` answered by the
//! real release binary against a real private `redis-server`, with a real TOTP
//! check on every request and a unique victim session per request.
//!
//! `cargo bench --bench logout` runs the full size (10 s or 120,000 planned
//! logouts, whichever ends first, from 50 keep-alive HTTP/1.1 connections).
//! `SESSIONGATE_BIN=<path>` measures that binary instead of cargo's build.
//! Under `cargo test --all-targets` it runs a few-second smoke with tiny sizes
//! that panics on any non-200 answer, so it cannot rot silently.
//!
//! What one logout is here: an admin (role `admin`, so permission
//! `logout-device-management`) with its own live session and its own TOTP
//! secret, sealed with the gate's key exactly as `sessiongate totp import`
//! stores it, logs out one victim session nobody touched before. The gate runs
//! every check: token lookup, rate limit (on, set high enough not to bite),
//! lockout, body, permission, TOTP (unsealing the secret, HMAC over every
//! accepted step) and the atomic commit (replay marker, revoke, publish). The
//! answer must be `200 {"sessionId":"<id>","success":true}` (SPEC §1 row 7).
//!
//! Why many admins: TOTP replay protection is per (user, 30 s step) (key
//! `totp:used:<step>:<user>`), so one admin can log out once per accepted step.
//! The bench sets `totp.window = 10` (the largest the config accepts: 21
//! accepted steps) and gives each admin the 20 steps that stay accepted even if
//! the clock crosses one step boundary during the run; so 121,020 planned
//! logouts need 6,051 admins. Codes
//! come from `sessiongate::totp::code_at` for each planned step; every one is
//! still verified by the gate (it computes the 21 candidate codes and
//! compares) and consumed with `SET NX`. A wider window
//! costs the gate 21 HMACs per check instead of 3: the report shows what one
//! `totp::verify_code` costs in-process at both windows, so the gate's CPU per
//! logout can be read for the shipped `window = 1` too.
//! `logout.rate_limit_per_minute = 100` (each admin sends at most 20).
//!
//! Phases: warm-up (20 logouts, loads the Lua scripts), the timed run, then an
//! accounting run under Redis `MONITOR` that tells the commands the gate sends
//! (round trips) from the ones its Lua scripts run inside Redis (`[0 lua]`):
//! `INFO commandstats` counts both alike. Its deltas over the timed run give
//! the commands per logout; the MONITOR phase gives the round trips. (An
//! `expire` the MONITOR run does not see is the rate-limit window's first
//! request of an admin, inside the precheck script; a `ping` is the revocation
//! feed's keep-alive.) Finally every victim the bench logged out must be in the
//! `revoked` zset.
//!
//! The remembered second factor (`totp.remember_seconds`) is off by default
//! here, so every logout verifies and consumes a code as described above;
//! `BENCH_REMEMBER_SECS=1800` measures the shipped default instead, where each
//! admin's first logout verifies a code and opens the window and the rest go
//! through it (codes sent inside it are ignored). Either way a logout is two
//! round trips: the window is read and written inside the commit script.
//!
//! Environment: `BENCH_WORKERS` (`[server] workers`, default 1),
//! `BENCH_REMEMBER_SECS` (`[totp] remember_seconds`, default 0),
//! `BENCH_CONNECTIONS` (default 50; 8 in the smoke), `BENCH_SECS` (default 10, at
//! most 20: the planned codes must stay acceptable),
//! `BENCH_LOGOUT_OUT` (also write the markdown report to this file),
//! `SESSIONGATE_BIN` (the gate binary; default cargo's own build).

#[path = "../tests/common/procfs.rs"]
mod procfs;
#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use procfs::rss_kib;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use redis_server::{RedisServer, Reply};
use sessiongate::auth::{encode_hash, hash_token, meteor_id};
use sessiongate::clock;
use sessiongate::store::{RedisOptions, SessionRecord, Store};
use sessiongate::totp::{self, crypto::SecretKey};

/// `totp.window` of the bench config: the largest config validation accepts.
const WINDOW: u8 = 10;
/// Steps each admin uses: all accepted ones but the oldest, so a step boundary
/// crossed during the run leaves every planned code acceptable.
const STEPS_PER_ADMIN: usize = 2 * WINDOW as usize;
/// Logouts before the measurement (script loading, connection set-up).
const WARMUP: usize = 20;
/// Concurrent store calls while seeding.
const SEED_CONCURRENCY: usize = 256;
/// Errors printed in full.
const SHOWN_ERRORS: usize = 5;

struct Sizes {
    full: bool,
    timed: usize,
    accounting: usize,
    duration: Duration,
    connections: usize,
    workers: usize,
    /// `[totp] remember_seconds` of the gate.
    remember_secs: usize,
}

impl Sizes {
    fn from_env() -> Self {
        let full = std::env::args().any(|a| a == "--bench");
        let env = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let workers = env("BENCH_WORKERS", 1);
        let remember_secs = env("BENCH_REMEMBER_SECS", 0);
        if full {
            Self {
                full,
                timed: 120_000,
                accounting: 1_000,
                // Planned codes stay acceptable for 30 s after planning.
                duration: Duration::from_secs(env("BENCH_SECS", 10).min(20) as u64),
                connections: env("BENCH_CONNECTIONS", 50).max(1),
                workers,
                remember_secs,
            }
        } else {
            Self {
                full,
                timed: 400,
                accounting: 40,
                duration: Duration::from_secs(1),
                connections: 8,
                workers,
                remember_secs,
            }
        }
    }

    fn total(&self) -> usize {
        WARMUP + self.timed + self.accounting
    }

    /// Enough admins for every planned logout.
    fn admins(&self) -> usize {
        self.total().div_ceil(STEPS_PER_ADMIN)
    }
}

fn main() {
    let sizes = Sizes::from_env();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(run(&sizes));
    print!("{report}");
    if let Ok(path) = std::env::var("BENCH_LOGOUT_OUT") {
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}

/// One admin: the caller of the logouts.
struct Admin {
    id: String,
    token: String,
    secret: Vec<u8>,
}

/// One victim session, logged out by exactly one planned request.
struct Victim {
    id: String,
    token: String,
}

async fn run(sizes: &Sizes) -> String {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let key = SecretKey::generate();
    let key_file = dir.path().join("totp.key");
    std::fs::write(&key_file, key.to_hex()).expect("write totp key");

    let seeding = Instant::now();
    let (admins, victims) = seed(&redis, &key, sizes).await;
    let seed_secs = seeding.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} admins and {} victim sessions in {seed_secs:.1} s",
        admins.len(),
        victims.len()
    );

    let mut gate = Gate::start(dir.path(), &redis, &key_file, sizes).await;
    let requests = plan(&admins, &victims, gate.addr);

    let all = |range: std::ops::Range<usize>, conns| Phase {
        addr: gate.addr,
        requests: Arc::clone(&requests),
        range,
        connections: conns,
        deadline: None,
    };
    let warm = drive(all(0..WARMUP, 1), &victims).await;
    check_clean("warm-up", &warm, true);

    let before = Snapshot::take(&redis, gate.pid());
    let timed_range = WARMUP..WARMUP + sizes.timed;
    let mut timed_phase = all(timed_range, sizes.connections);
    timed_phase.deadline = Some(sizes.duration);
    let timed = drive(timed_phase, &victims).await;
    let after = Snapshot::take(&redis, gate.pid());
    let rss_kib = rss_kib(gate.pid());
    check_clean("timed run", &timed, !sizes.full);

    let monitor = Monitor::start(redis.port());
    let acct_range = WARMUP + sizes.timed..sizes.total();
    let accounting = drive(all(acct_range, sizes.connections), &victims).await;
    let seen = monitor.finish(&redis);
    check_clean("accounting run", &accounting, !sizes.full);
    gate.check_alive();

    let logged_out: Vec<usize> = [&warm, &timed, &accounting]
        .iter()
        .flat_map(|r| r.ok.iter().copied())
        .collect();
    let revoked = verify_revoked(&redis, &victims, &logged_out);

    let totp_us = (verify_cost(WINDOW), verify_cost(1));

    let figures = Figures {
        sizes,
        totp_us,
        admins: admins.len(),
        seed_secs,
        timed: &timed,
        before: &before,
        after: &after,
        rss_kib,
        accounting: &accounting,
        seen: &seen,
        logged_out: logged_out.len(),
        revoked,
    };
    figures.markdown()
}

/// Users, sealed secrets and sessions through the library's store API.
async fn seed(redis: &RedisServer, key: &SecretKey, sizes: &Sizes) -> (Vec<Admin>, Vec<Victim>) {
    let store = Store::redis(RedisOptions {
        url: redis.url(),
        command_timeout: Duration::from_secs(30),
        ..RedisOptions::default()
    })
    .expect("store");
    let admins: Vec<Admin> = (0..sizes.admins())
        .map(|i| Admin {
            id: format!("benchAdmin{i:07}"),
            token: token(),
            secret: totp::generate_secret(),
        })
        .collect();
    let victims: Vec<Victim> = (0..sizes.total())
        .map(|_| Victim {
            id: meteor_id(),
            token: token(),
        })
        .collect();
    let roles = vec!["admin".to_string()];
    stream::iter(&admins)
        .map(|admin| {
            let (store, roles) = (&store, &roles);
            async move {
                let name = format!("admin-{}", admin.id);
                store
                    .put_user(&admin.id, Some(&name), Some(roles))
                    .await
                    .expect("put admin");
                // Sealed exactly as `sessiongate totp import` does.
                let sealed = key.encrypt(&admin.id, &admin.secret).expect("seal secret");
                assert!(
                    store
                        .set_totp_secret(&admin.id, &sealed)
                        .await
                        .expect("set secret"),
                    "admin {} vanished",
                    admin.id
                );
                store
                    .add_session(&session(&meteor_id(), &admin.id, &admin.token))
                    .await
                    .expect("admin session");
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect::<()>()
        .await;
    stream::iter(victims.iter().enumerate())
        .map(|(i, victim)| {
            let store = &store;
            async move {
                let owner = format!("benchUser{:05}", i % 1000);
                store
                    .add_session(&session(&victim.id, &owner, &victim.token))
                    .await
                    .expect("victim session");
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect::<()>()
        .await;
    (admins, victims)
}

fn session(id: &str, user_id: &str, token: &str) -> SessionRecord {
    SessionRecord {
        id: id.to_string(),
        user_id: user_id.to_string(),
        token_hash: encode_hash(&hash_token(token)),
        ip: Some("10.0.0.7".into()),
        user_agent: Some("RC Mobile; iOS 17.4; v4.48.0".into()),
        device: None,
        login_at_ms: clock::unix_ms(),
        logout_at_ms: None,
        logout_by: None,
    }
}

/// A 43-character token, shaped like Rocket.Chat's.
fn token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..43)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// One request per victim. Slot-major order (every admin's first code, then
/// every admin's second, …) spreads consecutive requests over the admins;
/// every (admin, step) pair is used at most once.
///
/// Two steps of one admin can share a code (6 digits, 21 steps: about one
/// admin in 5,000): the gate then consumes the first unused step with that
/// code, so both requests still succeed.
fn plan(admins: &[Admin], victims: &[Victim], addr: SocketAddr) -> Arc<Vec<Vec<u8>>> {
    let first_step = clock::unix_secs() / totp::STEP_SECS - u64::from(WINDOW) + 1;
    let codes: Vec<Vec<String>> = admins
        .iter()
        .map(|admin| {
            (0..STEPS_PER_ADMIN as u64)
                .map(|slot| totp::code_at(&admin.secret, (first_step + slot) * totp::STEP_SECS))
                .collect()
        })
        .collect();
    let usable = (0..STEPS_PER_ADMIN).flat_map(|slot| {
        let codes = &codes;
        (0..admins.len()).map(move |a| (a, &codes[a][slot]))
    });
    let requests: Vec<Vec<u8>> = victims
        .iter()
        .zip(usable)
        .map(|(victim, (a, code))| {
            let admin = &admins[a];
            let body = format!(r#"{{"sessionId":"{}"}}"#, victim.id);
            format!(
                "POST /api/v1/sessions/logout HTTP/1.1\r\nHost: {addr}\r\n\
                 Content-Type: application/json\r\nX-User-Id: {}\r\nX-Auth-Token: {}\r\n\
                 x-2fa-code: {code}\r\nx-2fa-method: totp\r\nContent-Length: {}\r\n\r\n{body}",
                admin.id,
                admin.token,
                body.len()
            )
            .into_bytes()
        })
        .collect();
    assert_eq!(requests.len(), victims.len(), "plan needs more admins");
    Arc::new(requests)
}

/// The gate process: the real binary, its own config, logs to a file.
struct Gate {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
    /// Never accepts: logouts never go upstream when the caller is known.
    _upstream: TcpListener,
}

impl Gate {
    async fn start(dir: &Path, redis: &RedisServer, key_file: &Path, sizes: &Sizes) -> Gate {
        let (workers, remember) = (sizes.workers, sizes.remember_secs);
        let upstream = TcpListener::bind("127.0.0.1:0").expect("upstream listener");
        let upstream_addr = upstream.local_addr().expect("upstream addr");
        let addr: SocketAddr = format!("127.0.0.1:{}", redis_server::free_port())
            .parse()
            .expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", redis_server::free_port())
            .parse()
            .expect("admin addr");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\nupstream = \"http://{upstream_addr}\"\n\
                 [admin]\nlisten = \"{admin}\"\n\
                 [redis]\nurl = \"{}\"\n\
                 [logout]\ndeny_delay_ms = 0\nrate_limit_per_minute = 100\nverify_unknown_tokens = false\n\
                 [totp]\nkey_file = \"{}\"\nwindow = {WINDOW}\nremember_seconds = {remember}\n\
                 [permissions]\nlogout-device-management = [\"admin\"]\n\
                 [server]\nworkers = {workers}\ndrain_delay_ms = 0\n\
                 [log]\nformat = \"text\"\nlevel = \"info\"\n",
                redis.url(),
                key_file.display()
            ),
        )
        .expect("write config");
        let log = dir.join("gate.log");
        let out = std::fs::File::create(&log).expect("gate log");
        // `SESSIONGATE_BIN` measures another build of the same commit (the
        // profile-guided one, or an instrumented one being trained).
        let bin = std::env::var_os("SESSIONGATE_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_sessiongate").into());
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("SESSIONGATE_LOG")
            .env_remove("SESSIONGATE_TOTP_KEY")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("gate log"))
            .stderr(out)
            .spawn()
            .expect("spawn sessiongate");
        let mut gate = Gate {
            child,
            addr,
            log,
            _upstream: upstream,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !http_get_ok(admin, "/readyz") {
            gate.check_alive();
            assert!(Instant::now() < deadline, "gate not ready: {}", gate.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gate
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("sessiongate exited with {status}:\n{}", self.log());
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // SIGTERM first: the gate drains and exits (an instrumented build
        // writes its profile then); SIGKILL if it has not within 10 s.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// A slice of the planned requests, sent from `connections` keep-alive
/// connections that each take the next request as soon as one is answered.
struct Phase {
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    range: std::ops::Range<usize>,
    connections: usize,
    /// Stop taking new requests after this long (None: run the whole range).
    deadline: Option<Duration>,
}

#[derive(Default)]
struct Outcome {
    /// Indices of the requests answered with the expected 200.
    ok: Vec<usize>,
    /// Latency of every answered request, ns.
    latencies: Vec<u64>,
    errors: Vec<String>,
    elapsed: Duration,
}

async fn drive(phase: Phase, victims: &[Victim]) -> Outcome {
    let cursor = Arc::new(AtomicUsize::new(phase.range.start));
    let expected: Arc<Vec<String>> = Arc::new(
        victims
            .iter()
            .map(|v| format!(r#"{{"sessionId":"{}","success":true}}"#, v.id))
            .collect(),
    );
    let start = Instant::now();
    let deadline = phase.deadline.map(|d| start + d);
    let tasks: Vec<_> = (0..phase.connections)
        .map(|_| {
            let (cursor, expected, requests) = (
                Arc::clone(&cursor),
                Arc::clone(&expected),
                Arc::clone(&phase.requests),
            );
            let (addr, end) = (phase.addr, phase.range.end);
            tokio::spawn(async move {
                let mut out = Outcome::default();
                let mut conn = None;
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let i = cursor.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        break;
                    }
                    if conn.is_none() {
                        match HttpConn::connect(addr).await {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                out.errors.push(format!("connect: {e}"));
                                break;
                            }
                        }
                    }
                    let Some(c) = conn.as_mut() else { break };
                    let sent = Instant::now();
                    match c.exchange(&requests[i]).await {
                        Ok(answer) => {
                            out.latencies.push(sent.elapsed().as_nanos() as u64);
                            if answer.close {
                                conn = None;
                            }
                            if answer.status == 200 && answer.body == expected[i].as_bytes() {
                                out.ok.push(i);
                            } else {
                                out.errors.push(format!(
                                    "request {i}: {} {}",
                                    answer.status,
                                    String::from_utf8_lossy(&answer.body)
                                ));
                            }
                        }
                        Err(e) => {
                            out.errors.push(format!("request {i}: {e}"));
                            conn = None;
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        let out = task.await.expect("driver connection");
        total.ok.extend(out.ok);
        total.latencies.extend(out.latencies);
        total.errors.extend(out.errors);
    }
    total.elapsed = start.elapsed();
    total.latencies.sort_unstable();
    total
}

fn check_clean(what: &str, outcome: &Outcome, must: bool) {
    if outcome.errors.is_empty() {
        return;
    }
    eprintln!("{what}: {} errors, first ones:", outcome.errors.len());
    for e in outcome.errors.iter().take(SHOWN_ERRORS) {
        eprintln!("  {e}");
    }
    assert!(!must, "{what}: every logout must answer 200");
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

/// A hand-written HTTP/1.1 client connection: the driver must cost little.
struct HttpConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Answer> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        self.stream.write_all(request).await?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = response
                .parse(&self.buf)
                .map_err(|e| bad(&format!("bad response head: {e}")))?
            {
                let status = response.code.unwrap_or(0);
                let mut length = 0usize;
                let mut close = false;
                for h in response.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or_else(|| bad("bad content-length"))?;
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = h.value.eq_ignore_ascii_case(b"close");
                    }
                }
                while self.buf.len() < head_len + length {
                    self.fill().await?;
                }
                let body = self.buf[head_len..head_len + length].to_vec();
                self.buf.drain(..head_len + length);
                return Ok(Answer {
                    status,
                    body,
                    close,
                });
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// CPU and command counters, read before and after the timed run.
struct Snapshot {
    gate_cpu: Duration,
    redis_cpu: Duration,
    driver_cpu: Duration,
    /// Busy time of the whole machine (all cores), from /proc/stat.
    machine_busy: Duration,
    commands: BTreeMap<String, u64>,
}

impl Snapshot {
    fn take(redis: &RedisServer, gate_pid: u32) -> Self {
        let redis_pid = redis.pid().expect("redis pid");
        Self {
            gate_cpu: cpu_time(&gate_pid.to_string()),
            redis_cpu: cpu_time(&redis_pid.to_string()),
            driver_cpu: cpu_time("self"),
            machine_busy: machine_busy(),
            commands: command_stats(redis),
        }
    }
}

/// utime + stime of a process (all its threads), from /proc/PID/stat.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// Non-idle time of all cores: the `cpu` line of /proc/stat minus idle and iowait.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy = ticks.iter().sum::<u64>() - ticks.get(3).unwrap_or(&0) - ticks.get(4).unwrap_or(&0);
    Duration::from_secs_f64(busy as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// `INFO commandstats` as command → calls (script-internal calls included).
fn command_stats(redis: &RedisServer) -> BTreeMap<String, u64> {
    let info = redis.cmd(&["INFO", "commandstats"]);
    let text = info.text().expect("INFO reply");
    text.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// Commands Redis ran during the accounting run, by origin.
#[derive(Default)]
struct Seen {
    /// Sent by a client over the network: one round trip each.
    client: BTreeMap<String, u64>,
    /// Run by a Lua script inside Redis.
    script: BTreeMap<String, u64>,
}

/// A `MONITOR` connection read on its own thread until an end marker.
struct Monitor {
    thread: std::thread::JoinHandle<Seen>,
}

const MONITOR_END: &str = "logout-bench-monitor-end";

impl Monitor {
    fn start(port: u16) -> Self {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("monitor connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("monitor timeout");
        let mut writer = stream.try_clone().expect("monitor clone");
        writer
            .write_all(b"*1\r\n$7\r\nMONITOR\r\n")
            .expect("send MONITOR");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("MONITOR answer");
        assert_eq!(line.trim_end(), "+OK", "MONITOR refused");
        let thread = std::thread::spawn(move || {
            let mut seen = Seen::default();
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => panic!("MONITOR connection ended early"),
                    Ok(_) => {}
                }
                if line.contains(MONITOR_END) {
                    return seen;
                }
                // `+1700000000.123456 [0 127.0.0.1:40000] "evalsha" "…" …`
                // or `[0 lua]` for a command a script ran.
                let Some((origin, rest)) =
                    line.split_once('[').and_then(|(_, r)| r.split_once(']'))
                else {
                    continue;
                };
                let command = rest
                    .trim_start()
                    .split('"')
                    .nth(1)
                    .unwrap_or("")
                    .to_lowercase();
                if command == "info" {
                    continue;
                }
                let map = if origin.ends_with(" lua") {
                    &mut seen.script
                } else {
                    &mut seen.client
                };
                *map.entry(command).or_default() += 1;
            }
        });
        Self { thread }
    }

    fn finish(self, redis: &RedisServer) -> Seen {
        redis.cmd(&["ECHO", MONITOR_END]);
        self.thread.join().expect("monitor thread")
    }
}

/// µs of one in-process `totp::verify_code` with a matching code at `window`,
/// as the gate runs it (the code of the newest accepted step: every candidate
/// is computed whatever matches).
fn verify_cost(window: u8) -> f64 {
    let secret = totp::generate_secret();
    let now = clock::unix_secs();
    let code = totp::code_at(&secret, now + u64::from(window) * totp::STEP_SECS);
    let rounds = 2_000;
    let start = Instant::now();
    for _ in 0..rounds {
        let step = totp::verify_code(
            std::hint::black_box(&secret),
            std::hint::black_box(&code),
            now,
            window,
        );
        assert!(step.is_some(), "planned code must verify");
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}

/// Every victim the bench logged out must be in the revoked zset. Returns the
/// size of the set.
fn verify_revoked(redis: &RedisServer, victims: &[Victim], logged_out: &[usize]) -> usize {
    let Reply::Array(Some(members)) = redis.cmd(&["ZRANGE", "sg:revoked", "0", "-1"]) else {
        panic!("ZRANGE sg:revoked did not answer an array");
    };
    let revoked: HashSet<&str> = members.iter().filter_map(Reply::text).collect();
    let missing = logged_out
        .iter()
        .filter(|&&i| !revoked.contains(encode_hash(&hash_token(&victims[i].token)).as_str()))
        .count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} logged-out sessions are missing from the revoked set",
        logged_out.len()
    );
    // A request that failed on the driver's side may still have revoked.
    assert!(revoked.len() >= logged_out.len());
    revoked.len()
}

struct Figures<'a> {
    sizes: &'a Sizes,
    /// µs of one `totp::verify_code` at the bench's window and at window 1.
    totp_us: (f64, f64),
    admins: usize,
    seed_secs: f64,
    timed: &'a Outcome,
    before: &'a Snapshot,
    after: &'a Snapshot,
    rss_kib: u64,
    accounting: &'a Outcome,
    seen: &'a Seen,
    logged_out: usize,
    revoked: usize,
}

impl Figures<'_> {
    fn markdown(&self) -> String {
        let s = self.sizes;
        let t = self.timed;
        let n = t.ok.len().max(1) as f64;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n;
        let pct = |p: f64| {
            let l = &t.latencies;
            if l.is_empty() {
                return 0.0;
            }
            l[((l.len() as f64 * p) as usize).min(l.len() - 1)] as f64 / 1e6
        };
        let commands: BTreeMap<&str, u64> = self
            .after
            .commands
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .map(|(name, &calls)| {
                let was = self.before.commands.get(name).copied().unwrap_or(0);
                (name.as_str(), calls - was)
            })
            .filter(|&(_, delta)| delta > 0)
            .collect();
        let executed: u64 = commands.values().sum();
        let acct_n = self.accounting.ok.len().max(1) as f64;
        let round_trips: u64 = self.seen.client.values().sum();
        let script_commands: u64 = self.seen.script.values().sum();
        let timed_round_trips: u64 = commands
            .iter()
            .filter(|(name, _)| {
                self.seen.client.contains_key(**name) && !self.seen.script.contains_key(**name)
            })
            .map(|(_, calls)| calls)
            .sum();

        let mut out = String::new();
        let _ = writeln!(
            out,
            "### Logout endpoint (real Redis, real TOTP, unique sessions)\n"
        );
        let _ = writeln!(
            out,
            "- Setup: gate `[server] workers = {}`, `[totp] remember_seconds = {}`, {} keep-alive \
             HTTP/1.1 connections, {} admins (window {WINDOW}: {STEPS_PER_ADMIN} codes each), \
             audit log on; seeding took {:.1} s{}",
            s.workers,
            s.remember_secs,
            s.connections,
            self.admins,
            self.seed_secs,
            if s.full {
                ""
            } else {
                " (smoke: figures mean nothing)"
            }
        );
        let _ = writeln!(
            out,
            "- Timed run: {:.2} s, {} of {} planned logouts answered 200\n",
            t.elapsed.as_secs_f64(),
            t.ok.len(),
            s.timed
        );
        let _ = writeln!(out, "| figure | value |\n|---|---:|");
        let _ = writeln!(
            out,
            "| logouts/s | {:.0} |",
            t.ok.len() as f64 / t.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "| latency p50 / p99 / p99.9 ms | {:.3} / {:.3} / {:.3} |",
            pct(0.50),
            pct(0.99),
            pct(0.999)
        );
        let _ = writeln!(
            out,
            "| errors | {} |",
            t.errors.len() + self.accounting.errors.len()
        );
        let _ = writeln!(
            out,
            "| Redis round trips per logout (MONITOR, {} logouts) | {:.2} |",
            self.accounting.ok.len(),
            round_trips as f64 / acct_n
        );
        let _ = writeln!(
            out,
            "| Redis round trips per logout (commandstats, timed run) | {:.2} |",
            timed_round_trips as f64 / n
        );
        let _ = writeln!(
            out,
            "| Redis commands executed per logout, Lua-internal included (commandstats) | {:.2} |",
            executed as f64 / n
        );
        let _ = writeln!(
            out,
            "| gate CPU µs per logout | {:.1} |",
            per(self.after.gate_cpu.saturating_sub(self.before.gate_cpu))
        );
        let _ = writeln!(
            out,
            "| of which one TOTP verify (in-process), window {WINDOW} / window 1 | {:.1} / {:.1} µs |",
            self.totp_us.0, self.totp_us.1
        );
        let _ = writeln!(
            out,
            "| redis-server CPU µs per logout | {:.1} |",
            per(self.after.redis_cpu.saturating_sub(self.before.redis_cpu))
        );
        let _ = writeln!(
            out,
            "| load driver CPU µs per logout | {:.1} |",
            per(self.after.driver_cpu.saturating_sub(self.before.driver_cpu))
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let ours = [
            (self.after.gate_cpu, self.before.gate_cpu),
            (self.after.redis_cpu, self.before.redis_cpu),
            (self.after.driver_cpu, self.before.driver_cpu),
        ]
        .iter()
        .map(|(a, b)| a.saturating_sub(*b).as_secs_f64())
        .sum::<f64>();
        let busy = self
            .after
            .machine_busy
            .saturating_sub(self.before.machine_busy)
            .as_secs_f64();
        let _ = writeln!(
            out,
            "| machine CPU used by others during the run (of {cores} cores) | {:.0} % |",
            ((busy - ours) / (cores * t.elapsed.as_secs_f64()) * 100.0).max(0.0)
        );
        let _ = writeln!(
            out,
            "| gate RSS after the run | {:.1} MiB |",
            self.rss_kib as f64 / 1024.0
        );
        let _ = writeln!(
            out,
            "| logged-out sessions found in the revoked set | all {} (set size {}) |\n",
            self.logged_out, self.revoked
        );
        for e in t
            .errors
            .iter()
            .chain(&self.accounting.errors)
            .take(SHOWN_ERRORS)
        {
            let _ = writeln!(out, "- error: `{e}`");
        }
        let _ = writeln!(
            out,
            "Redis commands per logout in the timed run (`INFO commandstats` deltas; origin from \
             the MONITOR run: `client` = a round trip, `script` = run inside a Lua script; \
             {round_trips} round trips and {script_commands} script commands for {} logouts there):\n",
            self.accounting.ok.len()
        );
        let _ = writeln!(
            out,
            "| command | calls | per logout | origin |\n|---|---:|---:|---|"
        );
        for (name, calls) in &commands {
            let origin = match (
                self.seen.client.contains_key(*name),
                self.seen.script.contains_key(*name),
            ) {
                (true, true) => "client + script",
                (true, false) => "client",
                (false, true) => "script",
                (false, false) => "not seen in the MONITOR run",
            };
            let _ = writeln!(
                out,
                "| {name} | {calls} | {:.2} | {origin} |",
                *calls as f64 / n
            );
        }
        out
    }
}
