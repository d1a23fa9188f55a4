//! Validated values the API takes: interface names (the kernel's `dev_valid_name` rules,
//! linux/net/core/dev.c), MAC addresses, labels, users and groups, macvtap modes
//! (linux/include/uapi/linux/if_link.h `MACVLAN_MODE_*`).

use std::fmt;
use std::str::FromStr;

use crate::error::LinksError;

/// Longest interface name the kernel takes: `IFNAMSIZ` (16) less the terminating NUL.
pub const IFNAME_MAX: usize = 15;

/// A network interface name the kernel will accept as it is.
///
/// Rules of the kernel's `dev_valid_name`: 1 to 15 bytes, not `.` or `..`, no `/`, `:`, NUL or
/// whitespace. We also refuse `%`: the kernel treats a name with `%d` as a template to fill in,
/// and a name we are given must name exactly one interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

impl IfName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<IfName, LinksError> {
        let bad = |reason: &'static str| LinksError::InvalidName {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name.len() > IFNAME_MAX {
            return Err(bad("longer than 15 bytes"));
        }
        if name == "." || name == ".." {
            return Err(bad("`.` and `..` are not interface names"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| matches!(c, '/' | ':' | '%' | '\0') || c.is_whitespace() || c.is_control())
        {
            return Err(match c {
                '/' => bad("contains `/`"),
                ':' => bad("contains `:`"),
                '%' => bad("contains `%` (kernel name template)"),
                _ => bad("contains whitespace or a control character"),
            });
        }
        Ok(IfName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfName {
    type Err = LinksError;
    fn from_str(s: &str) -> Result<IfName, LinksError> {
        IfName::new(s)
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An Ethernet MAC address, written `52:54:00:12:34:56` (lower case on output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// First byte libvirt gives the host side of a guest's tap: the guest's MAC with its first
    /// byte replaced by 0xFE, so the bridge never takes the guest's address as its own and the
    /// host side is never the lowest address on the bridge (the bridge takes the lowest port MAC
    /// unless its own MAC was set).
    pub const HOST_SIDE_FIRST_BYTE: u8 = 0xFE;

    /// Parses `aa:bb:cc:dd:ee:ff` (hex digits either case, `:` separators only, as libvirt).
    pub fn parse(text: &str) -> Result<Mac, LinksError> {
        let bad = || LinksError::InvalidMac {
            text: text.to_string(),
        };
        let mut out = [0u8; 6];
        let mut parts = text.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }

    /// From a netlink attribute: exactly six bytes or nothing.
    pub fn from_slice(bytes: &[u8]) -> Option<Mac> {
        <[u8; 6]>::try_from(bytes).ok().map(Mac)
    }

    /// Group (multicast/broadcast) bit set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// A guest's MAC must be a unicast, non-zero address (libvirt refuses the others too).
    pub fn check_guest(&self) -> Result<(), LinksError> {
        if self.is_multicast() || self.is_zero() {
            return Err(LinksError::InvalidGuestMac { mac: *self });
        }
        Ok(())
    }

    /// The MAC for the host end of a guest's tap, as libvirt does: first byte 0xFE.
    pub fn host_side(&self) -> Mac {
        let mut m = self.0;
        m[0] = Self::HOST_SIDE_FIRST_BYTE;
        Mac(m)
    }
}

impl From<[u8; 6]> for Mac {
    fn from(b: [u8; 6]) -> Mac {
        Mac(b)
    }
}

impl FromStr for Mac {
    type Err = LinksError;
    fn from_str(s: &str) -> Result<Mac, LinksError> {
        Mac::parse(s)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Free text the caller attaches to a link we create (the daemon puts the network's name
/// there); it is kept in the kernel with the link, in its alias, and comes back in listings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label(String);

impl Label {
    /// Longest label: the kernel's alias holds 255 bytes (`IFALIASZ` less NUL); our marker
    /// takes the rest.
    pub const MAX: usize = 200;

    pub fn new(text: &str) -> Result<Label, LinksError> {
        if text.is_empty() || text.len() > Self::MAX || text.chars().any(|c| c.is_control()) {
            return Err(LinksError::InvalidLabel {
                text: text.to_string(),
            });
        }
        Ok(Label(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user, by name or by numeric id (all digits, as `ip tuntap add user U` reads it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserRef {
    Name(String),
    Id(u32),
}

impl FromStr for UserRef {
    type Err = LinksError;
    fn from_str(s: &str) -> Result<UserRef, LinksError> {
        parse_id_or_name(s).map(|r| match r {
            Ok(id) => UserRef::Id(id),
            Err(name) => UserRef::Name(name),
        })
    }
}

impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserRef::Name(n) => f.write_str(n),
            UserRef::Id(id) => write!(f, "{id}"),
        }
    }
}

/// A group, by name or by numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupRef {
    Name(String),
    Id(u32),
}

impl FromStr for GroupRef {
    type Err = LinksError;
    fn from_str(s: &str) -> Result<GroupRef, LinksError> {
        parse_id_or_name(s).map(|r| match r {
            Ok(id) => GroupRef::Id(id),
            Err(name) => GroupRef::Name(name),
        })
    }
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRef::Name(n) => f.write_str(n),
            GroupRef::Id(id) => write!(f, "{id}"),
        }
    }
}

/// `Ok(id)` for all digits, `Err(name)` for a plausible name, an error for anything else.
fn parse_id_or_name(s: &str) -> Result<Result<u32, String>, LinksError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // u32::MAX is (uid_t)-1, "no owner" to the kernel: not a user.
        return match s.parse::<u32>() {
            Ok(id) if id != u32::MAX => Ok(Ok(id)),
            _ => Err(LinksError::UnknownUser {
                user: s.to_string(),
            }),
        };
    }
    if s.is_empty()
        || s.len() > 64
        || s.chars()
            .any(|c| c.is_whitespace() || c == ':' || c.is_control())
    {
        return Err(LinksError::UnknownUser {
            user: s.to_string(),
        });
    }
    Ok(Err(s.to_string()))
}

/// How a macvtap port forwards (libvirt's `<forward mode=...>` for direct networks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacvtapMode {
    /// Every frame goes out to the external switch, which must hairpin it back for guests on
    /// the same parent to reach each other (802.1Qbg VEPA).
    Vepa,
    /// Ports on the same parent reach each other directly inside the kernel.
    Bridge,
    /// Like VEPA, but broadcast and multicast from a sibling port are never delivered, even when
    /// the switch hairpins them back.
    Private,
    /// One port takes the whole parent (its MAC, promiscuous); one guest per parent.
    Passthrough,
}

impl MacvtapMode {
    /// libvirt's name for the mode.
    pub fn as_str(&self) -> &'static str {
        match self {
            MacvtapMode::Vepa => "vepa",
            MacvtapMode::Bridge => "bridge",
            MacvtapMode::Private => "private",
            MacvtapMode::Passthrough => "passthrough",
        }
    }
}

impl FromStr for MacvtapMode {
    type Err = LinksError;
    fn from_str(s: &str) -> Result<MacvtapMode, LinksError> {
        Ok(match s {
            "vepa" => MacvtapMode::Vepa,
            "bridge" => MacvtapMode::Bridge,
            "private" => MacvtapMode::Private,
            // iproute2 spells it "passthru"; accept both.
            "passthrough" | "passthru" => MacvtapMode::Passthrough,
            _ => {
                return Err(LinksError::InvalidMode {
                    text: s.to_string(),
                })
            }
        })
    }
}

impl fmt::Display for MacvtapMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks an Open vSwitch external-id UUID (`8-4-4-4-12` hex digits), as libvirt formats them.
pub fn check_uuid(text: &str) -> Result<(), LinksError> {
    let groups: Vec<&str> = text.split('-').collect();
    let lens = [8usize, 4, 4, 4, 12];
    let ok = groups.len() == lens.len()
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(LinksError::InvalidUuid {
            text: text.to_string(),
        })
    }
}

/// A random (version 4) UUID from the kernel's random source, lower case.
pub(crate) fn random_uuid() -> Result<String, LinksError> {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most b.len() bytes into the buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        return Err(LinksError::Io {
            context: "getrandom for an interface UUID".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules_follow_the_kernel() {
        for good in ["virbr0", "vnet0", "a", "macvtap123", "br-lan.10", "x_y-z"] {
            assert_eq!(IfName::new(good).unwrap().as_str(), good);
        }
        assert!(IfName::new("123456789012345").is_ok());
        for bad in [
            "",
            "1234567890123456",
            ".",
            "..",
            "a/b",
            "eth0:1",
            "vnet%d",
            "a b",
            "tab\t",
            "nul\0",
        ] {
            assert!(
                matches!(IfName::new(bad), Err(LinksError::InvalidName { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn mac_parse_print_round_trip() {
        let m = Mac::parse("52:54:00:AB:cd:0f").unwrap();
        assert_eq!(m.0, [0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f]);
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(Mac::parse(&m.to_string()).unwrap(), m);
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:00",
            "52-54-00-ab-cd-0f",
            "5:54:00:ab:cd:0f",
            "52:54:00:ab:cd:0g",
            "525:4:00:ab:cd:0f",
            "+2:54:00:ab:cd:0f",
        ] {
            assert!(Mac::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Mac::from_slice(&[1, 2, 3, 4, 5, 6]),
            Some(Mac([1, 2, 3, 4, 5, 6]))
        );
        assert_eq!(Mac::from_slice(&[1, 2, 3]), None);
    }

    #[test]
    fn host_side_mac_is_fe_prefixed_like_libvirt() {
        let guest = Mac::parse("52:54:00:12:34:56").unwrap();
        assert_eq!(guest.host_side().to_string(), "fe:54:00:12:34:56");
    }

    #[test]
    fn guest_mac_must_be_unicast_and_nonzero() {
        assert!(Mac::parse("52:54:00:12:34:56")
            .unwrap()
            .check_guest()
            .is_ok());
        assert!(Mac::parse("01:00:5e:00:00:01")
            .unwrap()
            .check_guest()
            .is_err());
        assert!(Mac::parse("ff:ff:ff:ff:ff:ff")
            .unwrap()
            .check_guest()
            .is_err());
        assert!(Mac::parse("00:00:00:00:00:00")
            .unwrap()
            .check_guest()
            .is_err());
    }

    #[test]
    fn users_and_groups_by_name_or_id() {
        assert_eq!("1000".parse::<UserRef>().unwrap(), UserRef::Id(1000));
        assert_eq!(
            "qemu".parse::<UserRef>().unwrap(),
            UserRef::Name("qemu".into())
        );
        assert_eq!("0".parse::<GroupRef>().unwrap(), GroupRef::Id(0));
        assert!("4294967295".parse::<UserRef>().is_err());
        assert!("99999999999".parse::<UserRef>().is_err());
        assert!("".parse::<UserRef>().is_err());
        assert!("a b".parse::<UserRef>().is_err());
    }

    #[test]
    fn modes_by_libvirt_name() {
        for m in [
            MacvtapMode::Vepa,
            MacvtapMode::Bridge,
            MacvtapMode::Private,
            MacvtapMode::Passthrough,
        ] {
            assert_eq!(m.as_str().parse::<MacvtapMode>().unwrap(), m);
        }
        assert_eq!(
            "passthru".parse::<MacvtapMode>().unwrap(),
            MacvtapMode::Passthrough
        );
        assert!("source".parse::<MacvtapMode>().is_err());
    }

    #[test]
    fn labels_are_bounded_printable_text() {
        assert!(Label::new("default").is_ok());
        assert!(Label::new("my net: x").is_ok());
        assert!(Label::new("").is_err());
        assert!(Label::new(&"x".repeat(Label::MAX + 1)).is_err());
        assert!(Label::new("a\nb").is_err());
    }

    #[test]
    fn uuids_checked_and_generated() {
        assert!(check_uuid("668033d2-06a4-4aaa-aca5-30cde245e477").is_ok());
        assert!(check_uuid("668033d2-06a4-4aaa-aca5-30cde245e47").is_err());
        assert!(check_uuid("668033d206a44aaaaca530cde245e477").is_err());
        assert!(check_uuid("g68033d2-06a4-4aaa-aca5-30cde245e477").is_err());
        let a = random_uuid().unwrap();
        let b = random_uuid().unwrap();
        assert!(check_uuid(&a).is_ok());
        assert_ne!(a, b);
        assert_eq!(&a[14..15], "4");
    }
}
