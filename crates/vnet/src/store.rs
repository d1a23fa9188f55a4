//! Network definitions on disk, the way `virsh net-define` keeps them: one libvirt XML file per
//! network, `STATE/networks/NAME.xml`, and an autostart mark `STATE/networks/autostart/NAME.xml`
//! (a symbolic link to the definition, as libvirt's `/etc/libvirt/qemu/networks/autostart`).
//! Leases live beside: `STATE/NAME.leases`.
//!
//! Defining checks what libvirt checks: the XML validates, no other network has the name's
//! UUID, the bridge, or an overlapping subnet ([`check_overlaps`]), and the bridge name is not
//! held by an interface virtgate did not create. What the XML leaves out is filled in as libvirt
//! does at define time: a UUID, a bridge MAC `52:54:00:xx:xx:xx`, and a free `virbrN`; a
//! redefinition keeps the stored UUID and MAC when the new XML has none.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use virtgate_config::libvirt::{check_overlaps, NetworkDef, UpdateOp, UpdateSection};
use virtgate_links::{IfName, Links, LinksError};

use crate::convert;
use crate::error::VnetError;
use crate::files;

/// A stored definition and whether it starts with the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredNetwork {
    pub def: NetworkDef,
    pub autostart: bool,
}

/// The definitions directory of a state directory.
#[derive(Debug, Clone)]
pub struct Store {
    state_dir: PathBuf,
}

/// Where the leases of network `name` are kept (dnsmasq's format).
pub fn leases_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("{name}.leases"))
}

/// The highest `N` tried for a free `virbrN`.
const MAX_VIRBR: u32 = 255;

impl Store {
    /// The store of `state_dir`, creating `networks/` and `networks/autostart/` if needed.
    pub fn open(state_dir: &Path) -> Result<Store, VnetError> {
        let store = Store {
            state_dir: state_dir.to_path_buf(),
        };
        fs::create_dir_all(store.autostart_dir()).map_err(VnetError::io(format!(
            "creating {}",
            store.autostart_dir().display()
        )))?;
        Ok(store)
    }

