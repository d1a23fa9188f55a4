//! virtgate: a PPTP VPN server (a drop-in for poptop pptpd + pppd, entirely in userspace) and
//! client. This binary is the tokio glue over the sans-IO crates: TUN, raw GRE socket, TCP 1723,
//! routes, firewall, CLI. See ARCHITECTURE.md.

mod abuse;
mod caps;
mod cli;
mod conffile;
mod control;
mod daemon;
mod dial;
mod dial_load;
mod error;
mod fw;
mod link;
mod mss;
mod net;
mod networks;
mod ops;
mod pool;
mod ports;
mod radius;
mod settings;
mod table;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand, FirewallCommand};
use control::{Request, Response, Target};
use error::DaemonError;

fn main() -> ExitCode {
    // Called as virtgate-ifup@NETWORK (QEMU's script=), the binary runs `qemu-ifup`.
    let cli = Cli::parse_from(ports::wrapper_argv(std::env::args_os()));
    if matches!(cli.command, Command::Daemon(_)) {
        // Held until the daemon's handlers exist (see stop_signals): a stop signal in between
        // waits instead of ending the process half-way through creating bridges.
        set_stop_signals_blocked(true);
    }
    let file_log = match &cli.command {
        Command::Daemon(a) => a.config.config.as_deref().and_then(conffile::log_filter),
        _ => None,
    };
    init_logging(cli.log_level.as_deref().or(file_log.as_deref()));
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
        Command::Daemon(mut args) => {
            let loaded = settings::load(&args.config)?;
            if let Some(file) = &loaded.file {
                conffile::apply_daemon(&mut args, file);
            }
            let plan = args.networks.read()?;
            let opts = daemon::Options {
                config: args.config.clone(),
                socket: args.socket.socket.clone(),
                metrics: args.metrics,
                hooks: ops::Hooks {
                    ip_up: args.ip_up.clone(),
                    ip_down: args.ip_down.clone(),
                },
                networks: None,
                abuse: args.abuse.limits(),
                drop_capabilities: !args.keep_capabilities,
            };
            let rt = runtime()?;
            rt.block_on(async move {
                // From here SIGTERM and SIGINT no longer end the process where it stands: a
                // signal during start-up stops what was started, and exits 0.
                let (stop, signals) = stop_signals()?;
                // Networks first, then one ruleset with every part; the networks' handle owns
                // the firewall from here on (it replaces the table as networks start and stop).
                let started = networks::start(
                    plan,
                    |parts| {
                        if args.no_firewall {
                            tracing::info!("--no-firewall: leaving nftables and ip_forward alone");
                            fw::remove_leftover();
                            Ok(None)
                        } else {
                            fw::start(&loaded, args.config.uplink.as_deref(), parts).map(Some)
                        }
                    },
                    stop.clone(),
                )
                .await;
                let nets = match started {
                    Ok(networks::Startup::Running(nets)) => nets,
                    Ok(networks::Startup::Interrupted(signal)) => {
                        signals.abort();
                        tracing::info!("{signal}: stopped during start-up; nothing left running");
                        return Ok(());
                    }
                    Err(e) => {
                        signals.abort();
                        return Err(e);
                    }
                };
                let opts = daemon::Options {
                    networks: Some(nets.clone()),
                    ..opts
                };
                // daemon::run installs its own handlers while it starts; a stop signal that
                // came before them is passed on until the daemon has taken it.
                let relay = tokio::spawn(relay_stop(stop));
                let r = daemon::run(loaded, opts).await;
                relay.abort();
                signals.abort();
                nets.shutdown().await;
                r
            })
        }
        Command::Firewall {
            command: FirewallCommand::Show(args),
        } => {
            let loaded = settings::load(&args.config)?;
            let mut args = args;
            if let Some(file) = &loaded.file {
                conffile::apply_networks(&mut args.networks, &file.networks);
                if args.config.uplink.is_none() {
                    args.config.uplink = file.daemon.uplink.clone();
                }
            }
            let networks = args.networks.read()?.planned_parts();
            print!(
                "{}",
                fw::show(&loaded, args.config.uplink.as_deref(), networks)?
            );
            Ok(())
        }
        // Load mode runs its own epoll loop on this thread (no tokio: one engine, no tasks).
        Command::Dial(args) if args.load.load.is_some() => dial_load::run(&args),
        Command::Dial(args) => runtime()?.block_on(dial::run(args)),
        Command::Status(a) => {
            let r = control::request(&a.socket.socket, &Request::Status)?;
            if let Response::Status(s) = &r {
                if a.json {
                    println!("{}", json(&r));
                } else {
                    print!("{}", control::status_text(s));
                }
            }
            Ok(())
        }
        Command::Sessions(a) => {
            let req = Request::Sessions {
                user: a.user.clone(),
            };
            let r = control::request(&a.socket.socket, &req)?;
            if let Response::Sessions { sessions } = &r {
                if a.json {
                    println!("{}", json(&r));
                } else {
                    print!("{}", control::sessions_table(sessions));
                }
            }
            Ok(())
        }
        Command::Terminate(a) => {
            let target = match (a.user, a.ip, a.id) {
                (Some(u), _, _) => Target::User(u),
                (_, Some(ip), _) => Target::Ip(ip),
                (_, _, Some(id)) => Target::Id(id),
                _ => Target::All,
            };
            let r = control::request(&a.socket.socket, &Request::Terminate { target })?;
            if a.json {
                println!("{}", json(&r));
            }
            match r {
                Response::Terminated { sessions: 0 } => Err(DaemonError::NothingMatched),
                Response::Terminated { sessions } if !a.json => {
                    println!("{sessions} session(s) hanging up");
                    Ok(())
                }
                _ => Ok(()),
            }
        }
        Command::Reload(a) => {
            let r = control::request(&a.socket.socket, &Request::Reload)?;
            if a.json {
                println!("{}", json(&r));
            } else if let Response::Reloaded { warnings } = r {
                for w in warnings {
                    eprintln!("virtgate: warning: {w}");
                }
                println!("configuration reloaded");
            }
            Ok(())
        }
        Command::Net { command } => networks::run_command(command),
        Command::Ports(command) => ports::run(command),
        Command::HashPassword => {
            hash_password();
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check(a),
        } => {
            let s = settings::load(&a.config)?;
            println!(
                "configuration OK: {} users in {}, {} pool addresses, server address {}, MTU {}",
                s.secrets.entries().len(),
                s.secrets.path().display(),
                s.pool.len(),
                s.local_ip,
                s.mtu
            );
            if let Some(file) = &s.file {
                // The networks the file names must parse too.
                let mut n = crate::networks::NetworkArgs {
                    network_xml: Vec::new(),
                    state_dir: std::path::PathBuf::from(networks::DEFAULT_STATE_DIR),
                    no_default_network: false,
                };
                conffile::apply_networks(&mut n, &file.networks);
                n.read()?;
                println!(
                    "networks: {} libvirt XML file(s) OK{}",
                    n.network_xml.len(),
                    if n.no_default_network {
                        ""
                    } else {
                        ", plus the built-in default"
                    }
                );
            }
            Ok(())
        }
    }
}

