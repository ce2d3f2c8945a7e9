//! `sessiongate` binary: CLI → config → tracing → runtime → lib.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sessiongate::cli::{Cli, Command};
use sessiongate::commands;
use sessiongate::config::{Config, LogFormat, Overrides, ProcessEnv};

/// sysexits.h EX_CONFIG: the configuration is unusable.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = cli.config.clone();
    match cli.command {
        Command::CheckConfig => match check_config(config_path.as_deref()) {
            Ok(()) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Serve(args) => {
            let flags = Overrides {
                listen: args.listen,
                upstream: args.upstream,
                admin_listen: args.admin_listen,
                redis_url: args.redis_url,
            };
            let cfg = match Config::load(config_path.as_deref(), &ProcessEnv, &flags) {
                Ok(cfg) => cfg,
                Err(e) => return fail_config(e),
            };
            let key = match commands::load_key(&cfg, &ProcessEnv) {
                Ok(key) => key,
                Err(e) => return fail_config(e),
            };
            init_tracing(cfg.log.format, &cfg.log.level);
            block_on(cfg.server.workers, async move {
                let bound = sessiongate::app::bind(&cfg).await?;
                let store = commands::open_store(&cfg)?;
                let shutdown = sessiongate::app::shutdown_on_signals();
                sessiongate::app::run(cfg, bound, store, key, shutdown).await
            })
        }
        Command::Demo(args) => {
            init_tracing(LogFormat::Text, "warn,sessiongate::audit=info");
            block_on(0, async move {
                let shutdown = sessiongate::app::shutdown_on_signals();
                sessiongate::demo::run(args, shutdown).await
            })
        }
        Command::Probe { url } => block_on(1, async move { commands::probe(&url).await }),
        command => {
            let cfg = match Config::load(config_path.as_deref(), &ProcessEnv, &Overrides::default())
            {
                Ok(cfg) => cfg,
                Err(e) => return fail_config(e),
            };
            block_on(1, async move {
                match command {
                    Command::User(cmd) => commands::user(&cfg, cmd).await,
                    Command::Totp(cmd) => commands::totp(&cfg, &ProcessEnv, cmd).await,
                    Command::Session(cmd) => commands::session(&cfg, cmd).await,
                    Command::Revoked(cmd) => commands::revoked(&cfg, cmd).await,
                    _ => Ok(()),
                }
            })
        }
    }
}

/// The same validation `serve` does before binding, TOTP key included.
fn check_config(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cfg = Config::load(path, &ProcessEnv, &Overrides::default())?;
    commands::load_key(&cfg, &ProcessEnv)?;
    if let Some(files) = &cfg.server.tls {
        sessiongate::tls::install_crypto_provider();
        sessiongate::server::tls::ListenerCert::load(files)?;
    }
    Ok(())
}

fn fail_config(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("sessiongate: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// Run a command on a fresh runtime; errors become one line on stderr.
fn block_on<F>(workers: usize, fut: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match runtime(workers) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sessiongate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessiongate: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `workers = 1` gets a current-thread runtime: no work-stealing overhead, the
/// cheapest way to serve a sidecar's share of one core.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if workers > 0 {
            b.worker_threads(workers);
        }
        b
    };
    builder.enable_all().thread_name("sessiongate").build()
}

fn init_tracing(format: LogFormat, level: &str) {
    // Some directives panic or stall tracing-subscriber (see config/log.rs).
    let filter = std::env::var("SESSIONGATE_LOG")
        .ok()
        .filter(|directive| sessiongate::config::log_directive_is_usable(directive))
        .and_then(|directive| tracing_subscriber::EnvFilter::try_new(directive).ok())
        .map_or_else(|| tracing_subscriber::EnvFilter::try_new(level), Ok)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
