//! Renders a [`Ruleset`] to the nft script that [`crate::Nft::apply`] sends and
//! `virtgate firewall show` prints.
//!
//! Why a text script for `nft -f -` and not the `nftables` crate's JSON: `nft -f` applies a
//! whole file as ONE netlink batch (a transaction the kernel commits or aborts as a whole), which
//! is the same guarantee the JSON path gives; the text is what admins know from `nft list
//! ruleset`, so the very bytes `firewall show` prints are the bytes applied, reviewable and
//! replayable by hand (`virtgate firewall show | nft -f -`); and when the kernel refuses a rule,
//! nft names the script line, which we map back to the rule (see [`crate::nft`]). Every string
//! that reaches the script is validated first ([`Ruleset::validate`]), so no configuration
//! value can inject syntax.
//!
//! Layout: `table inet NAME` (create if missing), `delete table inet NAME`, then the whole
//! table: a crash-left table from an earlier run is replaced, never merged with.
//! Three base chains, all with policy accept — virtgate never drops traffic that is not its own:
//! `input` (filter, priority filter), `forward` (filter, priority filter; packet-changing rules
//! first, then verdicts) and `postrouting` (nat, priority srcnat).
//!
//! The forward chain keeps libvirt's order for virtual networks (its `forward` chain jumps to
//! `guest_cross`, `guest_input`, `guest_output` in that order): first every network's
//! guest-to-guest accept, then every network's rules for traffic into its bridge, then those
//! for traffic out of it, then the other parts' verdicts. The rejects only match traffic that
//! enters or leaves a network's own bridge, so nothing else is ever refused.

use std::fmt::{self, Display, Write as _};
use std::net::Ipv4Addr;

use crate::error::FirewallError;
use crate::model::{
    compact_pool, network_address, AddrRange, NetForward, Part, Ruleset, DEFAULT_NAT_PORTS,
};

/// The nft script that replaces virtgate's table with `ruleset`, atomically.
pub fn render(ruleset: &Ruleset) -> Result<String, FirewallError> {
    ruleset.validate()?;
    let mut all = Contribution::default();
    for (i, part) in ruleset.parts.iter().enumerate() {
        let same_kind_before = ruleset.parts[..i]
            .iter()
            .filter(|p| p.kind() == part.kind())
            .count();
        let prefix = if same_kind_before == 0 {
            part.kind().to_string()
        } else {
            format!("{}{}", part.kind(), same_kind_before + 1)
        };
        all.extend(contribution(part, &prefix));
    }
    Ok(all.script(&ruleset.table))
}

/// The few-line script that removes `table inet NAME` if it exists (and succeeds if it does
/// not): declaring the table first makes the delete unconditional.
pub(crate) fn removal_script(table: &str) -> String {
    format!("table inet {table}\ndelete table inet {table}\n")
}

fn contribution(part: &Part, prefix: &str) -> Contribution {
    match part {
        Part::Pptp {
            listen,
            pool,
            tun,
            uplink,
            mss,
        } => pptp(*listen, pool, tun, uplink, *mss, prefix),
        Part::Network {
            name,
            bridge,
            subnet,
            prefix: len,
            forward,
        } => network(name, bridge, network_address(*subnet, *len), *len, forward),
    }
}

