//! Paths as users read them in messages: a file named relative to the gateway file
//! or a mapping file is joined to that file's folder, and the result is tidied
//! (`./mappings/../scripts/env.rhai` becomes `scripts/env.rhai`).

use std::path::{Component, Path, PathBuf};

/// `dir` joined with `path`, tidied by `tidy`.
pub(crate) fn join(dir: &Path, path: impl AsRef<Path>) -> PathBuf {
    tidy(&dir.join(path))
}

/// `path` without `.` components and with each `name/..` pair removed, lexically,
/// except where `name` is a symbolic link: there `..` leads to the link target's
/// parent, so the pair stays and the path means what it meant. An empty result is `.`.
pub(crate) fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    // How many of `out`'s last components are names a `..` may remove.
    let mut names = 0usize;
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if names > 0 && !is_symlink(&out) => {
                out.pop();
                names -= 1;
            }
            Component::ParentDir => {
                out.push("..");
                names = 0;
            }
            Component::Normal(name) => {
                out.push(name);
                names += 1;
            }
            Component::RootDir | Component::Prefix(_) => {
                out.push(component.as_os_str());
                names = 0;
            }
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[cfg(test)]
mod tests {
    use super::{join, tidy};
    use std::path::{Path, PathBuf};

    #[test]
    fn dots_and_name_dotdot_pairs_go() {
        for (input, tidied) in [
            ("./mappings/../scripts/env.rhai", "scripts/env.rhai"),
            ("././mappings/env.yaml", "mappings/env.yaml"),
            (
                "/etc/mqgate/./mappings/../scripts/x.rhai",
                "/etc/mqgate/scripts/x.rhai",
            ),
            ("../shared/x", "../shared/x"),
            ("a/../../b", "../b"),
            ("./", "."),
            ("a/..", "."),
            ("/..", "/.."),
        ] {
            assert_eq!(tidy(Path::new(input)), PathBuf::from(tidied), "{input}");
        }
        assert_eq!(
            join(Path::new("."), "./mappings"),
            PathBuf::from("mappings")
        );
    }

    #[test]
    fn a_symbolic_link_keeps_its_dotdot() {
        let dir = std::env::temp_dir().join(format!("mqgate-tidy-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("real/inner")).expect("make folders");
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(dir.join("real/inner"), &link).expect("make a link");
        let through = link.join("../x");
        assert_eq!(
            tidy(&through),
            through,
            "the link's parent is not its folder's"
        );
        let plain = dir.join("real/inner/../x");
        assert_eq!(tidy(&plain), dir.join("real/x"));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
