//! A gate run by the library in this process (`app::bind` + `app::run`), on
//! its own thread and runtime, listening on ports the OS picks: no port
//! races, no process start, and a blocking test cannot stall it. Logs go to
//! a file as the binary's would (a thread-local subscriber).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use sessiongate::app::{self, Shutdown};
use sessiongate::commands;
use sessiongate::config::{Config, LogFormat, Overrides};

pub struct InProcess {
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Load `config` with only `env` as the environment, bind (on ports the
    /// OS picks when `any_ports`), and serve; returns the gate's and the
    /// admin listener's addresses, or why it could not start.
    pub fn start(
        config: &Path,
        env: BTreeMap<String, String>,
        log: std::fs::File,
        any_ports: bool,
    ) -> Result<(InProcess, SocketAddr, SocketAddr), String> {
        let mut cfg =
            Config::load(Some(config), &env, &Overrides::default()).map_err(|e| e.to_string())?;
        if any_ports {
            // Set after validation, which refuses two equal addresses.
            cfg.listen.set_port(0);
            cfg.admin.listen.set_port(0);
        }
        let key = commands::load_key(&cfg, &env).map_err(|e| e.to_string())?;
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("in-process gate".into())
            .spawn(move || {
                let _log = tracing::subscriber::set_default(subscriber(&cfg, log));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let started = async {
                        let bound = app::bind(&cfg).await.map_err(|e| e.to_string())?;
                        let store = commands::open_store(&cfg).map_err(|e| e.to_string())?;
                        Ok::<_, String>((bound, store))
                    };
                    let (bound, store) = match started.await {
                        Ok(started) => started,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let addrs = (
                        bound.gate_addr().expect("gate address"),
                        bound.admin_addr().expect("admin address"),
                    );
                    let _ = tx.send(Ok(addrs));
                    if let Err(e) = app::run(cfg, bound, store, key, stop).await {
                        tracing::error!("sessiongate: {e:#}");
                    }
                });
            })
            .expect("spawn the gate's thread");
        let (gate, admin) = rx
            .recv()
            .map_err(|_| "the gate's thread ended before binding".to_string())??;
        let running = InProcess {
            shutdown,
            thread: Some(thread),
        };
        Ok((running, gate, admin))
    }

    /// Whether `app::run` returned (it only does after a shutdown or an error).
    pub fn exited(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stop without the drain delay and wait until the listeners are closed.
    pub fn stop(mut self) {
        self.shutdown.now();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // Not joined: the runtime ends with its thread.
        self.shutdown.now();
    }
}

/// What `main.rs` installs, writing to the gate's log file.
fn subscriber(cfg: &Config, log: std::fs::File) -> Box<dyn tracing::Subscriber + Send + Sync> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log));
    match cfg.log.format {
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
        LogFormat::Text => Box::new(builder.finish()),
    }
}
