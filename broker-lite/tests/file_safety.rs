//! The files the `broker-lite` binary writes: its persistence file is readable by
//! its owner only, whatever the umask; `passwd` refuses a user name its file
//! cannot hold, and keeps the owner, group and mode of the file it rewrites.

mod real;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use broker_lite::auth::PasswordFile;
use real::TIMEOUT;
use test_support::files::{beside, mode};
use test_support::mosquitto::mosquitto_pub;
use test_support::process::{run_with_input, Finished, Proc};
use test_support::{wait_for_port, Scratch};

const BIN: &str = env!("CARGO_BIN_EXE_broker-lite");

/// `broker-lite passwd ARGS` with `stdin` as the password.
fn passwd(args: &[&str], stdin: &str) -> Finished {
    let mut cmd = Command::new(BIN);
    cmd.arg("passwd").args(args);
    run_with_input("broker-lite passwd", cmd, stdin.as_bytes(), TIMEOUT)
}

#[test]
fn the_persistence_file_and_its_wal_and_shm_are_not_world_readable_under_a_permissive_umask() {
    let dir = Scratch::new("broker-lite-file-modes");
    let state = dir.join("state.db");
    let config = dir.write(
        "broker.yaml",
        "listen: 127.0.0.1:0\nsys_interval_secs: 0\npersistence:\n  file: state.db\n",
    );
    // The umask is the process's: the broker gets its own, from the shell.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 000 && exec \"$0\" --config \"$1\"", BIN])
        .arg(&config);
    let mut broker = Proc::spawn("broker-lite", cmd);
    let line = broker.expect_line("listening on", TIMEOUT, |l| l.contains("listening on "));
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert!(wait_for_port(port, TIMEOUT), "nothing listens on {port}");
    // Its PUBACK comes once the retained message is committed, so the WAL has it.
    mosquitto_pub(
        port,
        &[
            "-q",
            "1",
            "-r",
            "-t",
            "private/x",
            "-m",
            "only for subscribers",
        ],
    );
    let wal = beside(&state, "-wal");
    assert!(
        std::fs::read(&wal)
            .unwrap()
            .windows(20)
            .any(|w| w == b"only for subscribers"),
        "the retained message is not in {}",
        wal.display()
    );
    for file in [state.clone(), wal, beside(&state, "-shm")] {
        assert_eq!(mode(&file), 0o600, "{}: {:o}", file.display(), mode(&file));
    }
}

#[test]
fn passwd_refuses_a_user_name_its_file_cannot_hold_and_changes_nothing() {
    let dir = Scratch::new("broker-lite-passwd-names");
    let path = dir.join("passwd");
    let file = path.to_str().expect("utf-8 path");
    let added = passwd(&[file, "alice"], "secret\n");
    assert!(added.status.success(), "{}", added.stderr);
    let before = std::fs::read(&path).unwrap();
    let cases = [
        ("#", "starts with '#'"),
        ("#alice", "starts with '#'"),
        ("", "empty user name"),
        ("a:b", "contains ':'"),
        ("new\nline", "control character"),
        ("tab\there", "control character"),
        (" alice", "starts or ends with whitespace"),
        ("alice ", "starts or ends with whitespace"),
        ("no\u{a0}break", "whitespace other than a space"),
    ];
    for (name, why) in cases {
        for args in [&[file, name][..], &["--delete", file, name][..]] {
            let done = passwd(args, "secret\n");
            assert_eq!(done.status.code(), Some(1), "{args:?}: {}", done.stdout);
            let expected = format!("broker-lite passwd: user name {name:?}");
            assert!(
                done.stderr.contains(&expected) || name.is_empty(),
                "{args:?}: {}",
                done.stderr
            );
            assert!(done.stderr.contains(why), "{args:?}: {}", done.stderr);
            assert!(
                done.stderr.contains(&format!("{file} not changed")),
                "{args:?}: {}",
                done.stderr
            );
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
    let users = PasswordFile::load(&path).unwrap();
    assert_eq!(users.len(), 1);
    assert!(users.get("alice").is_some());
    // What it takes, it reads back.
    for name in ["a#b", "with space", "bob/inbox"] {
        let done = passwd(&[file, name], "pw\n");
        assert!(done.status.success(), "{name:?}: {}", done.stderr);
        let users = PasswordFile::load(&path).unwrap();
        assert!(users.get(name).is_some_and(|h| h.verify(b"pw")), "{name:?}");
    }
}

#[test]
fn passwd_keeps_the_owner_group_and_mode_of_the_file_it_rewrites() {
    let dir = Scratch::new("broker-lite-passwd-owner");
    let path = dir.join("passwd");
    let file = path.to_str().expect("utf-8 path");
    let added = passwd(&[file, "alice"], "a\n");
    assert!(added.status.success(), "{}", added.stderr);
    assert_eq!(mode(&path), 0o600, "a new password file");

    // A service user's group may read it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let owner = other_owner();
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&path, uid, gid).unwrap();
    }
    let before = std::fs::metadata(&path).unwrap();
    // Each rewrite is a new file renamed over the old one: a new inode than the
    // file it replaces (a freed number may come back later, so not the first's).
    let mut replaced = before.ino();
    for (args, stdin) in [
        (&[file, "bob"][..], "b\n"),
        (&[file, "alice"][..], "new\n"),
        (&["--delete", file, "bob"][..], ""),
    ] {
        let done = passwd(args, stdin);
        assert!(done.status.success(), "{args:?}: {}", done.stderr);
        let after = std::fs::metadata(&path).unwrap();
        assert_ne!(after.ino(), replaced, "{args:?}: not rewritten");
        replaced = after.ino();
        assert_eq!(after.mode() & 0o777, 0o640, "{args:?}: mode");
        assert_eq!(after.uid(), before.uid(), "{args:?}: owner");
        assert_eq!(after.gid(), before.gid(), "{args:?}: group");
    }
    let users = PasswordFile::load(&path).unwrap();
    assert!(users.get("alice").is_some_and(|h| h.verify(b"new")));
    assert!(users.get("bob").is_none());
    if owner.is_none() {
        println!(
            "owner and group not tested: not root, and no group besides the primary \
             one to give the file to"
        );
    }
}

/// An owner and group for the file other than the ones a new file gets: as root,
/// another user's (`nobody`'s ids, whether or not they exist); otherwise a
/// second group of the user's, if it has one.
fn other_owner() -> Option<(Option<u32>, Option<u32>)> {
    // SAFETY: these calls only read the process's credentials.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid == 0 {
        return Some((Some(65534), Some(65534)));
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    let len = libc::c_int::try_from(groups.len()).expect("small");
    // SAFETY: the buffer holds `len` group ids.
    let n = unsafe { libc::getgroups(len, groups.as_mut_ptr()) };
    let n = usize::try_from(n).ok()?;
    groups[..n]
        .iter()
        .find(|&&g| g != egid)
        .map(|&g| (None, Some(g)))
}