/// The seed's five iptables lines, as nft rules.
fn pptp(
    listen: Option<Ipv4Addr>,
    pool: &[Ipv4Addr],
    tun: &str,
    uplink: &str,
    mss: u16,
    prefix: &str,
) -> Contribution {
    let set = format!("{prefix}_pool");
    let pool_src = || Match::Saddr(Addr::Set(set.clone()));
    let pool_dst = || Match::Daddr(Addr::Set(set.clone()));
    let to_server = || listen.map(|l| Match::Daddr(Addr::Host(l)));
    let comment = |what: &str| format!("{prefix}: {what}");
    let rule = |matches: Vec<Option<Match>>, stmt, what: &str| Rule {
        matches: matches.into_iter().flatten().collect(),
        stmt,
        comment: comment(what),
    };
    Contribution {
        sets: vec![SetDef {
            name: set.clone(),
            elements: compact_pool(pool),
        }],
        input: vec![
            // iptables -A INPUT -p tcp --dport 1723 -j ACCEPT
            rule(
                vec![to_server(), Some(Match::TcpDport(1723))],
                Stmt::Accept,
                "control connections",
            ),
            // iptables -A INPUT -p gre -j ACCEPT
            rule(
                vec![to_server(), Some(Match::IpProtocol("gre"))],
                Stmt::Accept,
                "GRE",
            ),
        ],
        // iptables -A FORWARD -p tcp --syn -s POOL -j TCPMSS --set-mss 1356, but only lowering:
        // a client that already announces less keeps its value (TCPMSS --set-mss would raise it;
        // Linux's nft exthdr code refuses to raise an MSS too, the comparison says so openly).
        forward_mangle: vec![rule(
            vec![
                Some(Match::Iif(tun.to_string())),
                Some(pool_src()),
                Some(Match::TcpSyn),
                Some(Match::MssAbove(mss)),
            ],
            Stmt::SetMss(mss),
            "clamp TCP MSS",
        )],
        forward: vec![
            rule(
                vec![
                    Some(Match::Iif(tun.to_string())),
                    Some(Match::Oif(uplink.to_string())),
                    Some(pool_src()),
                ],
                Stmt::Accept,
                "clients out",
            ),
            rule(
                vec![
                    Some(Match::Iif(uplink.to_string())),
                    Some(Match::Oif(tun.to_string())),
                    Some(pool_dst()),
                    Some(Match::CtState("established,related")),
                ],
                Stmt::Accept,
                "replies in",
            ),
            // The pool is ours: nothing from outside starts a connection to a client (like
            // libvirt's NAT networks; the seed left this open by accident of policy ACCEPT).
            rule(
                vec![
                    Some(Match::Iif(uplink.to_string())),
                    Some(Match::Oif(tun.to_string())),
                    Some(pool_dst()),
                ],
                Stmt::Drop,
                "nothing else in",
            ),
        ],
        // iptables -t nat -A POSTROUTING -s POOL -o UPLINK -j MASQUERADE
        postrouting: vec![rule(
            vec![Some(Match::Oif(uplink.to_string())), Some(pool_src())],
            Stmt::Masquerade(None),
            "masquerade",
        )],
        ..Contribution::default()
    }
}

/// The longest network name a comment carries, in bytes: with "net ", ": " and the longest
/// description (40 bytes) a comment stays within nft's 128 bytes.
const COMMENT_NAME_BYTES: usize = 64;

