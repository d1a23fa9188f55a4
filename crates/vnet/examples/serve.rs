//! Runs one network from a libvirt XML file until SIGTERM or SIGINT, with its firewall rules:
//! the library on its own against the real-peer check, ahead of (or beside) the daemon.
//!
//! ```text
//! cargo build -p virtgate-vnet --example serve
//! ../shared/realpeer/check-vmnet.sh -- \
//!     sh -c 'exec target/debug/examples/serve "$RV_NETWORK_XML" "$RV_STATE_DIR"'
//! ```
//!
//! The network is defined in `STATE/networks/` first (as the daemon does), so a restart keeps
//! its generated MAC and UUID.

use std::path::PathBuf;
use std::process::ExitCode;

use virtgate_config::NetworkDef;
use virtgate_firewall::{Firewall, FirewallConfig, Nft, Ruleset};
use virtgate_vnet::{Network, NetworkOptions, Store};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut args = std::env::args_os().skip(1);
    let (Some(xml), Some(state)) = (args.next(), args.next()) else {
        eprintln!("usage: serve NETWORK.xml STATE_DIR");
        return ExitCode::from(2);
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(PathBuf::from(xml), PathBuf::from(state))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(xml: PathBuf, state: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let (def, warnings) = NetworkDef::read(&xml)?.into_parts();
    for w in warnings {
        eprintln!("{w}");
    }
    let links = virtgate_links::Links::new()?;
    let store = Store::open(&state)?;
    let def = store.define(def, &links).await?;
    let net = Network::start(def, &state, NetworkOptions::default()).await?;
    let parts = net.firewall_part().into_iter().collect();
    let firewall = match Firewall::start(
        &FirewallConfig::default(),
        &Nft::new(),
        &Ruleset::new(parts),
    ) {
        Ok(fw) => fw,
        Err(e) => {
            net.stop().await?;
            return Err(e.into());
        }
    };
    eprintln!("serve: network '{}' up on {}", net.name(), net.bridge());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    if let Ok(leases) = net.leases().await {
        for l in leases {
            eprintln!(
                "serve: lease {} {} {}",
                l.mac,
                l.ip,
                l.hostname.as_deref().unwrap_or("-")
            );
        }
    }
    if let Ok(s) = net.stats().await {
        eprintln!("serve: {s:?}");
    }
    let stopped = net.stop().await;
    if let Some(fw) = firewall {
        fw.stop()?;
    }
    stopped?;
    Ok(())
}