    /// The state directory this store lives in.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn dir(&self) -> PathBuf {
        self.state_dir.join("networks")
    }

    fn autostart_dir(&self) -> PathBuf {
        self.dir().join("autostart")
    }

    /// The definition file of `name`.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir().join(format!("{name}.xml"))
    }

    fn autostart_path(&self, name: &str) -> PathBuf {
        self.autostart_dir().join(format!("{name}.xml"))
    }

    /// Every stored definition, by name. A file that does not parse is skipped with a warning
    /// (libvirt does the same), so one damaged file does not hide the others.
    pub fn list(&self) -> Result<Vec<StoredNetwork>, VnetError> {
        self.list_with(false)
    }

    /// Every stored definition, by name; the first file that does not parse is an error
    /// (with its `file:line`). For `virtgate reload`, which must refuse rather than skip.
    pub fn list_strict(&self) -> Result<Vec<StoredNetwork>, VnetError> {
        self.list_with(true)
    }

    fn list_with(&self, strict: bool) -> Result<Vec<StoredNetwork>, VnetError> {
        let dir = self.dir();
        let entries =
            fs::read_dir(&dir).map_err(VnetError::io(format!("listing {}", dir.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(VnetError::io(format!("listing {}", dir.display())))?;
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".xml"))
            else {
                continue;
            };
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            match self.load(name) {
                Ok(n) => out.push(n),
                Err(e) if strict => return Err(e),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "skipping network definition: {e}")
                }
            }
        }
        out.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        Ok(out)
    }

    fn load(&self, name: &str) -> Result<StoredNetwork, VnetError> {
        let path = self.path_of(name);
        let text = files::read_optional(&path)
            .map_err(VnetError::io(format!("reading {}", path.display())))?
            .ok_or_else(|| VnetError::NotFound {
                name: name.to_string(),
            })?;
        let def = NetworkDef::parse(&text, &path)?.value;
        if def.name != name {
            return Err(VnetError::Io {
                context: format!("{}", path.display()),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("defines network '{}', not '{name}'", def.name),
                ),
            });
        }
        Ok(StoredNetwork {
            autostart: self.autostart_path(name).exists(),
            def,
        })
    }

    /// The stored definition of `name`.
    pub fn get(&self, name: &str) -> Result<StoredNetwork, VnetError> {
        // The name becomes a path: nothing that could leave the directory or name a hidden
        // file is looked up (definitions' names are stricter still).
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) {
            return Err(VnetError::NotFound {
                name: name.to_string(),
            });
        }
        self.load(name)
    }

    /// `virsh net-define`: checks `def` against the other definitions and the host's
    /// interfaces, fills in UUID, MAC and bridge name, and stores it (replacing an earlier
    /// definition of the same name). Returns what was stored.
    pub async fn define(&self, def: NetworkDef, links: &Links) -> Result<NetworkDef, VnetError> {
        def.validate()?;
        let mut def = def;
        let others: Vec<NetworkDef> = self
            .list()?
            .into_iter()
            .map(|s| s.def)
            .filter(|d| d.name != def.name)
            .collect();
        if let Ok(old) = self.load(&def.name) {
            match (def.uuid, old.def.uuid) {
                (Some(new), Some(old_uuid)) if new != old_uuid => {
                    return Err(VnetError::UuidMismatch {
                        name: def.name.clone(),
                        existing: old_uuid.to_string(),
                    })
                }
                (None, u) => def.uuid = u,
                _ => {}
            }
            if def.mac.is_none() && def.owns_bridge() {
                def.mac = old.def.mac;
            }
        }
        fill_identity(&mut def);
        if def.owns_bridge() && def.bridge.name.is_none() {
            def.bridge.name = Some(free_bridge_name(&def.name, &others, links).await?);
        }
        let mut all = others;
        all.push(def.clone());
        check_overlaps(&all)?;
        if def.owns_bridge() {
            if let Some(b) = &def.bridge.name {
                check_bridge_free(&def.name, b, links).await?;
            }
        }
        def.validate()?;
        self.write(&def)?;
        Ok(def)
    }

    /// [`Store::define`] from XML text (`virsh net-define FILE`); `origin` names it in errors.
    pub async fn define_xml(
        &self,
        xml: &str,
        origin: &Path,
        links: &Links,
    ) -> Result<NetworkDef, VnetError> {
        let def = NetworkDef::parse(xml, origin)?.value;
        self.define(def, links).await
    }

    fn write(&self, def: &NetworkDef) -> Result<(), VnetError> {
        let path = self.path_of(&def.name);
        files::write_atomic(&path, def.to_xml().as_bytes())
            .map_err(VnetError::io(format!("writing {}", path.display())))
    }

    /// `virsh net-undefine`: removes the definition and its autostart mark. The leases file
    /// stays (a network defined again under the name keeps its guests' addresses).
    pub fn undefine(&self, name: &str) -> Result<(), VnetError> {
        self.get(name)?;
        let _ = fs::remove_file(self.autostart_path(name));
        let path = self.path_of(name);
        fs::remove_file(&path).map_err(VnetError::io(format!("removing {}", path.display())))
    }

    /// `virsh net-autostart [--disable]`.
    pub fn set_autostart(&self, name: &str, on: bool) -> Result<(), VnetError> {
        self.get(name)?;
        let link = self.autostart_path(name);
        match fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(VnetError::io(format!("removing {}", link.display()))(e)),
        }
        if on {
            let target = Path::new("..").join(format!("{name}.xml"));
            std::os::unix::fs::symlink(&target, &link)
                .map_err(VnetError::io(format!("creating {}", link.display())))?;
        }
        Ok(())
    }

    /// `virsh net-update --config`: changes the stored definition (see
    /// [`NetworkDef::update`]). A running network is changed with
    /// [`RunningNetwork::update`](crate::RunningNetwork::update).
    pub fn update(
        &self,
        name: &str,
        section: UpdateSection,
        op: UpdateOp,
        xml: &str,
    ) -> Result<NetworkDef, VnetError> {
        let mut def = self.get(name)?.def;
        def.update(section, op, xml)?;
        self.write(&def)?;
        Ok(def)
    }

    /// Writes what a started network generated (MAC, UUID, bridge name) into the stored
    /// definition of the same name, when it had none. Other differences are left alone: the
    /// running network may have started from another file.
    pub(crate) fn record_identity(&self, running: &NetworkDef) -> Result<(), VnetError> {
        let Ok(stored) = self.load(&running.name) else {
            return Ok(());
        };
        let mut def = stored.def;
        let mut changed = false;
        if def.mac.is_none() && running.mac.is_some() && def.owns_bridge() {
            def.mac = running.mac;
            changed = true;
        }
        if def.uuid.is_none() && running.uuid.is_some() {
            def.uuid = running.uuid;
            changed = true;
        }
        if def.owns_bridge() && def.bridge.name.is_none() && running.bridge.name.is_some() {
            def.bridge.name.clone_from(&running.bridge.name);
            changed = true;
        }
        if changed {
            self.write(&def)?;
        }
        Ok(())
    }
}

/// Gives `def` a UUID and (for networks with a bridge of virtgate's) a MAC if it has none.
pub(crate) fn fill_identity(def: &mut NetworkDef) {
    if def.uuid.is_none() {
        def.uuid = Some(convert::generated_uuid(files::random()));
    }
    if def.mac.is_none() && def.owns_bridge() {
        def.mac = Some(convert::generated_mac(files::random()));
    }
}

/// What holds an interface name.
enum Holder {
    Nothing,
    /// A bridge virtgate created (it may be adopted again).
    Ours,
    /// Anything else, described.
    Other(String),
}