/// A libvirt virtual network, as libvirt's nftables backend sets it up (behaviour learnt from
/// libvirt's `src/network/network_nftables.c`; the iptables backend has the same verdicts):
///
/// - every mode but `open`: guest-to-guest across the bridge accepted (with
///   `bridge-nf-call-iptables=1` bridged frames pass the forward hook with the bridge as in-
///   and output interface); anything else into or out of the bridge rejected (ICMP port
///   unreachable, libvirt's plain `reject`). The rejects carry no address family: libvirt's
///   IPv4 rules leave IPv6 alone, but it also turns IPv6 off on a bridge without IPv6
///   addresses, so in effect nothing IPv6 is routed there either — and we never route it.
/// - `nat`: out from the subnet (to the uplink if given), in only established/related;
///   masquerade TCP and UDP to source ports 1024-65535 (or `<nat><port>`), other protocols
///   plainly, SNAT instead when `<nat><address>` is given; no NAT toward 224.0.0.0/24 and
///   255.255.255.255 (bridged multicast and DHCP broadcasts also pass postrouting).
/// - `route`: out from the subnet and in to the subnet, both ways without NAT.
/// - isolated: nothing beyond the two reject rules.
/// - `open`: no rules at all.
///
/// DHCP and DNS from the bridge to the host are accepted in input. In our policy-accept table
/// that changes no verdict (libvirt's nftables backend omits them for that reason; its iptables
/// backend adds them, and TCP 67 too, which no DHCP client uses); they say in `nft list` what
/// the network needs, and the coexistence check warns when another table drops them.
/// libvirt's iptables backend also fills in DHCP reply checksums (`CHECKSUM --checksum-fill`
/// for UDP port 68); nftables has no such statement and libvirt's nftables backend drops the
/// rule, so we have none either (only DHCP clients older than 2013 need it).
fn network(name: &str, bridge: &str, net: Ipv4Addr, len: u8, forward: &NetForward) -> Contribution {
    if *forward == NetForward::Open {
        return Contribution::default();
    }
    let mut short = name;
    while short.len() > COMMENT_NAME_BYTES {
        let mut end = short.len() - 1;
        while !short.is_char_boundary(end) {
            end -= 1;
        }
        short = &short[..end];
    }
    let rule = |matches: Vec<Option<Match>>, stmt, what: &str| Rule {
        matches: matches.into_iter().flatten().collect(),
        stmt,
        comment: format!("net {short}: {what}"),
    };
    let br_in = || Some(Match::Iif(bridge.to_string()));
    let br_out = || Some(Match::Oif(bridge.to_string()));
    let subnet = || Addr::Net(net, len);
    let uplink = forward.uplink();
    let up_in = || uplink.map(|u| Match::Iif(u.to_string()));
    let up_out = || uplink.map(|u| Match::Oif(u.to_string()));

    let mut c = Contribution {
        input: vec![
            rule(
                vec![br_in(), Some(Match::UdpDport(67))],
                Stmt::Accept,
                "DHCP to the host",
            ),
            rule(
                vec![br_in(), Some(Match::UdpDport(53))],
                Stmt::Accept,
                "DNS to the host",
            ),
            rule(
                vec![br_in(), Some(Match::TcpDport(53))],
                Stmt::Accept,
                "DNS over TCP to the host",
            ),
        ],
        bridge_cross: vec![rule(
            vec![br_in(), br_out()],
            Stmt::Accept,
            "guest to guest",
        )],
        ..Contribution::default()
    };
    match forward {
        NetForward::Nat {
            ports, addresses, ..
        } => {
            c.bridge_in.push(rule(
                vec![
                    up_in(),
                    br_out(),
                    Some(Match::Daddr(subnet())),
                    Some(Match::CtState("established,related")),
                ],
                Stmt::Accept,
                "replies in",
            ));
            c.bridge_out.push(rule(
                vec![br_in(), up_out(), Some(Match::Saddr(subnet()))],
                Stmt::Accept,
                "guests out",
            ));
            let ports = ports.unwrap_or(DEFAULT_NAT_PORTS);
            let nat = |ports: Option<(u16, u16)>| match addresses {
                Some((first, last)) => Stmt::Snat {
                    first: *first,
                    last: *last,
                    ports,
                },
                None => Stmt::Masquerade(ports),
            };
            let leaving = |l4: Option<&'static str>| {
                vec![
                    up_out(),
                    l4.map(Match::L4Proto),
                    Some(Match::Saddr(subnet())),
                    Some(Match::DaddrNot(subnet())),
                ]
            };
            c.postrouting = vec![
                rule(
                    vec![
                        up_out(),
                        Some(Match::Saddr(subnet())),
                        Some(Match::Daddr(Addr::Net(Ipv4Addr::new(224, 0, 0, 0), 24))),
                    ],
                    Stmt::Return,
                    "no NAT to local multicast",
                ),
                rule(
                    vec![
                        up_out(),
                        Some(Match::Saddr(subnet())),
                        Some(Match::Daddr(Addr::Host(Ipv4Addr::BROADCAST))),
                    ],
                    Stmt::Return,
                    "no NAT to broadcast",
                ),
                rule(leaving(Some("tcp")), nat(Some(ports)), "NAT TCP"),
                rule(leaving(Some("udp")), nat(Some(ports)), "NAT UDP"),
                rule(leaving(None), nat(None), "NAT other protocols"),
            ];
        }
        NetForward::Route { .. } => {
            c.bridge_in.push(rule(
                vec![up_in(), br_out(), Some(Match::Daddr(subnet()))],
                Stmt::Accept,
                "routed in",
            ));
            c.bridge_out.push(rule(
                vec![br_in(), up_out(), Some(Match::Saddr(subnet()))],
                Stmt::Accept,
                "guests out",
            ));
        }
        NetForward::Isolated | NetForward::Open => {}
    }
    c.bridge_in
        .push(rule(vec![br_out()], Stmt::Reject, "nothing else in"));
    c.bridge_out
        .push(rule(vec![br_in()], Stmt::Reject, "nothing else out"));
    c
}

/// What one part adds to the table.
#[derive(Default)]
struct Contribution {
    sets: Vec<SetDef>,
    input: Vec<Rule>,
    /// Rules that change packets and fall through; rendered before every verdict of `forward`.
    forward_mangle: Vec<Rule>,
    /// Networks' guest-to-guest accepts (libvirt's `guest_cross`), after `forward_mangle`.
    bridge_cross: Vec<Rule>,
    /// Networks' rules for traffic into their bridges (libvirt's `guest_input`).
    bridge_in: Vec<Rule>,
    /// Networks' rules for traffic out of their bridges (libvirt's `guest_output`).
    bridge_out: Vec<Rule>,
    forward: Vec<Rule>,
    postrouting: Vec<Rule>,
}

