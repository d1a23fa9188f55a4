//! `--config virtgate.toml`: the file's daemon-wide sections fill in what the command line left
//! at its default. The PPTP parts (pptpd.conf, pppd options, secrets) are read by
//! [`crate::settings::load`], which also re-reads them on reload.

use std::path::Path;

use virtgate_config::{ConfigFile, DaemonSection, LimitsSection, NetworksSection};

use crate::cli::{AbuseArgs, DaemonArgs, DEFAULT_SOCKET};
use crate::networks::{NetworkArgs, DEFAULT_STATE_DIR};
use crate::settings::SingleSession;

/// Fills `args` from the file: a flag given on the command line (one that differs from its
/// default) wins over the file.
pub fn apply_daemon(args: &mut DaemonArgs, file: &ConfigFile) {
    let d: &DaemonSection = &file.daemon;
    if args.socket.socket == Path::new(DEFAULT_SOCKET) {
        if let Some(s) = &d.socket {
            args.socket.socket = s.clone();
        }
    }
    if args.metrics.is_none() {
        args.metrics = d.metrics;
    }
    if args.ip_up.is_none() {
        args.ip_up = d.ip_up.clone();
    }
    if args.ip_down.is_none() {
        args.ip_down = d.ip_down.clone();
    }
    if d.firewall == Some(false) {
        args.no_firewall = true;
    }
    if args.config.uplink.is_none() {
        args.config.uplink = d.uplink.clone();
    }
    if d.keep_capabilities == Some(true) {
        args.keep_capabilities = true;
    }
    apply_networks(&mut args.networks, &file.networks);
    apply_limits(&mut args.abuse, &file.limits);
}

/// `[limits]`: each key applies where the flag was left at its default.
pub fn apply_limits(a: &mut AbuseArgs, l: &LimitsSection) {
    let d = default_abuse();
    fn set<T: PartialEq + Copy>(flag: &mut T, default: T, file: Option<T>) {
        if *flag == default {
            if let Some(v) = file {
                *flag = v;
            }
        }
    }
    set(&mut a.lockout_user, d.lockout_user, l.lockout_user);
    set(&mut a.lockout_source, d.lockout_source, l.lockout_source);
    set(&mut a.lockout_window, d.lockout_window, l.lockout_window);
    set(&mut a.lockout_time, d.lockout_time, l.lockout_time);
    set(&mut a.conn_rate, d.conn_rate, l.conn_rate);
    set(&mut a.conn_burst, d.conn_burst, l.conn_burst);
    set(&mut a.max_sessions, d.max_sessions, l.max_sessions);
    set(
        &mut a.max_sessions_per_user,
        d.max_sessions_per_user,
        l.max_sessions_per_user,
    );
    let single = l.single_session.as_deref().map(|s| match s {
        "deny" => SingleSession::Deny,
        "replace" => SingleSession::Replace,
        _ => SingleSession::Off,
    });
    set(&mut a.single_session, d.single_session, single);
}

/// The flags' defaults, as clap has them.
fn default_abuse() -> AbuseArgs {
    use clap::Parser;
    match crate::cli::Cli::parse_from(["virtgate", "daemon"]).command {
        crate::cli::Command::Daemon(a) => a.abuse,
        _ => unreachable!("`virtgate daemon` parses as the daemon command"),
    }
}

/// `[networks]`: the file's XML files come after the command line's.
pub fn apply_networks(args: &mut NetworkArgs, n: &NetworksSection) {
    args.network_xml.extend(n.xml.iter().cloned());
    if args.state_dir == Path::new(DEFAULT_STATE_DIR) {
        if let Some(s) = &n.state_dir {
            args.state_dir = s.clone();
        }
    }
    if n.default == Some(false) {
        args.no_default_network = true;
    }
}

/// The `[daemon] log` filter, read before logging starts (so without the other files). Errors
/// are left for the full read to report.
pub fn log_filter(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    ConfigFile::parse_with(&text, path, &mut virtgate_config::NoFiles)
        .ok()
        .and_then(|p| p.value.daemon.log)
        .or_else(|| peek_log(&text))
}

