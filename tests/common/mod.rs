//! Shared test harness: a real in-process fake upstream, gates (the library in
//! this process on ports the OS picks, or the real `sessiongate` binary where
//! the process is what is tested), a private `redis-server`, the real CLI, and
//! small HTTP clients. Everything is torn down on drop.
#![allow(dead_code)]

pub mod bodies;
pub mod in_process;
pub mod meteor;
pub mod node;
pub mod procfs;
pub mod redis_server;
pub mod tls;
pub mod upstream;
pub mod world;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

#[allow(unused_imports)]
pub use bodies::*;
#[allow(unused_imports)]
pub use redis_server::{RedisServer, free_port};
#[allow(unused_imports)]
pub use tls::{SelfSigned, tls_connect};
#[allow(unused_imports)]
pub use upstream::FakeUpstream;
#[allow(unused_imports)]
pub use world::World;

/// A fixed 32-byte TOTP encryption key for tests (64 hex chars).
pub const TEST_TOTP_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Browsers as the tests log in with them.
pub const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36";

/// The TOTP secret the tests import for their admins (base32).
pub const SECRET_B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// The current TOTP code for [`SECRET_B32`].
pub fn code_now() -> String {
    let secret = sessiongate::totp::decode_base32_secret(SECRET_B32).expect("valid base32");
    sessiongate::totp::code_at(&secret, sessiongate::clock::unix_secs())
}

/// Poll `cond` every 10 ms until it holds or `within` passes; whether it
/// held. The one way the tests wait for something to happen.
pub async fn eventually(within: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of the sample `name_and_labels` (e.g. `name{label="x"}`) in a
/// Prometheus text exposition.
pub fn metric(metrics: &str, name_and_labels: &str) -> Option<String> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .map(|v| v.trim().to_string())
    })
}

/// `sessiongate_totp_remembered_total{endpoint=…}`.
pub fn remembered(metrics: &str, endpoint: &str) -> u64 {
    let sample = format!("sessiongate_totp_remembered_total{{endpoint=\"{endpoint}\"}} ");
    metric(metrics, &sample)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in {metrics}"))
}

fn local_free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sessiongate"))
}

/// Options for a gate.
#[derive(Clone)]
pub struct GateOptions {
    pub upstream: String,
    pub redis_url: String,
    /// Extra TOML appended to the generated config (sections allowed).
    pub extra_toml: String,
    pub env: Vec<(String, String)>,
    /// Wait for /readyz (true) or only /healthz.
    pub wait_ready: bool,
    /// Run the real binary (for signals, exit codes, its own log output);
    /// otherwise the library serves in this process, on ports the OS picks.
    pub binary: bool,
}

impl GateOptions {
    pub fn new(upstream: &str, redis_url: &str) -> Self {
        Self {
            upstream: upstream.to_string(),
            redis_url: redis_url.to_string(),
            extra_toml: String::new(),
            env: Vec::new(),
            wait_ready: true,
            binary: false,
        }
    }

    /// The real `sessiongate serve` process: for tests of what only a process
    /// has (signals, exit codes, its log output).
    pub fn binary(mut self) -> Self {
        self.binary = true;
        self
    }

    pub fn toml(mut self, extra: &str) -> Self {
        self.extra_toml.push_str(extra);
        self.extra_toml.push('\n');
        self
    }
}

/// A running gate: a `sessiongate serve` process, or the library in this
/// process (see [`GateOptions::binary`]).
pub struct Gate {
    child: Option<Child>,
    in_process: Option<in_process::InProcess>,
    /// Started once: a restart binds the same ports again.
    started: bool,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub opts: GateOptions,
}

impl Gate {
    pub async fn start(opts: GateOptions) -> Gate {
        let dir = tempfile::tempdir().expect("tempdir");
        let binary = opts.binary;
        let mut gate = Gate {
            child: None,
            in_process: None,
            started: false,
            addr: local_free_addr(),
            admin: local_free_addr(),
            dir,
            opts,
        };
        if !binary {
            gate.spawn().await;
            return gate;
        }
        // A port released by free_port can be taken again (by another test's
        // process, or as some connection's source port) before the gate binds
        // it: pick fresh ports and try again.
        for _ in 0..3 {
            match gate.try_spawn().await {
                Err(log) if log.contains("Address already in use") => {
                    gate.addr = local_free_addr();
                    gate.admin = local_free_addr();
                }
                Err(log) => panic!("sessiongate exited early: {log}"),
                Ok(()) => return gate,
            }
        }
        gate.spawn().await;
        gate
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("gate.log")
    }