impl Contribution {
    fn extend(&mut self, other: Contribution) {
        self.sets.extend(other.sets);
        self.input.extend(other.input);
        self.forward_mangle.extend(other.forward_mangle);
        self.bridge_cross.extend(other.bridge_cross);
        self.bridge_in.extend(other.bridge_in);
        self.bridge_out.extend(other.bridge_out);
        self.forward.extend(other.forward);
        self.postrouting.extend(other.postrouting);
    }

    fn script(&self, table: &str) -> String {
        let mut s = String::new();
        s.push_str("#!/usr/sbin/nft -f\n");
        s.push_str(
            "# virtgate's own table. nft -f applies this file as one transaction: all of it\n",
        );
        s.push_str(
            "# or nothing. Declaring the table first lets the delete replace a leftover copy.\n",
        );
        s.push_str(&removal_script(table));
        let _ = writeln!(s, "table inet {table} {{");
        for set in &self.sets {
            let _ = writeln!(s, "\tset {} {{", set.name);
            s.push_str("\t\ttype ipv4_addr\n");
            s.push_str("\t\tflags interval\n");
            let elements: Vec<String> = set.elements.iter().map(|r| r.to_string()).collect();
            let _ = writeln!(s, "\t\telements = {{ {} }}", elements.join(", "));
            s.push_str("\t}\n\n");
        }
        let forward: Vec<&Rule> = self
            .forward_mangle
            .iter()
            .chain(&self.bridge_cross)
            .chain(&self.bridge_in)
            .chain(&self.bridge_out)
            .chain(&self.forward)
            .collect();
        let input: Vec<&Rule> = self.input.iter().collect();
        let post: Vec<&Rule> = self.postrouting.iter().collect();
        chain(&mut s, "input", "filter hook input priority filter", &input);
        s.push('\n');
        chain(
            &mut s,
            "forward",
            "filter hook forward priority filter",
            &forward,
        );
        s.push('\n');
        chain(
            &mut s,
            "postrouting",
            "nat hook postrouting priority srcnat",
            &post,
        );
        s.push_str("}\n");
        s
    }
}

fn chain(s: &mut String, name: &str, hook: &str, rules: &[&Rule]) {
    let _ = writeln!(s, "\tchain {name} {{");
    let _ = writeln!(s, "\t\ttype {hook}; policy accept;");
    for r in rules {
        let _ = writeln!(s, "\t\t{r}");
    }
    s.push_str("\t}\n");
}

struct SetDef {
    name: String,
    elements: Vec<AddrRange>,
}

/// An IPv4 address operand.
enum Addr {
    Host(Ipv4Addr),
    /// A network address and prefix length (`192.168.122.0/24`).
    Net(Ipv4Addr, u8),
    /// A named set of this table.
    Set(String),
}

impl Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Host(a) => write!(f, "{a}"),
            Addr::Net(a, len) => write!(f, "{a}/{len}"),
            Addr::Set(n) => write!(f, "@{n}"),
        }
    }
}

/// `:first-last` (or `:port` for a single one) after a NAT target.
fn port_range(f: &mut fmt::Formatter<'_>, ports: Option<(u16, u16)>) -> fmt::Result {
    match ports {
        Some((first, last)) if first == last => write!(f, ":{first}"),
        Some((first, last)) => write!(f, ":{first}-{last}"),
        None => Ok(()),
    }
}

/// One match expression of a rule.
enum Match {
    Iif(String),
    Oif(String),
    Saddr(Addr),
    Daddr(Addr),
    /// `ip daddr != ADDR`
    DaddrNot(Addr),
    /// `ip protocol NAME`
    IpProtocol(&'static str),
    /// `meta l4proto NAME` (libvirt's spelling in its NAT rules)
    L4Proto(&'static str),
    TcpDport(u16),
    UdpDport(u16),
    /// `ct state LIST`
    CtState(&'static str),
    /// `tcp flags syn`: SYN set (a client's opening SYN; SYN-ACKs only answer connections from
    /// outside, which the pool never accepts).
    TcpSyn,
    /// The SYN carries an MSS option larger than this.
    MssAbove(u16),
}

impl Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Iif(n) => write!(f, "iifname \"{n}\""),
            Match::Oif(n) => write!(f, "oifname \"{n}\""),
            Match::Saddr(a) => write!(f, "ip saddr {a}"),
            Match::Daddr(a) => write!(f, "ip daddr {a}"),
            Match::DaddrNot(a) => write!(f, "ip daddr != {a}"),
            Match::IpProtocol(p) => write!(f, "ip protocol {p}"),
            Match::L4Proto(p) => write!(f, "meta l4proto {p}"),
            Match::TcpDport(p) => write!(f, "tcp dport {p}"),
            Match::UdpDport(p) => write!(f, "udp dport {p}"),
            Match::CtState(s) => write!(f, "ct state {s}"),
            Match::TcpSyn => f.write_str("tcp flags syn"),
            Match::MssAbove(m) => write!(f, "tcp option maxseg size > {m}"),
        }
    }
}

