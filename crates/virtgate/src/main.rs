//! virtgate: a PPTP VPN server (a drop-in for poptop pptpd + pppd, entirely in userspace) and
//! client. This binary is the tokio glue over the sans-IO crates: TUN, raw GRE socket, TCP 1723,
//! routes, firewall, CLI. See ARCHITECTURE.md.

mod cli;
mod daemon;
mod dial;
mod error;
mod fw;
mod link;
mod mss;
mod net;
mod pool;
mod settings;
mod table;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, FirewallCommand};
use error::DaemonError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(DaemonError::Config(e)) => {
            // Exactly `path:line: what — how to fix`.
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(e @ DaemonError::Refused { .. }) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("virtgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), DaemonError> {
    match cli.command {
        Command::Daemon(args) => {
            let loaded = settings::load(&args.config)?;
            let rt = runtime()?;
            rt.block_on(async move {
                let firewall = if args.no_firewall {
                    tracing::info!("--no-firewall: leaving nftables and ip_forward alone");
                    fw::remove_leftover();
                    None
                } else {
                    Some(fw::start(&loaded, args.config.uplink.as_deref())?)
                };
                let r = daemon::run(loaded).await;
                if let Some(f) = firewall {
                    f.stop();
                }
                r
            })
        }
        Command::Firewall {
            command: FirewallCommand::Show(args),
        } => {
            let loaded = settings::load(&args.config)?;
            print!("{}", fw::show(&loaded, args.config.uplink.as_deref())?);
            Ok(())
        }
        Command::Dial(args) => runtime()?.block_on(dial::run(args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, DaemonError> {
    // One thread: the engine is a single task and owns all state; the TCP reader/writer tasks
    // are light. Sharding (issue 8) would run one engine per worker thread.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(level.unwrap_or("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