async fn holder_of(name: &str, links: &Links) -> Result<Holder, VnetError> {
    let ifname = IfName::new(name)?;
    match links.bridge_info(&ifname).await {
        Ok(_) => {
            let ours = links.list_bridges().await?.iter().any(|b| b.name == name);
            Ok(if ours {
                Holder::Ours
            } else {
                Holder::Other("a bridge virtgate did not create".into())
            })
        }
        Err(LinksError::NotFound { .. }) => Ok(Holder::Nothing),
        Err(LinksError::NotABridge { kind, .. }) => {
            Ok(Holder::Other(format!("a {kind} interface")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Refuses a bridge name held by an interface virtgate did not create.
pub(crate) async fn check_bridge_free(
    network: &str,
    bridge: &str,
    links: &Links,
) -> Result<(), VnetError> {
    match holder_of(bridge, links).await? {
        Holder::Nothing | Holder::Ours => Ok(()),
        Holder::Other(holder) => Err(VnetError::BridgeTaken {
            network: network.to_string(),
            bridge: bridge.to_string(),
            holder,
        }),
    }
}

/// The first `virbrN` no other definition names and no interface holds (libvirt's
/// `virNetworkBridgeInUse` loop).
pub(crate) async fn free_bridge_name(
    network: &str,
    others: &[NetworkDef],
    links: &Links,
) -> Result<String, VnetError> {
    for n in 0..=MAX_VIRBR {
        let name = format!("virbr{n}");
        if others
            .iter()
            .any(|d| d.bridge.name.as_deref() == Some(&name))
        {
            continue;
        }
        if matches!(holder_of(&name, links).await?, Holder::Nothing) {
            return Ok(name);
        }
    }
    Err(VnetError::NoFreeBridgeName {
        network: network.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_filled_once() {
        let mut def = NetworkDef::libvirt_default();
        fill_identity(&mut def);
        let (uuid, mac) = (def.uuid.unwrap(), def.mac.unwrap());
        assert_eq!(&mac.0[..3], &convert::KVM_MAC_PREFIX);
        assert_eq!(uuid.0[6] >> 4, 4);
        fill_identity(&mut def);
        assert_eq!((def.uuid, def.mac), (Some(uuid), Some(mac)));
        // A network on a host bridge gets a UUID but no bridge MAC of ours.
        let mut host = NetworkDef::parse(
            "<network><name>host</name><forward mode='bridge'/><bridge name='br0'/></network>",
            "h.xml",
        )
        .unwrap()
        .value;
        fill_identity(&mut host);
        assert!(host.uuid.is_some());
        assert!(host.mac.is_none());
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vgt-vnet-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn stored_files_round_trip_and_damaged_ones_are_skipped() {
        let d = scratch("files");
        let store = Store::open(&d).unwrap();
        assert!(store.list().unwrap().is_empty());
        let mut def = NetworkDef::libvirt_default();
        fill_identity(&mut def);
        store.write(&def).unwrap();
        assert_eq!(store.get("default").unwrap().def, def);
        fs::write(
            store.path_of("broken"),
            "<network><name>broken</name><frob/></network>",
        )
        .unwrap();
        fs::write(store.path_of("misnamed"), def.to_xml()).unwrap();
        fs::write(store.dir().join("notes.txt"), "not a definition").unwrap();
        let names: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|s| s.def.name)
            .collect();
        assert_eq!(names, vec!["default".to_string()]);
        assert!(matches!(store.get("broken"), Err(VnetError::Definition(_))));
        assert!(matches!(store.get("misnamed"), Err(VnetError::Io { .. })));
        for bad in ["", "../x", ".hidden", "a/b"] {
            assert!(
                matches!(store.get(bad), Err(VnetError::NotFound { .. })),
                "{bad:?}"
            );
        }
        store.set_autostart("default", true).unwrap();
        let link = store.autostart_path("default");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../default.xml"));
        assert!(store.get("default").unwrap().autostart);
        // Setting it twice is fine; undefine removes the mark with the definition.
        store.set_autostart("default", true).unwrap();
        store.undefine("default").unwrap();
        assert!(!link.exists() && fs::symlink_metadata(&link).is_err());
        assert!(matches!(
            store.undefine("default"),
            Err(VnetError::NotFound { .. })
        ));
        assert!(matches!(
            store.set_autostart("default", true),
            Err(VnetError::NotFound { .. })
        ));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn identity_written_back_only_when_missing() {
        let d = scratch("identity");
        let store = Store::open(&d).unwrap();
        let bare = NetworkDef::libvirt_default();
        store.write(&bare).unwrap();
        let mut running = bare.clone();
        fill_identity(&mut running);
        store.record_identity(&running).unwrap();
        let stored = store.get("default").unwrap().def;
        assert_eq!((stored.uuid, stored.mac), (running.uuid, running.mac));
        // Once stored, a later run's identity does not overwrite it.
        let mut other = bare.clone();
        fill_identity(&mut other);
        store.record_identity(&other).unwrap();
        assert_eq!(store.get("default").unwrap().def, stored);
        // Networks that are not stored are not written.
        let mut transient = NetworkDef::libvirt_default();
        transient.name = "transient".into();
        transient.bridge.name = Some("virbr9".into());
        fill_identity(&mut transient);
        store.record_identity(&transient).unwrap();
        assert!(!store.path_of("transient").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn leases_beside_the_definitions() {
        assert_eq!(
            leases_path(Path::new("/var/lib/virtgate"), "default"),
            PathBuf::from("/var/lib/virtgate/default.leases")
        );
    }
}
