//! `USER` resolution against the image's /etc/passwd and /etc/group, with runc's rules
//! (libcontainer's GetExecUser): names and numbers, `user:group`, supplementary groups only in
//! the implicit form, numeric ids allowed without an entry.

use super::Error;
use super::bundle::LayerView;

/// The ids and home directory a process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the primary group first (containerd's fix for CVE-2023-25173),
    /// then those listing the user as a member when no group was given.
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [name, _, uid, gid, _, home, ..] => Some(PasswdEntry {
                name,
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                home,
            }),
            _ => None,
        }
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [name, _, gid, members, ..] => Some(GroupEntry {
                name,
                gid: gid.parse().ok()?,
                members: members.split(',').filter(|m| !m.is_empty()).collect(),
            }),
            [name, _, gid] => Some(GroupEntry {
                name,
                gid: gid.parse().ok()?,
                members: Vec::new(),
            }),
            _ => None,
        }
    })
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`) in the rootfs seen through `view`.
pub fn resolve_user(view: &LayerView, spec: &str) -> Result<ExecUser, Error> {
    let passwd = view.read_to_string("etc/passwd")?.unwrap_or_default();
    let group = view.read_to_string("etc/group")?.unwrap_or_default();
    resolve_in(&passwd, &group, spec)
}

fn resolve_in(passwd: &str, group: &str, spec: &str) -> Result<ExecUser, Error> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let numeric_uid = user_part.parse::<u32>().ok();
    let entry = passwd_entries(passwd)
        .find(|e| e.name == user_part || numeric_uid.is_some_and(|uid| uid == e.uid));
    let mut user = match (&entry, numeric_uid) {
        (Some(e), _) => ExecUser {
            uid: e.uid,
            gid: e.gid,
            additional_gids: Vec::new(),
            home: e.home.to_string(),
        },
        (None, Some(uid)) => ExecUser {
            uid,
            gid: 0,
            additional_gids: Vec::new(),
            home: "/".to_string(),
        },
        (None, None) => return Err(Error::UnknownUser(user_part.to_string())),
    };
    match group_part {
        Some(group_name) if !group_name.is_empty() => {
            let numeric_gid = group_name.parse::<u32>().ok();
            let found = group_entries(group)
                .find(|g| g.name == group_name || numeric_gid.is_some_and(|gid| gid == g.gid));
            user.gid = match (found, numeric_gid) {
                (Some(g), _) => g.gid,
                (None, Some(gid)) => gid,
                (None, None) => return Err(Error::UnknownGroup(group_name.to_string())),
            };
        }
        _ => {
            if let Some(e) = &entry {
                user.additional_gids = group_entries(group)
                    .filter(|g| g.members.contains(&e.name))
                    .map(|g| g.gid)
                    .collect();
            }
        }
    }
    if !user.additional_gids.contains(&user.gid) {
        user.additional_gids.insert(0, user.gid);
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app,other\napp:x:1000:\nstaff:x:50:\n";

    #[test]
    fn empty_is_root_with_its_home() {
        let user = resolve_in(PASSWD, GROUP, "").unwrap();
        assert_eq!((user.uid, user.gid, user.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn name_gets_primary_and_supplementary_groups() {
        let user = resolve_in(PASSWD, GROUP, "app").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 1000));
        assert_eq!(user.additional_gids, vec![1000, 10]);
        assert_eq!(user.home, "/home/app");
    }

    #[test]
    fn explicit_group_drops_supplementary_groups() {
        let user = resolve_in(PASSWD, GROUP, "app:staff").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 50));
        assert_eq!(user.additional_gids, vec![50]);
        let user = resolve_in(PASSWD, GROUP, "1000:4242").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 4242));
    }

    #[test]
    fn unknown_numeric_uid_is_allowed() {
        let user = resolve_in(PASSWD, GROUP, "4321").unwrap();
        assert_eq!((user.uid, user.gid, user.home.as_str()), (4321, 0, "/"));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(
            resolve_in(PASSWD, GROUP, "ghost"),
            Err(Error::UnknownUser(name)) if name == "ghost"
        ));
        assert!(matches!(
            resolve_in(PASSWD, GROUP, "app:ghosts"),
            Err(Error::UnknownGroup(name)) if name == "ghosts"
        ));
    }
}