fn json(r: &Response) -> String {
    control::encode(r).trim_end().to_string()
}

/// `virtgate hash-password`: one line from standard input (the terminal's echo off while it is
/// typed) → `nthash:<32 hex>` on standard output.
fn hash_password() {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut saved: Option<libc::termios> = None;
    if tty {
        eprint!("Password: ");
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios the kernel filled in.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) == 0 {
                saved = Some(t);
                t.c_lflag &= !libc::ECHO;
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores what tcgetattr returned.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        eprintln!();
    }
    if let Err(e) = r {
        eprintln!("virtgate: cannot read the password: {e}");
        std::process::exit(1);
    }
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        eprintln!("virtgate: empty password: type it (or pipe it) on standard input");
        std::process::exit(1);
    }
    let hash = virtgate_ppp::mschap::nt_password_hash(pw);
    println!("{}", virtgate_config::chap_secrets::nt_hash_secret(&hash));
}

/// Takes SIGTERM, SIGINT and SIGHUP away from their default action (ending the process, which would
/// leave bridges and the firewall table behind) for the daemon's whole life: the first one
/// received is published on the returned channel, which [`networks::start`] reads between
/// networks. The task runs until aborted.
fn stop_signals() -> Result<(networks::StopSignal, tokio::task::JoinHandle<()>), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    // SIGHUP (reload) during start-up would end the process too; the configuration being
    // started is the one just read, so it is received here and dropped (daemon::run takes
    // SIGHUP from there on).
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    // Handlers exist: a signal held since main() is delivered to them now.
    set_stop_signals_blocked(false);
    let (tx, rx) = tokio::sync::watch::channel(None);
    let task = tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => continue,
            };
            tx.send_if_modified(|seen| {
                let first = seen.is_none();
                if first {
                    *seen = Some(name);
                }
                first
            });
        }
    });
    Ok((rx, task))
}

/// Blocks (or unblocks) SIGTERM, SIGINT and SIGHUP for the calling thread; threads started
/// meanwhile inherit the mask, and child processes start with an empty one (std resets it).
fn set_stop_signals_blocked(blocked: bool) {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use; pthread_sigmask only
    // changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Once a stop signal has arrived, raises it again every 200 ms until aborted (when
/// `daemon::run` returns). A signal that came after the networks started but before
/// `daemon::run` installed its own handlers reaches nobody else (tokio hands a signal only to
/// the listeners that exist when it arrives); the daemon's stop ignores repeats.
async fn relay_stop(mut stop: networks::StopSignal) {
    let signo = match stop.wait_for(Option::is_some).await.map(|seen| *seen) {
        Ok(Some("SIGINT")) => libc::SIGINT,
        Ok(_) => libc::SIGTERM,
        Err(_) => return,
    };
    loop {
        // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
        unsafe { libc::kill(libc::getpid(), signo) };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
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
