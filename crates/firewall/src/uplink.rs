//! The uplink: the interface of the IPv4 default route, unless configured (the seed's
//! `-o eth0`). Read from /proc/net/route, which shows the main routing table of the calling
//! process's network namespace.

use std::path::Path;

use crate::error::FirewallError;
use crate::model::validate_ifname;

/// Where the kernel lists IPv4 routes.
pub const PROC_NET_ROUTE: &str = "/proc/net/route";

/// RTF_UP from linux/route.h.
const RTF_UP: u32 = 0x0001;

/// The interface of the default route (destination and mask 0.0.0.0) in /proc/net/route text,
/// the one with the lowest metric when there are several (the kernel's choice too); `None` when
/// there is no usable default route. Lines it does not understand are skipped.
pub fn parse_default_route(proc_net_route: &str) -> Option<String> {
    let mut best: Option<(u32, &str)> = None;
    // First line is the header: Iface Destination Gateway Flags RefCnt Use Metric Mask MTU ...
    for line in proc_net_route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(iface), Some(dest), Some(flags), Some(metric), Some(mask)) =
            (f.first(), f.get(1), f.get(3), f.get(6), f.get(7))
        else {
            continue;
        };
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dest), Some(flags), Some(mask)) = (hex(dest), hex(flags), hex(mask)) else {
            continue;
        };
        let Ok(metric) = metric.parse::<u32>() else {
            continue;
        };
        if dest != 0 || mask != 0 || flags & RTF_UP == 0 || validate_ifname(iface).is_err() {
            continue;
        }
        if best.is_none_or(|(m, _)| metric < m) {
            best = Some((metric, iface));
        }
    }
    best.map(|(_, iface)| iface.to_string())
}

/// The default route's interface in this network namespace.
pub fn default_uplink() -> Result<String, FirewallError> {
    default_uplink_from(Path::new(PROC_NET_ROUTE))
}

/// Same, reading another file in /proc/net/route's format.
pub fn default_uplink_from(path: &Path) -> Result<String, FirewallError> {
    let text = std::fs::read_to_string(path).map_err(|source| FirewallError::RouteTable {
        path: path.to_path_buf(),
        source,
    })?;
    parse_default_route(&text).ok_or(FirewallError::NoDefaultRoute)
}

/// The configured uplink (checked), or else the default route's interface.
pub fn resolve(configured: Option<&str>) -> Result<String, FirewallError> {
    match configured {
        Some(name) => {
            validate_ifname(name)?;
            Ok(name.to_string())
        }
        None => default_uplink(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    #[test]
    fn picks_the_default_route() {
        let text = format!(
            "{HEADER}\
             eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
             eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        );
        assert_eq!(parse_default_route(&text).as_deref(), Some("eth0"));
    }

    #[test]
    fn lowest_metric_wins_and_down_routes_are_ignored() {
        let text = format!(
            "{HEADER}\
             wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
             enp3s0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             down0\t00000000\t0100A8C0\t0002\t0\t0\t1\t00000000\t0\t0\t0\n"
        );
        assert_eq!(parse_default_route(&text).as_deref(), Some("enp3s0"));
    }

    #[test]
    fn no_default_route_or_garbage() {
        let only_lan =
            format!("{HEADER}eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
        assert_eq!(parse_default_route(&only_lan), None);
        assert_eq!(parse_default_route(""), None);
        assert_eq!(parse_default_route(HEADER), None);
        let garbage = format!("{HEADER}eth0 zz\n\n\t\nx\t00000000\t0\tnothex\t0\t0\t0\t0\n");
        assert_eq!(parse_default_route(&garbage), None);
    }

    #[test]
    fn from_a_file_and_configured_names() {
        let dir = std::env::temp_dir().join(format!("vgt-fw-route-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("route");
        std::fs::write(
            &p,
            format!("{HEADER}up0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"),
        )
        .unwrap();
        assert_eq!(default_uplink_from(&p).unwrap(), "up0");
        std::fs::write(&p, HEADER).unwrap();
        assert!(matches!(
            default_uplink_from(&p),
            Err(FirewallError::NoDefaultRoute)
        ));
        assert!(default_uplink_from(&dir.join("absent")).is_err());
        assert_eq!(resolve(Some("wan0")).unwrap(), "wan0");
        assert!(resolve(Some("bad name")).is_err());
    }
}
