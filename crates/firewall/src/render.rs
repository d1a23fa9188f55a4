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

use std::fmt::{self, Display, Write as _};
use std::net::Ipv4Addr;

use crate::error::FirewallError;
use crate::model::{compact_pool, AddrRange, Part, Ruleset};

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
            Stmt::Masquerade,
            "masquerade",
        )],
    }
}

/// What one part adds to the table.
#[derive(Default)]
struct Contribution {
    sets: Vec<SetDef>,
    input: Vec<Rule>,
    /// Rules that change packets and fall through; rendered before every verdict of `forward`.
    forward_mangle: Vec<Rule>,
    forward: Vec<Rule>,
    postrouting: Vec<Rule>,
}

impl Contribution {
    fn extend(&mut self, other: Contribution) {
        self.sets.extend(other.sets);
        self.input.extend(other.input);
        self.forward_mangle.extend(other.forward_mangle);
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
        let forward: Vec<&Rule> = self.forward_mangle.iter().chain(&self.forward).collect();
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
    /// A named set of this table.
    Set(String),
}

impl Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Host(a) => write!(f, "{a}"),
            Addr::Set(n) => write!(f, "@{n}"),
        }
    }
}

/// One match expression of a rule.
enum Match {
    Iif(String),
    Oif(String),
    Saddr(Addr),
    Daddr(Addr),
    /// `ip protocol NAME`
    IpProtocol(&'static str),
    TcpDport(u16),
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
            Match::IpProtocol(p) => write!(f, "ip protocol {p}"),
            Match::TcpDport(p) => write!(f, "tcp dport {p}"),
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
    Masquerade,
    SetMss(u16),
}

impl Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::Accept => f.write_str("accept"),
            Stmt::Drop => f.write_str("drop"),
            Stmt::Masquerade => f.write_str("masquerade"),
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
}
