//! Coexistence: other programs' tables that would drop virtgate's traffic.
//!
//! In nftables every base chain on a hook sees the packet: an `accept` in our table does not
//! stop Docker's `ip filter FORWARD` (policy drop) or firewalld's final `reject` from dropping
//! it. We never edit those tables; instead we walk their input and forward base chains, over the
//! JSON of `nft -j list ruleset`, with a few typical packets of ours ("probes": a PPTP SYN to
//! port 1723, a GRE packet, a client's new flow out, a reply in; for a virtual network a DHCP
//! request and a DNS query to the host, a guest-to-guest packet across the bridge and, by forward
//! mode, new flows out and replies or routed flows in), and for every chain that would
//! drop one we return a [`Warning`] naming the table, chain and verdict and the exact rule the
//! admin should add.
//!
//! The walk follows jump/goto/return and decides a rule only when it can prove every match of
//! it for the probe (interface names, IPv4 addresses and prefixes, protocols, ports, ct state);
//! a rule with anything else (`ct status`, `limit`, iptables' `xt` matches, ...) is skipped, and a
//! verdict map makes the answer "unknown" (no warning). So a warning can be a false alarm only
//! where an accept rule used a match we do not read; a chain we cannot read is never reported.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::error::FirewallError;
use crate::model::{compact_pool, network_address, NetForward, Part, Ruleset};

/// Another table's base chain that would drop some of our traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `ip` or `inet`.
    pub family: String,
    pub table: String,
    pub chain: String,
    /// `input` or `forward`.
    pub hook: String,
    /// Which of our traffic, in words.
    pub traffic: String,
    /// What drops it: `policy drop`, or a rule (`chain X rule handle N: reject`).
    pub verdict: String,
    /// Commands that would let it through, the first one in nft syntax.
    pub fix: Vec<String>,
    /// Something the admin should know about that table.
    pub note: Option<&'static str>,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {} {} chain {} (hook {}) drops {} ({}); add: {}",
            self.family,
            self.table,
            self.chain,
            self.hook,
            self.traffic,
            self.verdict,
            self.fix.join("  or: ")
        )?;
        if let Some(n) = self.note {
            write!(f, " ({n})")?;
        }
        Ok(())
    }
}

/// Warnings for every other table's input/forward base chain that would drop traffic of
/// `ours`. `ruleset_json` is the output of `nft -j list ruleset`; our own table in it is skipped.
pub fn coexistence_warnings(
    ruleset_json: &str,
    ours: &Ruleset,
) -> Result<Vec<Warning>, FirewallError> {
    let doc: Value =
        serde_json::from_str(ruleset_json).map_err(|e| FirewallError::Json(e.to_string()))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| FirewallError::Json("no \"nftables\" array".into()))?;
    let chains = Chains::collect(items);
    let probes: Vec<Probe> = ours.parts.iter().flat_map(probes).collect();
    let mut out = Vec::new();
    for base in &chains.bases {
        if base.family == "inet" && base.table == ours.table {
            continue;
        }
        for probe in probes.iter().filter(|p| p.hook == base.hook) {
            if let Outcome::Dropped(verdict) = chains.walk(base, probe) {
                out.push(warning(&chains, base, probe, verdict));
            }
        }
    }
    Ok(out)
}

fn warning(chains: &Chains, base: &ChainKey, probe: &Probe, verdict: String) -> Warning {
    // Docker asks admins to put their rules in DOCKER-USER (FORWARD jumps there first, and
    // Docker re-creates FORWARD's own rules on restart).
    let target = if base.hook == "forward"
        && base.name == "FORWARD"
        && chains.rules.contains_key(&(
            base.family.clone(),
            base.table.clone(),
            "DOCKER-USER".into(),
        )) {
        "DOCKER-USER"
    } else {
        base.name.as_str()
    };
    let mut fix = vec![format!(
        "nft insert rule {} {} {} {}",
        base.family, base.table, target, probe.nft_rule
    )];
    // Tables of iptables-nft (Docker, ufw, hand-written iptables) are better changed with
    // iptables itself.
    let iptables_nft = base.family == "ip"
        && base.table == "filter"
        && target.bytes().all(|b| !b.is_ascii_lowercase());
    if iptables_nft {
        fix.push(format!("iptables -I {target} {}", probe.iptables_rule));
    }
    let note = (base.table == "firewalld").then_some(
        "firewalld rewrites this table on reload: make the change in firewalld's configuration too",
    );
    Warning {
        family: base.family.clone(),
        table: base.table.clone(),
        chain: base.name.clone(),
        hook: base.hook.clone(),
        traffic: probe.what.clone(),
        verdict,
        fix,
        note,
    }
}