/// When the full parse fails for want of the files it names (NoFiles), the log key is still
/// worth honouring: look at `[daemon]` alone.
fn peek_log(text: &str) -> Option<String> {
    let mut in_daemon = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_daemon = l == "[daemon]";
        } else if in_daemon {
            if let Some(v) = l.strip_prefix("log") {
                let v = v.trim_start().strip_prefix('=')?.trim();
                return Some(v.trim_matches(|c| c == '"' || c == '\'').to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn daemon_args(argv: &[&str]) -> DaemonArgs {
        let mut v = vec!["virtgate", "daemon"];
        v.extend_from_slice(argv);
        match crate::cli::Cli::parse_from(v).command {
            crate::cli::Command::Daemon(a) => a,
            _ => unreachable!(),
        }
    }

    fn file(text: &str) -> ConfigFile {
        ConfigFile::parse_with(text, "/etc/virtgate/v.toml", &mut virtgate_config::NoFiles)
            .unwrap()
            .value
    }

    #[test]
    fn the_file_fills_what_the_command_line_left_at_its_default() {
        let f = file(
            "[daemon]\nsocket = \"/run/x.sock\"\nmetrics = \"127.0.0.1:9\"\nfirewall = false\n\
             uplink = \"up0\"\nip_up = \"/bin/up\"\n[networks]\nxml = \"/n.xml\"\n\
             state_dir = \"/var/x\"\ndefault = false\n",
        );
        let mut a = daemon_args(&[]);
        apply_daemon(&mut a, &f);
        assert_eq!(a.socket.socket, Path::new("/run/x.sock"));
        assert_eq!(a.metrics, Some("127.0.0.1:9".parse().unwrap()));
        assert!(a.no_firewall);
        assert_eq!(a.config.uplink.as_deref(), Some("up0"));
        assert_eq!(a.ip_up.as_deref(), Some(Path::new("/bin/up")));
        assert_eq!(
            a.networks.network_xml,
            vec![Path::new("/n.xml").to_path_buf()]
        );
        assert_eq!(a.networks.state_dir, Path::new("/var/x"));
        assert!(a.networks.no_default_network);

        let mut a = daemon_args(&[
            "--socket",
            "/s",
            "--metrics",
            "127.0.0.1:1",
            "--uplink",
            "eth9",
            "--state-dir",
            "/st",
            "--network-xml",
            "/a.xml",
        ]);
        apply_daemon(&mut a, &f);
        assert_eq!(a.socket.socket, Path::new("/s"));
        assert_eq!(a.metrics, Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(a.config.uplink.as_deref(), Some("eth9"));
        assert_eq!(a.networks.state_dir, Path::new("/st"));
        assert_eq!(a.networks.network_xml.len(), 2);
    }

    #[test]
    fn limits_fill_the_flags_left_at_their_defaults() {
        let f = file(
            "[limits]\nlockout_user = 2\nconn_rate = \"off\"\nmax_sessions = 9\n\
             single_session = \"replace\"\n[daemon]\nkeep_capabilities = true\n",
        );
        let mut a = daemon_args(&[]);
        apply_daemon(&mut a, &f);
        let l = a.abuse.limits();
        assert_eq!(l.user_failures, 2);
        assert_eq!(l.conn_rate_per_min, 0);
        assert_eq!(l.max_sessions, 9);
        assert_eq!(l.source_failures, 20, "untouched: the default");
        assert_eq!(l.single_session, SingleSession::Replace);
        assert!(a.keep_capabilities);
        let mut a = daemon_args(&["--lockout-user", "7", "--single-session", "deny"]);
        apply_daemon(&mut a, &f);
        assert_eq!(a.abuse.limits().user_failures, 7);
        assert_eq!(a.abuse.limits().single_session, SingleSession::Deny);
    }

    #[test]
    fn log_filter_is_found_even_when_named_files_are_missing() {
        let dir = std::env::temp_dir().join(format!("vg-conffile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("v.toml");
        std::fs::write(
            &p,
            "[daemon]\nlog = \"debug\"\n[pptp]\npptpd_conf = \"/nonexistent\"\n",
        )
        .unwrap();
        assert_eq!(log_filter(&p).as_deref(), Some("debug"));
        std::fs::write(&p, "[daemon]\ntun = \"x\"\n").unwrap();
        assert_eq!(log_filter(&p), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