    /// Everything the gate logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn write_config(&self) {
        let (base, sections) = split_top_level(&self.opts.extra_toml);
        let text = format!(
            "listen = \"{}\"\nupstream = \"{}\"\n{base}\n[admin]\nlisten = \"{}\"\n[redis]\nurl = \"{}\"\n{sections}\n",
            self.addr, self.opts.upstream, self.admin, self.opts.redis_url
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    async fn spawn(&mut self) {
        if let Err(log) = self.try_spawn().await {
            panic!("sessiongate exited early: {log}");
        }
    }

    /// Start the gate and wait until it answers; `Err(log)` if it exited.
    async fn try_spawn(&mut self) -> Result<(), String> {
        self.write_config();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        if !self.opts.binary {
            let mut env: std::collections::BTreeMap<String, String> = [(
                "SESSIONGATE_TOTP_KEY".to_string(),
                TEST_TOTP_KEY.to_string(),
            )]
            .into();
            env.extend(self.opts.env.iter().cloned());
            // The first start binds ports the OS picks (no races with other
            // tests); a restart binds the same ones again.
            let any_ports = !self.started;
            let (running, addr, admin) =
                in_process::InProcess::start(&self.config_path(), env, log, any_ports)
                    .map_err(|e| format!("{e}: {}", self.log()))?;
            self.started = true;
            self.in_process = Some(running);
            // The ports it got, so that a restart binds them again.
            (self.addr, self.admin) = (addr, admin);
            self.write_config();
        } else {
            self.spawn_binary(log);
        }
        self.wait_answering().await
    }

    fn spawn_binary(&mut self, log: std::fs::File) {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .env("SESSIONGATE_TOTP_KEY", TEST_TOTP_KEY)
            .env_remove("SESSIONGATE_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn sessiongate"));
    }

    async fn wait_answering(&mut self) -> Result<(), String> {
        let path = if self.opts.wait_ready {
            "/readyz"
        } else {
            "/healthz"
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok((200, _)) = admin_get(self.admin, path).await {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("exit {status}: {}", self.log()));
            }
            if self.in_process.as_ref().is_some_and(|g| g.exited()) {
                return Err(format!("stopped: {}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "gate not {path} in time: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        assert!(self.opts.binary, "only a binary gate has a pid");
        self.child
            .as_ref()
            .map(|c| c.id())
            .expect("a running process")
    }

    /// Send a signal (e.g. "TERM").
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// Wait for exit; returns the exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        assert!(self.opts.binary, "only a binary gate exits");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Kill and start again on the same ports and config.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn kill(&mut self) {
        if let Some(running) = self.in_process.take() {
            running.stop();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Wait until the gate's revoked set holds `n` tokens (its gauge): from
    /// then on a request with a revoked token reaches the upstream without it.
    pub async fn wait_revoked_tokens(&self, n: usize) {
        let sample = format!("sessiongate_revoked_tokens {n}");
        let known = eventually(Duration::from_secs(5), async || {
            self.metrics().await.lines().any(|l| l == sample)
        })
        .await;
        assert!(
            known,
            "the gate never learned the revocation: {}",
            self.log()
        );
    }

    pub async fn metrics(&self) -> String {
        admin_get(self.admin, "/metrics")
            .await
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

/// Run the admin CLI against a gate's config: (exit code, stdout, stderr).
pub fn cli(gate: &Gate, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(gate.config_path())
        .env("SESSIONGATE_TOTP_KEY", TEST_TOTP_KEY)
        .output()
        .expect("run sessiongate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// [`cli`] that must succeed; returns stdout.
pub fn cli_ok(gate: &Gate, args: &[&str]) -> String {
    let (code, out, err) = cli(gate, args);
    assert_eq!(code, 0, "sessiongate {args:?} failed: {err}");
    out
}

impl Drop for Gate {
    fn drop(&mut self) {
        // An in-process gate is told to stop, not waited for.
        drop(self.in_process.take());
        self.kill();
    }
}

/// Split extra TOML into top-level keys (before the first `[section]`) and the rest.
fn split_top_level(extra: &str) -> (String, String) {
    match extra
        .find("\n[")
        .map(|i| i + 1)
        .or_else(|| extra.starts_with('[').then_some(0))
    {
        Some(i) => (extra[..i].to_string(), extra[i..].to_string()),
        None => (extra.to_string(), String::new()),
    }
}

pub async fn admin_get(admin: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let req = Request::get(format!("http://{admin}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send(admin, req).await?;
    Ok((
        resp.status().as_u16(),
        String::from_utf8_lossy(resp.body()).to_string(),
    ))
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Response<Bytes>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// Build a request with a Host header for `addr`.
pub fn request(method: &str, addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
}

/// A request whose body is `body`.
pub fn with_body(builder: http::request::Builder, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    builder.body(Full::new(body.into())).unwrap()
}

/// Write raw bytes, read until the peer closes or `wait` passes without data.
/// Runs on a blocking thread so in-process servers keep running.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    raw_exchange_closed(addr, bytes, wait).await.0
}

/// Raw exchange that also reports whether the server closed the connection.
pub async fn raw_exchange_closed(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (String, bool) {
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || raw_exchange_closed_blocking(addr, &bytes, wait))
        .await
        .expect("raw exchange thread")
}

/// [`raw_exchange_closed`] for code that is already on a blocking thread.
pub fn raw_exchange_closed_blocking(
    addr: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).to_string(), closed)
}