/// The statement a rule ends with.
enum Stmt {
    Accept,
    Drop,
    /// ICMP port unreachable (ICMPv6 for IPv6), nft's default reject, as libvirt's.
    Reject,
    /// Leaves the chain; in a base chain the policy (accept) decides: here "no NAT".
    Return,
    /// Masquerade, mapping the source port into the range when one is given.
    Masquerade(Option<(u16, u16)>),
    /// SNAT to `first`-`last` (one address when equal), ports as for masquerade.
    Snat {
        first: Ipv4Addr,
        last: Ipv4Addr,
        ports: Option<(u16, u16)>,
    },
    SetMss(u16),
}

impl Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::Accept => f.write_str("accept"),
            Stmt::Drop => f.write_str("drop"),
            Stmt::Reject => f.write_str("reject"),
            Stmt::Return => f.write_str("return"),
            Stmt::Masquerade(None) => f.write_str("masquerade"),
            Stmt::Masquerade(ports) => {
                f.write_str("masquerade to ")?;
                port_range(f, *ports)
            }
            Stmt::Snat { first, last, ports } => {
                // `ip`: an inet table's NAT statement must name the address family.
                write!(f, "snat ip to {first}")?;
                if first != last {
                    write!(f, "-{last}")?;
                }
                port_range(f, *ports)
            }
            Stmt::SetMss(m) => write!(f, "tcp option maxseg size set {m}"),
        }
    }
}

struct Rule {
    matches: Vec<Match>,
    stmt: Stmt,
    /// Shown by `nft list ruleset`; made only of part kinds and fixed words.
    comment: String,
}