/// A typical packet of ours.
#[derive(Clone)]
struct Probe {
    hook: &'static str,
    what: String,
    iif: Option<String>,
    oif: Option<String>,
    saddr: Option<Ipv4Addr>,
    daddr: Option<Ipv4Addr>,
    /// (name, number) of the layer-4 protocol.
    l4: (&'static str, u8),
    dport: Option<u16>,
    /// The conntrack state the packet has.
    ct: &'static str,
    nft_rule: String,
    iptables_rule: String,
}

fn probes(part: &Part) -> Vec<Probe> {
    match part {
        Part::Pptp {
            listen,
            pool,
            tun,
            uplink,
            ..
        } => {
            let client = compact_pool(pool).first().map(|r| r.first);
            let to = listen.map(|l| format!("ip daddr {l} ")).unwrap_or_default();
            let to_ipt = listen.map(|l| format!("-d {l} ")).unwrap_or_default();
            let base = Probe {
                hook: "input",
                what: String::new(),
                iif: None,
                oif: None,
                saddr: None,
                daddr: *listen,
                l4: ("tcp", 6),
                dport: None,
                ct: "new",
                nft_rule: String::new(),
                iptables_rule: String::new(),
            };
            vec![
                Probe {
                    what: "PPTP control connections (TCP 1723)".into(),
                    dport: Some(1723),
                    nft_rule: format!("{to}tcp dport 1723 accept"),
                    iptables_rule: format!("{to_ipt}-p tcp --dport 1723 -j ACCEPT"),
                    ..base.clone()
                },
                Probe {
                    what: "PPTP data (GRE)".into(),
                    l4: ("gre", 47),
                    nft_rule: format!("{to}ip protocol gre accept"),
                    iptables_rule: format!("{to_ipt}-p gre -j ACCEPT"),
                    ..base.clone()
                },
                Probe {
                    hook: "forward",
                    what: format!("PPTP clients' new connections out ({tun} -> {uplink})"),
                    iif: Some(tun.clone()),
                    oif: Some(uplink.clone()),
                    saddr: client,
                    daddr: None,
                    nft_rule: format!("iifname \"{tun}\" oifname \"{uplink}\" accept"),
                    iptables_rule: format!("-i {tun} -o {uplink} -j ACCEPT"),
                    ..base.clone()
                },
                Probe {
                    hook: "forward",
                    what: format!("replies to PPTP clients ({uplink} -> {tun})"),
                    iif: Some(uplink.clone()),
                    oif: Some(tun.clone()),
                    saddr: None,
                    daddr: client,
                    ct: "established",
                    nft_rule: format!(
                        "iifname \"{uplink}\" oifname \"{tun}\" ct state established,related accept"
                    ),
                    iptables_rule: format!(
                        "-i {uplink} -o {tun} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
                    ),
                    ..base
                },
            ]
        }
        Part::Network {
            name,
            bridge,
            subnet,
            prefix,
            forward,
        } => network_probes(name, bridge, *subnet, *prefix, forward),
    }
}

/// A virtual network's traffic: DHCP and DNS to the host, guest to guest across the bridge
/// (bridged frames pass the forward hook with `bridge-nf-call-iptables=1`, so Docker's FORWARD
/// policy drop cuts guests off from each other), and for NAT/route the forwarded flows.
fn network_probes(
    name: &str,
    bridge: &str,
    subnet: Ipv4Addr,
    prefix: u8,
    forward: &NetForward,
) -> Vec<Probe> {
    if *forward == NetForward::Open {
        return Vec::new(); // libvirt adds no rules for it: the admin decides, we claim nothing
    }
    let prefix = prefix.min(32); // unvalidated input must not underflow the shifts below
    let net = network_address(subnet, prefix);
    let cidr = format!("{net}/{prefix}");
    // Two guest addresses of the subnet (its first hosts; on a /31 or /32 the addresses there).
    let host = |n: u32| {
        let size = 1u32.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Ipv4Addr::from(u32::from(net).wrapping_add(n.min(size.saturating_sub(1))))
    };
    let (guest, other_guest) = (host(2), host(3));
    // The bridge's own address when the part was given it (libvirt's <ip address>).
    let bridge_addr = (subnet != net).then_some(subnet);
    let uplink = forward.uplink();
    let of = format!("guests of network {name}");
    let base = Probe {
        hook: "input",
        what: String::new(),
        iif: Some(bridge.to_string()),
        oif: None,
        saddr: Some(guest),
        daddr: bridge_addr,
        l4: ("udp", 17),
        dport: None,
        ct: "new",
        nft_rule: String::new(),
        iptables_rule: String::new(),
    };
    let mut out = vec![
        Probe {
            what: format!("DHCP requests from {of} ({bridge})"),
            saddr: Some(Ipv4Addr::UNSPECIFIED),
            daddr: Some(Ipv4Addr::BROADCAST),
            dport: Some(67),
            nft_rule: format!("iifname \"{bridge}\" udp dport 67 accept"),
            iptables_rule: format!("-i {bridge} -p udp --dport 67 -j ACCEPT"),
            ..base.clone()
        },
        Probe {
            what: format!("DNS queries from {of} ({bridge})"),
            dport: Some(53),
            nft_rule: format!("iifname \"{bridge}\" udp dport 53 accept"),
            iptables_rule: format!("-i {bridge} -p udp --dport 53 -j ACCEPT"),
            ..base.clone()
        },
        Probe {
            hook: "forward",
            what: format!("traffic between {of} ({bridge})"),
            oif: Some(bridge.to_string()),
            daddr: Some(other_guest),
            l4: ("tcp", 6),
            nft_rule: format!("iifname \"{bridge}\" oifname \"{bridge}\" accept"),
            iptables_rule: format!("-i {bridge} -o {bridge} -j ACCEPT"),
            ..base.clone()
        },
    ];
    let (up_nft_in, up_nft_out) = match uplink {
        Some(u) => (format!("iifname \"{u}\" "), format!(" oifname \"{u}\"")),
        None => (String::new(), String::new()),
    };
    let (up_ipt_in, up_ipt_out) = match uplink {
        Some(u) => (format!("-i {u} "), format!(" -o {u}")),
        None => (String::new(), String::new()),
    };
    let (to, from) = match uplink {
        Some(u) => (format!("{bridge} -> {u}"), format!("{u} -> {bridge}")),
        None => (bridge.to_string(), bridge.to_string()),
    };
    let forwarded = Probe {
        hook: "forward",
        l4: ("tcp", 6),
        ..base
    };
    if matches!(forward, NetForward::Nat { .. } | NetForward::Route { .. }) {
        out.push(Probe {
            what: format!("new connections out from {of} ({to})"),
            oif: uplink.map(str::to_string),
            daddr: None,
            nft_rule: format!("iifname \"{bridge}\"{up_nft_out} ip saddr {cidr} accept"),
            iptables_rule: format!("-i {bridge}{up_ipt_out} -s {cidr} -j ACCEPT"),
            ..forwarded.clone()
        });
    }
    let inbound = Probe {
        iif: uplink.map(str::to_string),
        oif: Some(bridge.to_string()),
        saddr: None,
        daddr: Some(guest),
        ..forwarded
    };
    match forward {
        NetForward::Nat { .. } => out.push(Probe {
            what: format!("replies to {of} ({from})"),
            ct: "established",
            nft_rule: format!(
                "{up_nft_in}oifname \"{bridge}\" ip daddr {cidr} ct state established,related accept"
            ),
            iptables_rule: format!(
                "{up_ipt_in}-o {bridge} -d {cidr} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
            ),
            ..inbound
        }),
        NetForward::Route { .. } => out.push(Probe {
            what: format!("connections routed to {of} ({from})"),
            nft_rule: format!("{up_nft_in}oifname \"{bridge}\" ip daddr {cidr} accept"),
            iptables_rule: format!("{up_ipt_in}-o {bridge} -d {cidr} -j ACCEPT"),
            ..inbound
        }),
        NetForward::Isolated | NetForward::Open => {}
    }
    out
}

/// (family, table, chain)
type Key = (String, String, String);

/// A base chain of family ip/inet, type filter, hook input or forward.
struct ChainKey {
    family: String,
    table: String,
    name: String,
    hook: String,
    policy_drop: bool,
}

struct Rule<'a> {
    handle: Option<u64>,
    expr: &'a [Value],
}

