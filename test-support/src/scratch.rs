//! Scratch folders.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A fresh folder `<label>-…` under the system's temp folder, removed when dropped
/// (also when the test fails). Others may read it: Mosquitto started as root
/// reads its files after it has dropped to its own user.
#[derive(Debug)]
pub struct Scratch(tempfile::TempDir);

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{label}-"))
            .tempdir()
            .expect("a scratch folder in the temp folder");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("make the scratch folder readable");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// `name` inside the folder.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.path().join(name)
    }

    /// Removes the folder now, reporting a failure (dropping it ignores one).
    pub fn close(self) -> std::io::Result<()> {
        self.0.close()
    }

    /// Writes `contents` to `name` inside the folder (making sub-folders); returns
    /// its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a scratch sub-folder");
        }
        std::fs::write(&path, contents).expect("write a scratch file");
        path
    }
}
