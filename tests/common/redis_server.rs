//! A private `redis-server` process per test.
//!
//! Each [`RedisServer`] runs the real binary (`$REDIS_SERVER`, else
//! `redis-server` on PATH) on a free loopback port (never 6379: a shared Redis
//! may live there) in its own temporary directory, and is SIGKILLed on drop.
//! Tests can kill, pause (SIGSTOP), resume and restart it on the same port and
//! directory, and talk to it with [`RedisServer::cmd`] (a tiny RESP client, so
//! tests need neither `redis-cli` nor the `redis` crate).
//!
//! The methods block briefly (process start, readiness polling); that is fine
//! inside `#[tokio::test]`.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// `--appendonly yes --appendfsync always`: data survives `kill` + `restart`.
    pub appendonly: bool,
    /// Serve TLS only (`--port 0 --tls-port`), with a fresh CA and a
    /// certificate for `127.0.0.1` / `localhost`; see [`RedisServer::ca_file`].
    pub tls: bool,
    /// Run as a Sentinel monitoring `(master_name, master_port)` with quorum 1
    /// and a 1 s down-after.
    pub sentinel_of: Option<(String, u16)>,
    /// Extra `redis-server` arguments, e.g. `["--requirepass", "pw"]`.
    pub args: Vec<String>,
}

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    config: ServerConfig,
    /// Arguments added by the last `restart_with` (replaced on each restart).
    restart_args: Vec<String>,
}

/// A decoded RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (status or bulk), for terse assertions.
    pub fn text(&self) -> Option<&str> {
        match self {
            Reply::Status(s) | Reply::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            _ => None,
        }
    }
}

impl RedisServer {
    /// A plain, non-persistent server.
    pub fn start() -> Self {
        Self::start_with(ServerConfig::default())
    }

    /// A server whose data survives [`RedisServer::kill`] + [`RedisServer::restart`].
    pub fn start_persistent() -> Self {
        Self::start_with(ServerConfig {
            appendonly: true,
            ..ServerConfig::default()
        })
    }

    pub fn start_with(config: ServerConfig) -> Self {
        let mut last_log = String::new();
        // A free port can be taken between probing and binding: retry.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir for redis-server");
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                dir,
                config: config.clone(),
                restart_args: Vec::new(),
            };
            if server.config.tls {
                server.make_certificates();
            }
            match server.spawn() {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("redis-server did not start:\n{last_log}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis://127.0.0.1:<port>/0` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.config.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The CA certificate (PEM) of a TLS server.
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("ca.crt")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the port stays open but nothing answers (a hung Redis).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Kill if running, then start again on the same port and directory.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Like [`RedisServer::restart`], with extra arguments for this run only.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.kill();
        self.restart_args = args.iter().map(|s| s.to_string()).collect();
        let deadline = Instant::now() + READY_TIMEOUT;
        // The old socket may linger for a moment after SIGKILL.
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(log) if Instant::now() > deadline => {
                    panic!("redis-server did not restart on port {}:\n{log}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Send one command and read its reply.
    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.try_cmd(None, args)
            .unwrap_or_else(|e| panic!("redis command {args:?} on port {}: {e}", self.port))
    }

    /// Send `AUTH password` and then one command on a fresh connection.
    pub fn cmd_auth(&self, password: &str, args: &[&str]) -> Reply {
        self.try_cmd(Some(password), args)
            .unwrap_or_else(|e| panic!("redis command {args:?} on port {}: {e}", self.port))
    }

    fn try_cmd(&self, password: Option<&str>, args: &[&str]) -> std::io::Result<Reply> {
        assert!(!self.config.tls, "cmd() speaks plain TCP only");
        let stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        if let Some(password) = password {
            writer.write_all(&encode(&["AUTH", password]))?;
            read_reply(&mut reader)?;
        }
        writer.write_all(&encode(args))?;
        let reply = read_reply(&mut reader);
        let _ = writer.shutdown(Shutdown::Both);
        reply
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("redis-server is not running");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    fn spawn(&mut self) -> Result<(), String> {
        assert_ne!(self.port, 6379, "never touch the shared Redis");
        let log = self.dir().join("redis.log");
        let _ = std::fs::remove_file(&log);
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut command = Command::new(binary);
        command.current_dir(self.dir());
        if let Some((name, master_port)) = &self.config.sentinel_of {
            let conf = self.dir().join("sentinel.conf");
            if !conf.exists() {
                let text = format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n\
                     sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 3000\n\
                     sentinel parallel-syncs {name} 1\n",
                    port = self.port,
                    dir = self.dir().display(),
                    log = log.display(),
                );
                std::fs::write(&conf, text).expect("write sentinel.conf");
            }
            command.arg(&conf).arg("--sentinel");
        } else {
            let port = self.port.to_string();
            if self.config.tls {
                command.args(["--port", "0", "--tls-port", &port]);
                command.args([
                    "--tls-cert-file",
                    "server.crt",
                    "--tls-key-file",
                    "server.key",
                ]);
                command.args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"]);
            } else {
                command.args(["--port", &port]);
            }
            command.args(["--bind", "127.0.0.1", "--save", ""]);
            command.arg("--dir").arg(self.dir());
            command.arg("--logfile").arg(&log);
            if self.config.appendonly {
                command.args(["--appendonly", "yes", "--appendfsync", "always"]);
            } else {
                command.args(["--appendonly", "no"]);
            }
        }
        command.args(&self.config.args).args(&self.restart_args);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server (set REDIS_SERVER?): {e}"))?;
        self.child = Some(child);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(why) => {
                self.kill();
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                Err(format!("{why}\n{log}"))
            }
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("redis-server exited: {status}"));
                }
            }
            let ready = if self.config.tls {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                // PING answers while an AOF is still loading; EXISTS does
                // not (`-LOADING`), so it says the data is really there.
                // Any other error (NOAUTH, CLUSTERDOWN before the cluster
                // forms, a Sentinel's unknown command) means it is up.
                // Redis checks AUTH before LOADING: a password-protected
                // server says NOAUTH while it loads, so ask with the password.
                let password = self.requirepass();
                match self.try_cmd(password.as_deref(), &["EXISTS", "sessiongate-test-ready"]) {
                    Ok(Reply::Int(_)) => true,
                    Ok(Reply::Error(e)) => !e.starts_with("LOADING"),
                    _ => false,
                }
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("redis-server did not answer PING in time".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `--requirepass` value this server was started with, if any.
    fn requirepass(&self) -> Option<String> {
        let args: Vec<&String> = self.config.args.iter().chain(&self.restart_args).collect();
        args.windows(2)
            .rev()
            .find(|pair| pair[0] == "--requirepass")
            .map(|pair| pair[1].clone())
    }

    fn make_certificates(&self) {
        let dir = self.dir();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=sessiongate test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        ];
        for args in steps {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now (the OS picks it; never 6379).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if port != 6379 {
            return port;
        }
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(rest.parse().map_err(|_| bad("integer"))?),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| bad("bulk length"))?;
            if len < 0 {
                Reply::Bulk(None)
            } else {
                let mut buf = vec![0; usize::try_from(len).map_err(|_| bad("len"))? + 2];
                reader.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
            }
        }
        "*" => {
            let len: i64 = rest.parse().map_err(|_| bad("array length"))?;
            if len < 0 {
                Reply::Array(None)
            } else {
                let items = (0..len)
                    .map(|_| read_reply(reader))
                    .collect::<std::io::Result<Vec<_>>>()?;
                Reply::Array(Some(items))
            }
        }
        _ => return Err(bad("unknown reply type")),
    })
}
