//! The password file: one `user:hash` per line, `#` comments and blank lines
//! allowed. Read into a map at start; rewritten by `broker-lite passwd`, which
//! keeps every other line as it was and the file's owner, group and mode, and
//! replaces the file atomically.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::hash::PasswordHash;
use config_report::ConfigError as FileError;

/// User names and their hashes.
#[derive(Debug, Default, Clone)]
pub struct PasswordFile {
    users: HashMap<String, PasswordHash>,
}

impl PasswordFile {
    /// Read and check the whole file; every bad line is reported.
    pub fn load(path: &Path) -> Result<PasswordFile, Vec<FileError>> {
        let text = fs::read_to_string(path).map_err(|e| vec![super::unreadable(path, &e)])?;
        PasswordFile::parse(&text, path)
    }

    /// Parse the file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<PasswordFile, Vec<FileError>> {
        let mut users = HashMap::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let at = |message: String| super::line_error(path, i + 1, message);
            let Some((user, hash)) = split_line(line) else {
                continue;
            };
            if let Err(why) = check_user_name(user) {
                errors.push(at(why));
                continue;
            }
            match PasswordHash::parse(hash) {
                Ok(h) => {
                    if users.insert(user.to_string(), h).is_some() {
                        errors.push(at(format!("user {user:?} appears twice")));
                    }
                }
                Err(e) => errors.push(at(format!("user {user:?}: {e}"))),
            }
        }
        if errors.is_empty() {
            Ok(PasswordFile { users })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.users.get(user)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// `(user, hash)` of a line that holds one; `None` for blanks and comments.
/// A line without `:` gives an empty hash, which then fails to parse.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return None;
    }
    Some(line.split_once(':').unwrap_or((line, "")))
}

/// A user name the file can hold, so that the reader gets back the name the
/// writer was given: not empty, not starting with `#` (the line would be a
/// comment), no `:` (it ends the name), no control characters (a line break
/// would split the line), and no whitespace but inner spaces (a tab or
/// a no-break space cannot be told from a space, and spaces at either end are
/// invisible). The reader applies the same rule.
pub fn check_user_name(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("empty user name".into());
    }
    if user.starts_with('#') {
        return Err(format!(
            "user name {user:?} starts with '#', which makes its line a comment"
        ));
    }
    if user.contains(':') {
        return Err(format!("user name {user:?} contains ':'"));
    }
    if user.chars().any(char::is_control) {
        return Err(format!("user name {user:?} contains a control character"));
    }
    if user.trim() != user {
        return Err(format!("user name {user:?} starts or ends with whitespace"));
    }
    if user.chars().any(|c| c.is_whitespace() && c != ' ') {
        return Err(format!(
            "user name {user:?} contains whitespace other than a space"
        ));
    }
    Ok(())
}

/// What `set` or `delete` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Replaced,
    Deleted,
    /// `delete` of a user that is not in the file.
    NotFound,
}

/// Give `user` a new hash: replace its line, or append one. The file is created
/// when missing.
pub fn set(path: &Path, user: &str, hash: &PasswordHash) -> io::Result<Change> {
    check_user_name(user).map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
    let text = read_or_empty(path)?;
    let entry = format!("{user}:{hash}");
    let mut change = Change::Added;
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if split_line(line).is_some_and(|(u, _)| u == user) {
            // A second line for the same user (hand-edited file) goes away.
            if change == Change::Added {
                out.push(entry.clone());
            }
            change = Change::Replaced;
        } else {
            out.push(line.to_string());
        }
    }
    if change == Change::Added {
        out.push(entry);
    }
    write_atomically(path, &out)?;
    Ok(change)
}

/// Remove `user`'s line(s). The file is left untouched when the user is not there.
pub fn delete(path: &Path, user: &str) -> io::Result<Change> {
    check_user_name(user).map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
    let text = fs::read_to_string(path)?;
    let kept: Vec<String> = text
        .lines()
        .filter(|line| split_line(line).is_none_or(|(u, _)| u != user))
        .map(str::to_string)
        .collect();
    if kept.len() == text.lines().count() {
        return Ok(Change::NotFound);
    }
    write_atomically(path, &kept)?;
    Ok(Change::Deleted)
}