struct Chains<'a> {
    bases: Vec<ChainKey>,
    rules: HashMap<Key, Vec<Rule<'a>>>,
}

enum Outcome {
    Accepted,
    Dropped(String),
    Unknown,
}

/// What one rule does to the probe.
enum Step<'a> {
    /// Not matched (or not provably matched): next rule.
    Next,
    Accept,
    Drop(&'static str),
    Jump(&'a str),
    Goto(&'a str),
    Return,
    /// A verdict we cannot follow (verdict map, queue, ...).
    Unknown,
}

/// Tri-state match result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

impl<'a> Chains<'a> {
    fn collect(items: &'a [Value]) -> Chains<'a> {
        let mut bases = Vec::new();
        let mut rules: HashMap<Key, Vec<Rule<'a>>> = HashMap::new();
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        for item in items {
            if let Some(c) = item.get("chain") {
                let (Some(family), Some(table), Some(name)) =
                    (s(c, "family"), s(c, "table"), s(c, "name"))
                else {
                    continue;
                };
                rules
                    .entry((family.clone(), table.clone(), name.clone()))
                    .or_default();
                let hook = s(c, "hook").unwrap_or_default();
                let filter = s(c, "type").as_deref() == Some("filter");
                let ipv4 = family == "ip" || family == "inet";
                if filter && ipv4 && (hook == "input" || hook == "forward") {
                    bases.push(ChainKey {
                        family,
                        table,
                        name,
                        hook,
                        policy_drop: s(c, "policy").as_deref() == Some("drop"),
                    });
                }
            } else if let Some(r) = item.get("rule") {
                let (Some(family), Some(table), Some(chain)) =
                    (s(r, "family"), s(r, "table"), s(r, "chain"))
                else {
                    continue;
                };
                let expr = r.get("expr").and_then(Value::as_array).map(Vec::as_slice);
                rules.entry((family, table, chain)).or_default().push(Rule {
                    handle: r.get("handle").and_then(Value::as_u64),
                    expr: expr.unwrap_or(&[]),
                });
            }
        }
        Chains { bases, rules }
    }

    /// Runs `probe` through `base` as the kernel would, as far as we can tell.
    fn walk(&self, base: &ChainKey, probe: &Probe) -> Outcome {
        let key = |name: &str| (base.family.clone(), base.table.clone(), name.to_string());
        let mut stack: Vec<(String, usize)> = Vec::new();
        let mut current = (base.name.clone(), 0usize);
        // The kernel allows 16 nested jumps; the step bound guards against goto loops.
        for _ in 0..10_000 {
            let Some(rules) = self.rules.get(&key(&current.0)) else {
                return Outcome::Unknown;
            };
            let Some(rule) = rules.get(current.1) else {
                match stack.pop() {
                    Some(back) => {
                        current = back;
                        continue;
                    }
                    None => return self.policy(base),
                }
            };
            current.1 += 1;
            match step(rule.expr, probe) {
                Step::Next => {}
                Step::Accept => return Outcome::Accepted,
                Step::Drop(how) => {
                    let handle = rule
                        .handle
                        .map(|h| format!(" handle {h}"))
                        .unwrap_or_default();
                    return Outcome::Dropped(format!("chain {} rule{handle}: {how}", current.0));
                }
                Step::Jump(target) => {
                    if stack.len() >= 16 {
                        return Outcome::Unknown;
                    }
                    stack.push(current.clone());
                    current = (target.to_string(), 0);
                }
                Step::Goto(target) => current = (target.to_string(), 0),
                Step::Return => match stack.pop() {
                    Some(back) => current = back,
                    None => return self.policy(base),
                },
                Step::Unknown => return Outcome::Unknown,
            }
        }
        Outcome::Unknown
    }

    fn policy(&self, base: &ChainKey) -> Outcome {
        if base.policy_drop {
            Outcome::Dropped("policy drop".into())
        } else {
            Outcome::Accepted
        }
    }
}

fn step<'a>(expr: &'a [Value], probe: &Probe) -> Step<'a> {
    let mut all_true = true;
    let mut verdict = Step::Next;
    for e in expr {
        let Some((kind, body)) = e.as_object().and_then(|o| o.iter().next()) else {
            all_true = false;
            continue;
        };
        let target = || body.get("target").and_then(Value::as_str);
        match kind.as_str() {
            "match" => match eval_match(body, probe) {
                Tri::True => {}
                Tri::False => return Step::Next,
                Tri::Unknown => all_true = false,
            },
            // Statements that change nothing about the verdict.
            "counter" | "log" | "comment" | "notrack" | "mangle" => {}
            "accept" => verdict = Step::Accept,
            "drop" => verdict = Step::Drop("drop"),
            "reject" => verdict = Step::Drop("reject"),
            "return" => verdict = Step::Return,
            "continue" => verdict = Step::Next,
            "jump" => verdict = target().map_or(Step::Unknown, Step::Jump),
            "goto" => verdict = target().map_or(Step::Unknown, Step::Goto),
            "vmap" | "queue" => verdict = Step::Unknown,
            // limit, quota, xt, set updates, ...: may or may not let the rule match.
            _ => all_true = false,
        }
    }
    if all_true {
        verdict
    } else {
        Step::Next
    }
}

/// What a field of the probe is, for comparing with a JSON right-hand side.
enum Actual<'a> {
    Name(&'a str),
    Proto(&'static str, u8),
    Port(u16),
    Addr(Ipv4Addr),
    Flag(&'a str),
}

fn eval_match(m: &Value, probe: &Probe) -> Tri {
    let (Some(left), Some(right)) = (m.get("left"), m.get("right")) else {
        return Tri::Unknown;
    };
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let actual = match actual(left, probe) {
        Ok(a) => a,
        Err(t) => return t,
    };
    let hit = matches_value(right, &actual);
    match (op, hit) {
        (_, Tri::Unknown) => Tri::Unknown,
        ("==" | "in", t) => t,
        ("!=", Tri::True) => Tri::False,
        ("!=", _) => Tri::True,
        _ => Tri::Unknown,
    }
}

/// The probe's value for `left`, or the match's result when it is known without one.
fn actual<'p>(left: &Value, probe: &'p Probe) -> Result<Actual<'p>, Tri> {
    let field = |name: &str| left.get(name);
    let key = |v: Option<&Value>, k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let name = |n: &'p Option<String>| n.as_deref().map(Actual::Name).ok_or(Tri::Unknown);
    let addr = |a: Option<Ipv4Addr>| a.map(Actual::Addr).ok_or(Tri::Unknown);
    let proto = Actual::Proto(probe.l4.0, probe.l4.1);
    if let Some(k) = key(field("meta"), "key") {
        return match k.as_str() {
            "iifname" | "iif" => name(&probe.iif),
            "oifname" | "oif" => name(&probe.oif),
            "l4proto" => Ok(proto),
            "nfproto" => Ok(Actual::Name("ipv4")),
            _ => Err(Tri::Unknown),
        };
    }
    if let Some(k) = key(field("ct"), "key") {
        return match k.as_str() {
            "state" => Ok(Actual::Flag(probe.ct)),
            _ => Err(Tri::Unknown),
        };
    }
    let payload = field("payload");
    if let (Some(p), Some(f)) = (key(payload, "protocol"), key(payload, "field")) {
        return match (p.as_str(), f.as_str()) {
            // Our probes are IPv4: an IPv6 header match fails (nft adds the nfproto check).
            ("ip6", _) => Err(Tri::False),
            ("ip", "saddr") => addr(probe.saddr),
            ("ip", "daddr") => addr(probe.daddr),
            ("ip", "protocol") => Ok(proto),
            ("ip", _) => Err(Tri::Unknown),
            ("th", "dport") if matches!(probe.l4.0, "tcp" | "udp") => {
                probe.dport.map(Actual::Port).ok_or(Tri::Unknown)
            }
            ("th", _) => Err(Tri::Unknown),
            // A transport header match implies that protocol.
            (l4, _) if l4 != probe.l4.0 => Err(Tri::False),
            (_, "dport") => probe.dport.map(Actual::Port).ok_or(Tri::Unknown),
            _ => Err(Tri::Unknown),
        };
    }
    Err(Tri::Unknown)
}

fn matches_value(right: &Value, actual: &Actual) -> Tri {
    let elements = right
        .as_array()
        .or_else(|| right.get("set").and_then(Value::as_array));
    if let Some(list) = elements {
        let mut result = Tri::False;
        for v in list {
            match matches_value(v, actual) {
                Tri::True => return Tri::True,
                Tri::Unknown => result = Tri::Unknown,
                Tri::False => {}
            }
        }
        return result;
    }
    let tri = |b: bool| if b { Tri::True } else { Tri::False };
    if let Some(p) = right.get("prefix") {
        let (Actual::Addr(a), Some(net), Some(len)) = (
            actual,
            p.get("addr")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<Ipv4Addr>().ok()),
            p.get("len").and_then(Value::as_u64),
        ) else {
            return Tri::Unknown;
        };
        if len > 32 {
            return Tri::Unknown;
        }
        let mask = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
        return tri(u32::from(*a) & mask == u32::from(net) & mask);
    }
    if let Some(r) = right.get("range").and_then(Value::as_array) {
        let (Some(lo), Some(hi)) = (r.first(), r.get(1)) else {
            return Tri::Unknown;
        };
        return match actual {
            Actual::Port(p) => match (lo.as_u64(), hi.as_u64()) {
                (Some(lo), Some(hi)) => tri((lo..=hi).contains(&u64::from(*p))),
                _ => Tri::Unknown,
            },
            Actual::Addr(a) => {
                let ip = |v: &Value| v.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok());
                match (ip(lo), ip(hi)) {
                    (Some(lo), Some(hi)) => tri((lo..=hi).contains(a)),
                    _ => Tri::Unknown,
                }
            }
            _ => Tri::Unknown,
        };
    }
    match (actual, right) {
        (Actual::Name(n), Value::String(s)) => match s.strip_suffix('*') {
            Some(prefix) if !prefix.ends_with('\\') => tri(n.starts_with(prefix)),
            _ => tri(n == s),
        },
        (Actual::Flag(f), Value::String(s)) => tri(f == s),
        (Actual::Proto(name, _), Value::String(s)) => tri(name == s),
        (Actual::Proto(_, num), Value::Number(n)) => tri(n.as_u64() == Some(u64::from(*num))),
        (Actual::Port(p), Value::Number(n)) => tri(n.as_u64() == Some(u64::from(*p))),
        (Actual::Addr(a), Value::String(s)) => match s.parse::<Ipv4Addr>() {
            Ok(b) => tri(*a == b),
            Err(_) if s.contains(':') => Tri::False,
            Err(_) => Tri::Unknown,
        },
        _ => Tri::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Ruleset {
        Ruleset::new(vec![Part::Pptp {
            listen: None,
            pool: (100..=200).map(|i| Ipv4Addr::new(192, 168, 0, i)).collect(),
            tun: "vc0".into(),
            uplink: "up0".into(),
            mss: 1356,
        }])
    }

    fn warnings(sample: &str) -> Vec<String> {
        coexistence_warnings(sample, &ours())
            .unwrap()
            .iter()
            .map(|w| w.to_string())
            .collect()
    }

    #[test]
    fn docker_forward_policy_drop_asks_for_docker_user_rules() {
        let w = warnings(include_str!("../tests/data/docker.json"));
        assert_eq!(
            w,
            [
                "table ip filter chain FORWARD (hook forward) drops PPTP clients' new connections \
                 out (vc0 -> up0) (policy drop); add: nft insert rule ip filter DOCKER-USER \
                 iifname \"vc0\" oifname \"up0\" accept  or: iptables -I DOCKER-USER -i vc0 -o up0 \
                 -j ACCEPT",
                "table ip filter chain FORWARD (hook forward) drops replies to PPTP clients (up0 \
                 -> vc0) (policy drop); add: nft insert rule ip filter DOCKER-USER iifname \"up0\" \
                 oifname \"vc0\" ct state established,related accept  or: iptables -I DOCKER-USER \
                 -i up0 -o vc0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            ]
        );
    }

    #[test]
    fn docker_after_the_admin_added_the_rules_is_quiet() {
        assert!(warnings(include_str!("../tests/data/docker-fixed.json")).is_empty());
    }

    #[test]
    fn firewalld_rejects_pptp_input_and_new_forwarded_flows_only() {
        let all =
            coexistence_warnings(include_str!("../tests/data/firewalld.json"), &ours()).unwrap();
        let brief: Vec<(&str, &str, &str)> = all
            .iter()
            .map(|w| (w.chain.as_str(), w.traffic.as_str(), w.verdict.as_str()))
            .collect();
        assert_eq!(
            brief,
            [
                (
                    "filter_INPUT",
                    "PPTP control connections (TCP 1723)",
                    "chain filter_INPUT rule handle 15: reject"
                ),
                (
                    "filter_INPUT",
                    "PPTP data (GRE)",
                    "chain filter_INPUT rule handle 15: reject"
                ),
                (
                    "filter_FORWARD",
                    "PPTP clients' new connections out (vc0 -> up0)",
                    "chain filter_FORWARD rule handle 24: reject"
                ),
            ]
        );
        assert_eq!(
            all[0].fix,
            ["nft insert rule inet firewalld filter_INPUT tcp dport 1723 accept"]
        );
        assert!(all[0].note.is_some_and(|n| n.contains("firewalld")));
    }

    #[test]
    fn libvirt_rejects_only_its_own_bridge() {
        assert!(warnings(include_str!("../tests/data/libvirt.json")).is_empty());
    }

    #[test]
    fn strict_host_firewall_lacks_only_gre() {
        let all =
            coexistence_warnings(include_str!("../tests/data/strict-input.json"), &ours()).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].table, "filter");
        assert_eq!(all[0].family, "inet");
        assert_eq!(all[0].verdict, "policy drop");
        assert_eq!(
            all[0].fix,
            ["nft insert rule inet filter input ip protocol gre accept"]
        );
    }

    #[test]
    fn listen_address_goes_into_the_advice() {
        let mut rs = ours();
        let Some(Part::Pptp { listen, .. }) = rs.parts.first_mut() else {
            unreachable!()
        };
        *listen = Some(Ipv4Addr::new(198, 51, 100, 7));
        let all =
            coexistence_warnings(include_str!("../tests/data/strict-input.json"), &rs).unwrap();
        assert_eq!(
            all[0].fix,
            ["nft insert rule inet filter input ip daddr 198.51.100.7 ip protocol gre accept"]
        );
    }

    #[test]
    fn our_own_table_never_warns_and_junk_is_an_error() {
        let own = r#"{"nftables":[{"chain":{"family":"inet","table":"virtgate","name":"forward",
            "type":"filter","hook":"forward","prio":0,"policy":"drop"}}]}"#;
        assert!(warnings(own).is_empty());
        assert!(coexistence_warnings("not json", &ours()).is_err());
        assert!(coexistence_warnings("{}", &ours()).is_err());
        // Odd shapes are skipped, never a panic.
        let odd = r#"{"nftables":[{"chain":5},{"rule":{"family":"ip"}},{"chain":{"family":"ip",
            "table":"t","name":"c","type":"filter","hook":"input","policy":"drop"}},
            {"rule":{"family":"ip","table":"t","chain":"c","expr":[{"match":{"op":"==",
            "left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"1.2.3.4","len":99}}}},
            {"accept":null}]}},
            {"rule":{"family":"ip","table":"t","chain":"c","expr":[7, {"accept":null}]}},
            {"rule":{"family":"ip","table":"t","chain":"c","expr":{"accept":null}}},
            {"rule":{"family":"ip","table":"t","chain":"c","expr":[{"jump":{"target":"nowhere"}}]}}]}"#;
        assert!(warnings(odd).is_empty(), "unknown jump target: no claim");
    }

    #[test]
    fn jump_loops_and_goto_loops_end() {
        let looped = r#"{"nftables":[{"chain":{"family":"ip","table":"t","name":"c","type":"filter",
            "hook":"forward","policy":"drop"}},{"chain":{"family":"ip","table":"t","name":"a"}},
            {"rule":{"family":"ip","table":"t","chain":"c","expr":[{"jump":{"target":"a"}}]}},
            {"rule":{"family":"ip","table":"t","chain":"a","expr":[{"goto":{"target":"a"}}]}}]}"#;
        assert!(warnings(looped).is_empty());
        let deep = r#"{"nftables":[{"chain":{"family":"ip","table":"t","name":"c","type":"filter",
            "hook":"forward","policy":"drop"}},
            {"rule":{"family":"ip","table":"t","chain":"c","expr":[{"jump":{"target":"c"}}]}}]}"#;
        assert!(warnings(deep).is_empty());
    }

    #[test]
    fn match_semantics() {
        let fwd = probes(&ours().parts[0]).remove(2);
        let m = |json: &str| eval_match(&serde_json::from_str(json).unwrap(), &fwd);
        let iif = r#""left":{"meta":{"key":"iifname"}}"#;
        assert!(m(&format!(r#"{{"op":"==",{iif},"right":"vc*"}}"#)) == Tri::True);
        assert!(m(&format!(r#"{{"op":"==",{iif},"right":"vc1"}}"#)) == Tri::False);
        assert!(m(&format!(r#"{{"op":"!=",{iif},"right":"vc1"}}"#)) == Tri::True);
        assert!(
            m(&format!(
                r#"{{"op":"==",{iif},"right":{{"set":["a","vc0"]}}}}"#
            )) == Tri::True
        );
        let saddr = r#""left":{"payload":{"protocol":"ip","field":"saddr"}}"#;
        let pfx = |a: &str, l: u8| {
            format!(r#"{{"op":"==",{saddr},"right":{{"prefix":{{"addr":"{a}","len":{l}}}}}}}"#)
        };
        assert!(m(&pfx("192.168.0.0", 24)) == Tri::True);
        assert!(m(&pfx("192.168.1.0", 24)) == Tri::False);
        assert!(m(&pfx("0.0.0.0", 0)) == Tri::True);
        let range = format!(
            r#"{{"op":"==",{saddr},"right":{{"range":["192.168.0.50","192.168.0.150"]}}}}"#
        );
        assert!(m(&range) == Tri::True);
        // Unknown for the probe: destination port of a forwarded flow, ct status.
        let dport =
            r#"{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":443}"#;
        assert!(m(dport) == Tri::Unknown);
        let udp = r#"{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":53}"#;
        assert!(m(udp) == Tri::False);
        let v6 =
            r#"{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"::1"}"#;
        assert!(m(v6) == Tri::False);
        let ct = r#"{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}"#;
        assert!(m(ct) == Tri::False);
        let status = r#"{"op":"in","left":{"ct":{"key":"status"}},"right":"dnat"}"#;
        assert!(m(status) == Tri::Unknown);
    }

    fn network(bridge: &str, forward: NetForward) -> Ruleset {
        Ruleset::new(vec![Part::Network {
            name: "default".into(),
            bridge: bridge.into(),
            subnet: Ipv4Addr::new(192, 168, 100, 1),
            prefix: 24,
            forward,
        }])
    }

    fn nat() -> NetForward {
        NetForward::Nat {
            uplink: None,
            ports: None,
            addresses: None,
        }
    }

    fn brief(sample: &str, rs: &Ruleset) -> Vec<(String, String, String)> {
        coexistence_warnings(sample, rs)
            .unwrap()
            .into_iter()
            .map(|w| (w.chain, w.traffic, w.fix.join("  or: ")))
            .collect()
    }

    #[test]
    fn docker_drops_guest_to_guest_and_nat_traffic_of_a_network() {
        let docker = include_str!("../tests/data/docker.json");
        let w = brief(docker, &network("virbr1", nat()));
        let expect = |traffic: &str, fix: &str| ("FORWARD".to_string(), traffic.into(), fix.into());
        assert_eq!(
            w,
            [
                expect(
                    "traffic between guests of network default (virbr1)",
                    "nft insert rule ip filter DOCKER-USER iifname \"virbr1\" oifname \"virbr1\" \
                     accept  or: iptables -I DOCKER-USER -i virbr1 -o virbr1 -j ACCEPT"
                ),
                expect(
                    "new connections out from guests of network default (virbr1)",
                    "nft insert rule ip filter DOCKER-USER iifname \"virbr1\" ip saddr \
                     192.168.100.0/24 accept  or: iptables -I DOCKER-USER -i virbr1 -s \
                     192.168.100.0/24 -j ACCEPT"
                ),
                expect(
                    "replies to guests of network default (virbr1)",
                    "nft insert rule ip filter DOCKER-USER oifname \"virbr1\" ip daddr \
                     192.168.100.0/24 ct state established,related accept  or: iptables -I \
                     DOCKER-USER -o virbr1 -d 192.168.100.0/24 -m conntrack --ctstate \
                     RELATED,ESTABLISHED -j ACCEPT"
                ),
            ]
        );
        // Routed with an uplink: the uplink is in the advice; isolated: only guest to guest;
        // open: libvirt adds nothing, we claim nothing.
        let routed = brief(
            docker,
            &network(
                "virbr0",
                NetForward::Route {
                    uplink: Some("up0".into()),
                },
            ),
        );
        assert_eq!(routed.len(), 3, "{routed:?}");
        assert_eq!(
            routed[2].1,
            "connections routed to guests of network default (up0 -> virbr0)"
        );
        assert!(routed[2].2.starts_with(
            "nft insert rule ip filter DOCKER-USER iifname \"up0\" oifname \"virbr0\" ip daddr \
             192.168.100.0/24 accept"
        ));
        let isolated = brief(docker, &network("virbr1", NetForward::Isolated));
        assert_eq!(isolated.len(), 1, "{isolated:?}");
        assert_eq!(
            isolated[0].1,
            "traffic between guests of network default (virbr1)"
        );
        assert!(brief(docker, &network("virbr1", NetForward::Open)).is_empty());
    }

    #[test]
    fn strict_host_firewall_drops_dhcp_and_dns_to_the_host() {
        let strict = include_str!("../tests/data/strict-input.json");
        let w = brief(strict, &network("virbr1", NetForward::Isolated));
        let chains: Vec<(&str, &str)> =
            w.iter().map(|(c, t, _)| (c.as_str(), t.as_str())).collect();
        assert_eq!(
            chains,
            [
                (
                    "input",
                    "DHCP requests from guests of network default (virbr1)"
                ),
                (
                    "input",
                    "DNS queries from guests of network default (virbr1)"
                ),
                (
                    "forward",
                    "traffic between guests of network default (virbr1)"
                ),
            ]
        );
        assert_eq!(
            w[0].2,
            "nft insert rule inet filter input iifname \"virbr1\" udp dport 67 accept"
        );
        assert_eq!(
            w[1].2,
            "nft insert rule inet filter input iifname \"virbr1\" udp dport 53 accept"
        );
    }

    #[test]
    fn firewalld_accepts_established_replies_but_rejects_the_rest() {
        let w = brief(
            include_str!("../tests/data/firewalld.json"),
            &network("virbr1", nat()),
        );
        let traffic: Vec<&str> = w.iter().map(|(_, t, _)| t.as_str()).collect();
        assert_eq!(
            traffic,
            [
                "DHCP requests from guests of network default (virbr1)",
                "DNS queries from guests of network default (virbr1)",
                "traffic between guests of network default (virbr1)",
                "new connections out from guests of network default (virbr1)",
            ]
        );
    }

    #[test]
    fn libvirts_own_table_only_conflicts_on_its_own_bridge() {
        let libvirt = include_str!("../tests/data/libvirt.json");
        assert!(brief(libvirt, &network("virbr1", nat())).is_empty());
        // Our network on libvirt's virbr0: libvirt rejects what it did not allow itself.
        let clash = brief(
            libvirt,
            &network(
                "virbr0",
                NetForward::Route {
                    uplink: Some("up0".into()),
                },
            ),
        );
        let traffic: Vec<&str> = clash.iter().map(|(_, t, _)| t.as_str()).collect();
        assert_eq!(
            traffic,
            [
                "new connections out from guests of network default (virbr0 -> up0)",
                "connections routed to guests of network default (up0 -> virbr0)",
            ]
        );
    }

    #[test]
    fn unvalidated_network_parts_never_panic() {
        for prefix in [0, 31, 32, 33, 255] {
            let rs = Ruleset::new(vec![Part::Network {
                name: String::new(),
                bridge: String::new(),
                subnet: Ipv4Addr::BROADCAST,
                prefix,
                forward: nat(),
            }]);
            let all = coexistence_warnings(include_str!("../tests/data/docker.json"), &rs);
            assert!(all.is_ok());
        }
    }
}
