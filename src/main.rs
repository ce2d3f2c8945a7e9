//! `sessiongate` binary: CLI → config → tracing → runtime → lib.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sessiongate::cli::{Cli, Command};
use sessiongate::config::{Config, LogFormat, Overrides, ProcessEnv};

/// sysexits.h EX_CONFIG: the configuration is unusable.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig => {
            match Config::load(cli.config.as_deref(), &ProcessEnv, &Overrides::default()) {
                Ok(_) => {
                    println!("ok");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Serve(args) => {
            let flags = Overrides {
                listen: args.listen,
                upstream: args.upstream,
                admin_listen: args.admin_listen,
                redis_url: args.redis_url,
            };
            let cfg = match Config::load(cli.config.as_deref(), &ProcessEnv, &flags) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("sessiongate: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_tracing(cfg.log.format, &cfg.log.level);
            let runtime = match runtime(cfg.server.workers) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sessiongate: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                let bound = match sessiongate::app::bind(&cfg).await {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("sessiongate: {e}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                };
                let shutdown = sessiongate::app::shutdown_on_signals();
                match sessiongate::app::run(cfg, bound, shutdown).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("sessiongate: {e:#}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        _ => {
            eprintln!("sessiongate: command not available yet");
            ExitCode::FAILURE
        }
    }
}

fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().thread_name("sessiongate").build()
}

fn init_tracing(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SESSIONGATE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
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