fn read_or_empty(path: &Path) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// Write the lines to a new file next to `path`, sync it, and rename it over
/// `path`: a reader sees the old file or the new one, never half of one. The
/// new file gets the owner, group and permissions of the one it replaces (a
/// broker running as a service user must still read it), or mode 0600 when
/// there was none.
fn write_atomically(path: &Path, lines: &[String]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let previous = match fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut text = lines.join("\n");
        text.push('\n');
        file.write_all(text.as_bytes())?;
        let mode = match &previous {
            Some(meta) => {
                keep_owner(&file, meta)?;
                meta.mode() & 0o777
            }
            None => 0o600,
        };
        // After the owner: chown may clear mode bits. Not filtered by the umask.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Give `file` the owner and group of `previous`. Only root can give a file to
/// another user: anyone else rewriting another user's file gets an error and
/// the file stays as it was, rather than a file its owner may no longer read.
fn keep_owner(file: &fs::File, previous: &fs::Metadata) -> io::Result<()> {
    let ours = file.metadata()?;
    if (ours.uid(), ours.gid()) == (previous.uid(), previous.gid()) {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(previous.uid()), Some(previous.gid())).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot give the new file the owner and group of the old one \
                 (uid {}, gid {}): {e}; nothing changed",
                previous.uid(),
                previous.gid()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::hash::MIN_ITERATIONS;
    use super::*;
    use test_support::Scratch;

    fn hash(pw: &str) -> PasswordHash {
        PasswordHash::new(pw.as_bytes(), MIN_ITERATIONS).unwrap()
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = format!(
            "# users\n\nalice:{}\n  # indented comment\nbob:{}\r\n",
            hash("a"),
            hash("b")
        );
        let file = PasswordFile::parse(&text, Path::new("pw")).unwrap();
        assert_eq!(file.len(), 2);
        assert!(file.get("alice").unwrap().verify(b"a"));
        assert!(file.get("bob").unwrap().verify(b"b"));
        assert!(file.get("carol").is_none());
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = format!(
            "alice:{}\nno-colon\n:{}\nalice:{}\nbob:$md5$x\n",
            hash("a"),
            hash("x"),
            hash("b")
        );
        let errors = PasswordFile::parse(&text, Path::new("pw.txt")).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(shown[0].starts_with("pw.txt:2: user \"no-colon\": expected"));
        assert_eq!(shown[1], "pw.txt:3: empty user name");
        assert_eq!(shown[2], "pw.txt:4: user \"alice\" appears twice");
        assert!(
            shown[3].starts_with("pw.txt:5: user \"bob\": "),
            "{}",
            shown[3]
        );
    }

    #[test]
    fn set_adds_then_replaces_and_keeps_other_lines() {
        let dir = Scratch::new("broker-lite-passwd-set");
        let path = dir.path().join("passwd");
        fs::write(&path, "# keep me\nbob:x\n").unwrap();
        assert_eq!(set(&path, "alice", &hash("one")).unwrap(), Change::Added);
        assert_eq!(set(&path, "alice", &hash("two")).unwrap(), Change::Replaced);
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["# keep me", "bob:x"]);
        assert_eq!(lines.len(), 3);
        let alice = PasswordHash::parse(lines[2].strip_prefix("alice:").unwrap()).unwrap();
        assert!(alice.verify(b"two"));
        assert!(!alice.verify(b"one"));
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        dir.close().unwrap();
    }

    #[test]
    fn a_new_file_is_0600_and_a_rewrite_keeps_the_mode_of_the_file_it_replaces() {
        let dir = Scratch::new("broker-lite-passwd-mode");
        let path = dir.path().join("passwd");
        set(&path, "alice", &hash("a")).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        set(&path, "bob", &hash("b")).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        delete(&path, "alice").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        dir.close().unwrap();
    }

    #[test]
    fn every_name_the_writer_takes_is_read_back_as_that_name() {
        let dir = Scratch::new("broker-lite-passwd-names");
        let path = dir.path().join("passwd");
        let names = [
            "alice",
            "a#b",
            "with space",
            "bob/inbox",
            "x+y",
            "Ünïcode",
            "é:",
        ];
        for name in names {
            match set(&path, name, &hash(name)) {
                Ok(_) => {
                    let file = PasswordFile::load(&path).unwrap();
                    let read = file.get(name).unwrap_or_else(|| panic!("{name:?} lost"));
                    assert!(read.verify(name.as_bytes()), "{name:?}");
                }
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}: {e}");
                    assert!(check_user_name(name).is_err(), "{name:?}");
                }
            }
        }
        let file = PasswordFile::load(&path).unwrap();
        assert_eq!(file.len(), names.len() - 1, "only \"é:\" is refused");
        dir.close().unwrap();
    }

    #[test]
    fn delete_removes_only_that_user() {
        let dir = Scratch::new("broker-lite-passwd-delete");
        let path = dir.path().join("passwd");
        set(&path, "alice", &hash("a")).unwrap();
        set(&path, "bob", &hash("b")).unwrap();
        assert_eq!(delete(&path, "alice").unwrap(), Change::Deleted);
        assert_eq!(delete(&path, "alice").unwrap(), Change::NotFound);
        let file = PasswordFile::load(&path).unwrap();
        assert!(file.get("alice").is_none());
        assert!(file.get("bob").is_some());
        dir.close().unwrap();
    }

    #[test]
    fn user_names_that_would_break_the_file_are_refused() {
        for bad in [
            "",
            "#",
            "#alice",
            "a:b",
            "new\nline",
            "cr\r",
            " padded",
            "padded ",
            "tab\t",
            "in\tside",
            "no\u{a0}break",
            "nul\0",
        ] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
        for good in ["alice", "user@example.com", "Ünïcode", "with space"] {
            assert!(check_user_name(good).is_ok(), "{good:?}");
        }
    }
}