impl Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        write!(f, "{} comment \"{}\"", self.stmt, self.comment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed: pptpd's `remoteip 192.168.0.100-200`, uplink eth0, `--set-mss 1356`.
    pub(crate) fn seed() -> Ruleset {
        Ruleset::new(vec![Part::Pptp {
            listen: None,
            pool: (100..=200).map(|i| Ipv4Addr::new(192, 168, 0, i)).collect(),
            tun: "vgt0".into(),
            uplink: "eth0".into(),
            mss: 1356,
        }])
    }

    const SEED_GOLDEN: &str = r#"#!/usr/sbin/nft -f
# virtgate's own table. nft -f applies this file as one transaction: all of it
# or nothing. Declaring the table first lets the delete replace a leftover copy.
table inet virtgate
delete table inet virtgate
table inet virtgate {
	set pptp_pool {
		type ipv4_addr
		flags interval
		elements = { 192.168.0.100-192.168.0.200 }
	}

	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 1723 accept comment "pptp: control connections"
		ip protocol gre accept comment "pptp: GRE"
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "vgt0" ip saddr @pptp_pool tcp flags syn tcp option maxseg size > 1356 tcp option maxseg size set 1356 comment "pptp: clamp TCP MSS"
		iifname "vgt0" oifname "eth0" ip saddr @pptp_pool accept comment "pptp: clients out"
		iifname "eth0" oifname "vgt0" ip daddr @pptp_pool ct state established,related accept comment "pptp: replies in"
		iifname "eth0" oifname "vgt0" ip daddr @pptp_pool drop comment "pptp: nothing else in"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" ip saddr @pptp_pool masquerade comment "pptp: masquerade"
	}
}
"#;

    #[test]
    fn seed_script_is_byte_exact() {
        assert_eq!(render(&seed()).unwrap(), SEED_GOLDEN);
    }

    #[test]
    fn listen_address_and_listed_pool() {
        let rs = Ruleset::new(vec![Part::Pptp {
            listen: Some(Ipv4Addr::new(198, 51, 100, 7)),
            pool: ["10.1.0.9", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.20"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            tun: "ppp0".into(),
            uplink: "wan".into(),
            mss: 1400,
        }]);
        let s = render(&rs).unwrap();
        assert!(
            s.contains("\t\telements = { 10.1.0.2-10.1.0.4, 10.1.0.9, 10.1.0.20 }\n"),
            "{s}"
        );
        assert!(s.contains(
            "\t\tip daddr 198.51.100.7 tcp dport 1723 accept comment \"pptp: control connections\"\n"
        ));
        assert!(
            s.contains("\t\tip daddr 198.51.100.7 ip protocol gre accept comment \"pptp: GRE\"\n")
        );
        assert!(s.contains("tcp option maxseg size > 1400 tcp option maxseg size set 1400"));
        assert!(s.contains("oifname \"wan\" ip saddr @pptp_pool masquerade"));
    }

    #[test]
    fn two_parts_of_a_kind_get_their_own_sets() {
        let mut rs = seed();
        rs.parts.push(Part::Pptp {
            listen: None,
            pool: vec![Ipv4Addr::new(10, 9, 0, 1)],
            tun: "vgt1".into(),
            uplink: "eth1".into(),
            mss: 1356,
        });
        let s = render(&rs).unwrap();
        assert!(s.contains("\tset pptp_pool {\n"));
        assert!(s.contains("\tset pptp2_pool {\n"));
        assert!(s.contains(
            "oifname \"eth1\" ip saddr @pptp2_pool masquerade comment \"pptp2: masquerade\""
        ));
        // Both clamps come before the first verdict of the forward chain.
        let fwd = &s[s.find("chain forward").unwrap()..s.find("chain postrouting").unwrap()];
        let last_clamp = fwd.rfind("clamp TCP MSS").unwrap();
        let first_accept = fwd.find("clients out").unwrap();
        assert!(last_clamp < first_accept, "{fwd}");
    }

    #[test]
    fn empty_ruleset_is_an_empty_table_and_names_are_checked() {
        let s = render(&Ruleset::new(vec![])).unwrap();
        assert!(s.contains("table inet virtgate {\n\tchain input {"));
        let mut bad = seed();
        bad.table = "virtgate; flush ruleset".into();
        assert!(matches!(render(&bad), Err(FirewallError::InvalidTable(_))));
        assert_eq!(
            removal_script("vg"),
            "table inet vg\ndelete table inet vg\n"
        );
    }

    /// The head every script starts with (the removal of a leftover copy).
    const HEAD: &str = "#!/usr/sbin/nft -f
# virtgate's own table. nft -f applies this file as one transaction: all of it
# or nothing. Declaring the table first lets the delete replace a leftover copy.
table inet virtgate
delete table inet virtgate
";

    fn net(name: &str, bridge: &str, subnet: &str, prefix: u8, forward: NetForward) -> Part {
        Part::Network {
            name: name.into(),
            bridge: bridge.into(),
            subnet: subnet.parse().unwrap(),
            prefix,
            forward,
        }
    }

    fn nat() -> NetForward {
        NetForward::Nat {
            uplink: None,
            ports: None,
            addresses: None,
        }
    }

    /// libvirt's default network: virbr0, 192.168.122.1/24, `<forward mode='nat'>`. The
    /// postrouting chain is exactly check-vmnet.sh's `--reference` (libvirt's nftables rules).
    const DEFAULT_NETWORK_TABLE: &str = r#"table inet virtgate {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "virbr0" udp dport 67 accept comment "net default: DHCP to the host"
		iifname "virbr0" udp dport 53 accept comment "net default: DNS to the host"
		iifname "virbr0" tcp dport 53 accept comment "net default: DNS over TCP to the host"
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "virbr0" oifname "virbr0" accept comment "net default: guest to guest"
		oifname "virbr0" ip daddr 192.168.122.0/24 ct state established,related accept comment "net default: replies in"
		oifname "virbr0" reject comment "net default: nothing else in"
		iifname "virbr0" ip saddr 192.168.122.0/24 accept comment "net default: guests out"
		iifname "virbr0" reject comment "net default: nothing else out"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 192.168.122.0/24 ip daddr 224.0.0.0/24 return comment "net default: no NAT to local multicast"
		ip saddr 192.168.122.0/24 ip daddr 255.255.255.255 return comment "net default: no NAT to broadcast"
		meta l4proto tcp ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade to :1024-65535 comment "net default: NAT TCP"
		meta l4proto udp ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade to :1024-65535 comment "net default: NAT UDP"
		ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade comment "net default: NAT other protocols"
	}
}
"#;

    #[test]
    fn nat_network_is_byte_exact() {
        let rs = Ruleset::new(vec![net("default", "virbr0", "192.168.122.1", 24, nat())]);
        assert_eq!(
            render(&rs).unwrap(),
            format!("{HEAD}{DEFAULT_NETWORK_TABLE}")
        );
        // The bridge's own address or the network address: the same rules.
        let by_net = Ruleset::new(vec![net("default", "virbr0", "192.168.122.0", 24, nat())]);
        assert_eq!(render(&by_net).unwrap(), render(&rs).unwrap());
    }

    #[test]
    fn routed_network_with_uplink_is_byte_exact() {
        let rs = Ruleset::new(vec![net(
            "lab",
            "virbr5",
            "10.20.30.1",
            24,
            NetForward::Route {
                uplink: Some("eth1".into()),
            },
        )]);
        let table = r#"table inet virtgate {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "virbr5" udp dport 67 accept comment "net lab: DHCP to the host"
		iifname "virbr5" udp dport 53 accept comment "net lab: DNS to the host"
		iifname "virbr5" tcp dport 53 accept comment "net lab: DNS over TCP to the host"
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "virbr5" oifname "virbr5" accept comment "net lab: guest to guest"
		iifname "eth1" oifname "virbr5" ip daddr 10.20.30.0/24 accept comment "net lab: routed in"
		oifname "virbr5" reject comment "net lab: nothing else in"
		iifname "virbr5" oifname "eth1" ip saddr 10.20.30.0/24 accept comment "net lab: guests out"
		iifname "virbr5" reject comment "net lab: nothing else out"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
"#;
        assert_eq!(render(&rs).unwrap(), format!("{HEAD}{table}"));
    }

    #[test]
    fn isolated_network_is_byte_exact() {
        let rs = Ruleset::new(vec![net(
            "lab",
            "virbr5",
            "10.20.30.1",
            24,
            NetForward::Isolated,
        )]);
        let table = r#"table inet virtgate {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "virbr5" udp dport 67 accept comment "net lab: DHCP to the host"
		iifname "virbr5" udp dport 53 accept comment "net lab: DNS to the host"
		iifname "virbr5" tcp dport 53 accept comment "net lab: DNS over TCP to the host"
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "virbr5" oifname "virbr5" accept comment "net lab: guest to guest"
		oifname "virbr5" reject comment "net lab: nothing else in"
		iifname "virbr5" reject comment "net lab: nothing else out"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
"#;
        assert_eq!(render(&rs).unwrap(), format!("{HEAD}{table}"));
    }

    #[test]
    fn open_network_adds_no_rules_at_all() {
        let open = Ruleset::new(vec![net(
            "lab",
            "virbr5",
            "10.20.30.1",
            24,
            NetForward::Open,
        )]);
        let empty = r#"table inet virtgate {
	chain input {
		type filter hook input priority filter; policy accept;
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
"#;
        assert_eq!(render(&open).unwrap(), format!("{HEAD}{empty}"));
        // Still validated: an open network with a bad bridge name is refused.
        let bad = Ruleset::new(vec![net("lab", "a b", "10.20.30.1", 24, NetForward::Open)]);
        assert!(matches!(
            render(&bad),
            Err(FirewallError::InvalidInterface { .. })
        ));
    }

    /// PPTP and four networks (NAT with uplink, ports and SNAT addresses; routed; isolated;
    /// open) in one table: tests/data/networks.nft, which is also what `nft list` prints back
    /// after applying it (tests/netns.rs).
    pub(crate) fn everything() -> Ruleset {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let mut parts = seed().parts;
        parts.extend([
            net(
                "default",
                "virbr0",
                "192.168.122.1",
                24,
                NetForward::Nat {
                    uplink: Some("eth0".into()),
                    ports: Some((2000, 3000)),
                    addresses: Some((a("203.0.113.5"), a("203.0.113.6"))),
                },
            ),
            net(
                "routed",
                "virbr1",
                "10.1.0.1",
                16,
                NetForward::Route { uplink: None },
            ),
            net("lan", "virbr2", "10.2.0.1", 24, NetForward::Isolated),
            net("open", "virbr3", "10.3.0.1", 24, NetForward::Open),
        ]);
        Ruleset::new(parts)
    }

    #[test]
    fn pptp_and_every_mode_in_one_table_is_byte_exact() {
        assert_eq!(
            render(&everything()).unwrap(),
            include_str!("../tests/data/networks.nft")
        );
    }

    #[test]
    fn forward_chain_keeps_libvirts_cross_in_out_order() {
        let s = render(&everything()).unwrap();
        let fwd = &s[s.find("chain forward").unwrap()..s.find("chain postrouting").unwrap()];
        let at = |what: &str| fwd.find(what).unwrap_or_else(|| panic!("{what}: {fwd}"));
        // The MSS clamp changes packets and falls through: before every verdict.
        assert!(at("clamp TCP MSS") < at("net default: guest to guest"));
        // Every network's guest-to-guest accept, then every "in", then every "out".
        assert!(at("net lan: guest to guest") < at("net default: replies in"));
        assert!(at("net lan: nothing else in") < at("net default: guests out"));
        assert!(at("net default: replies in") < at("net default: nothing else in"));
        assert!(at("net routed: guests out") < at("net routed: nothing else out"));
        assert!(at("net lan: nothing else out") < at("pptp: clients out"));
        // Every reject names a bridge: nobody else's traffic is refused.
        for line in fwd.lines().filter(|l| l.contains(" reject ")) {
            assert!(
                line.trim_start().starts_with("oifname \"virbr")
                    || line.trim_start().starts_with("iifname \"virbr"),
                "{line}"
            );
        }
        assert!(!s.contains("virbr3"), "open network has rules: {s}");
    }

    #[test]
    fn nat_ports_and_addresses() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let post = |forward| {
            let s = render(&Ruleset::new(vec![net("n", "br0", "10.0.0.1", 8, forward)])).unwrap();
            s[s.find("chain postrouting").unwrap()..]
                .lines()
                .filter(|l| l.contains("NAT"))
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            post(NetForward::Nat {
                uplink: Some("wan".into()),
                ports: Some((4000, 4000)),
                addresses: Some((a("198.51.100.9"), a("198.51.100.9"))),
            }),
            [
                "oifname \"wan\" ip saddr 10.0.0.0/8 ip daddr 224.0.0.0/24 return comment \"net n: no NAT to local multicast\"",
                "oifname \"wan\" ip saddr 10.0.0.0/8 ip daddr 255.255.255.255 return comment \"net n: no NAT to broadcast\"",
                "oifname \"wan\" meta l4proto tcp ip saddr 10.0.0.0/8 ip daddr != 10.0.0.0/8 snat ip to 198.51.100.9:4000 comment \"net n: NAT TCP\"",
                "oifname \"wan\" meta l4proto udp ip saddr 10.0.0.0/8 ip daddr != 10.0.0.0/8 snat ip to 198.51.100.9:4000 comment \"net n: NAT UDP\"",
                "oifname \"wan\" ip saddr 10.0.0.0/8 ip daddr != 10.0.0.0/8 snat ip to 198.51.100.9 comment \"net n: NAT other protocols\"",
            ]
        );
        let masq = post(NetForward::Nat {
            uplink: None,
            ports: Some((30000, 40000)),
            addresses: None,
        });
        assert!(masq[2].contains(" masquerade to :30000-40000 "), "{masq:?}");
        assert!(masq[4].ends_with(" masquerade comment \"net n: NAT other protocols\""));
    }

    #[test]
    fn long_names_fit_nfts_comment_limit() {
        // 64 Cyrillic letters: 128 bytes, which virtgate-config accepts as a name.
        let name: String = std::iter::repeat_n('ж', 64).collect();
        let rs = Ruleset::new(vec![net(&name, "virbr9", "10.9.0.1", 24, nat())]);
        let s = render(&rs).unwrap();
        let mut comments = 0;
        for line in s.lines() {
            if let Some(at) = line.find("comment \"") {
                let comment = &line[at + 9..line.len() - 1];
                assert!(comment.len() <= 128, "{} bytes: {comment}", comment.len());
                assert!(comment.starts_with(&format!("net {}", "ж".repeat(32))));
                comments += 1;
            }
        }
        assert_eq!(comments, 13);
        // The longest description with a 64-byte name still fits.
        let ascii = "n".repeat(64);
        let s = render(&Ruleset::new(vec![net(
            &ascii,
            "virbr9",
            "10.9.0.1",
            24,
            nat(),
        )]))
        .unwrap();
        assert!(s.contains(&format!(
            "comment \"net {ascii}: no NAT to local multicast\""
        )));
        assert!(s.lines().all(|l| l.len() < 300));
    }
}
