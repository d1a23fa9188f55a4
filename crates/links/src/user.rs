//! Users and groups to numeric ids through the C library (`getpwnam_r(3)`, `getgrnam_r(3)`), so
//! NSS sources beyond /etc/passwd count too, as they do for `ip tuntap add user U`.

use std::ffi::CString;

use crate::error::LinksError;
use crate::types::{GroupRef, UserRef};

/// Numeric uid for `user`.
pub fn resolve_user(user: &UserRef) -> Result<u32, LinksError> {
    let name = match user {
        UserRef::Id(id) => return Ok(*id),
        UserRef::Name(n) => n,
    };
    let unknown = || LinksError::UnknownUser { user: name.clone() };
    let cname = CString::new(name.as_str()).map_err(|_| unknown())?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value for the C struct; getpwnam_r fills it and
        // points its strings into `buf`, which outlives the call; we read only pw_uid.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return Err(unknown());
        }
        return Ok(pwd.pw_uid);
    }
}

/// Numeric gid for `group`.
pub fn resolve_group(group: &GroupRef) -> Result<u32, LinksError> {
    let name = match group {
        GroupRef::Id(id) => return Ok(*id),
        GroupRef::Name(n) => n,
    };
    let unknown = || LinksError::UnknownGroup {
        group: name.clone(),
    };
    let cname = CString::new(name.as_str()).map_err(|_| unknown())?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: as in resolve_user, for struct group and getgrnam_r.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return Err(unknown());
        }
        return Ok(grp.gr_gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_numeric_ids_resolve() {
        assert_eq!(resolve_user(&UserRef::Name("root".into())).unwrap(), 0);
        assert_eq!(resolve_user(&UserRef::Id(4242)).unwrap(), 4242);
        assert_eq!(resolve_group(&GroupRef::Name("root".into())).unwrap(), 0);
        assert_eq!(resolve_group(&GroupRef::Id(7)).unwrap(), 7);
    }

    #[test]
    fn nobody_resolves_to_the_passwd_entry() {
        // Compare with /etc/passwd itself rather than a constant.
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let uid: u32 = passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&"nobody")).then(|| f.get(2).and_then(|u| u.parse().ok()))?
            })
            .expect("nobody in /etc/passwd");
        assert_eq!(resolve_user(&UserRef::Name("nobody".into())).unwrap(), uid);
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        let e = resolve_user(&UserRef::Name("no-such-user-vgt".into())).unwrap_err();
        assert!(e.to_string().contains("no-such-user-vgt"), "{e}");
        assert!(matches!(
            resolve_group(&GroupRef::Name("no-such-group-vgt".into())),
            Err(LinksError::UnknownGroup { .. })
        ));
    }
}
