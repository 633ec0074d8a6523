//! The Debian package, built with cargo-deb from the binary these tests already use
//! (`--no-build`, with this build's profile: no release build in CI), then read back
//! with `dpkg-deb`: its files and modes, its conffiles and maintainer scripts, the
//! extracted binary checking the packaged configuration, and the packaged unit under
//! `systemd-analyze verify` where systemd is installed. Also the units in
//! `systemd/` themselves: broker-lite's, and the descriptor limits of both.
//!
//! cargo-deb clears `<target>/debian/mqgate_*.deb` whenever it runs, so running these
//! tests removes a package built earlier into the same target folder.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use mqgate_tests::mqgate::{build_workspace_bin, mqgate_bin, workspace_file, workspace_root};
use test_support::process::{run_to_end, Finished};
use test_support::scratch::Scratch;

const INSTALL_HINT: &str = "install cargo-deb: cargo install cargo-deb --locked";
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The built package and the folder it was built and unpacked in.
struct Package {
    deb: PathBuf,
    dir: PathBuf,
}

/// The package, built once per test process into `<target>/tmp/package-deb/`.
fn package() -> &'static Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE.get_or_init(build_package)
}

fn build_package() -> Package {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut version = Command::new(&cargo);
    version.args(["deb", "--version"]);
    match version.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`cargo deb --version` failed: {}\n{INSTALL_HINT}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("cannot run {cargo:?}: {e}\n{INSTALL_HINT}"),
    }

    // <target>/<profile folder>/mqgate: cargo-deb finds it there again from the
    // target folder and the profile.
    let bin = mqgate_bin();
    let profile_dir = bin.parent().expect("the binary is in a profile folder");
    let target_dir = profile_dir
        .parent()
        .expect("the profile folder has a parent");
    let profile = match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("unexpected binary path {}", bin.display()),
    };

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package-deb");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the package folder");

    let mut cmd = Command::new(&cargo);
    // --strip: a dev binary keeps its debug info otherwise (140 MB). --fast: gzip
    // instead of xz; cargo-deb warns that dev profiles are meant for tests only.
    cmd.args([
        "deb",
        "-p",
        "mqgate",
        "--no-build",
        "--no-dbgsym",
        "--strip",
        "--fast",
    ])
    .arg("--profile")
    .arg(profile)
    .arg("--output")
    .arg(&dir)
    .env("CARGO_TARGET_DIR", target_dir)
    .current_dir(workspace_root());
    let done = run_to_end("cargo deb", cmd, TOOL_TIMEOUT);
    assert!(
        done.status.success(),
        "cargo deb failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read the package folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension() == Some(OsStr::new("deb")))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb in {}: {debs:?}", dir.display());
    Package {
        deb: debs[0].clone(),
        dir,
    }
}

/// Runs a tool to its end and returns what it printed; panics on failure.
fn run_ok(program: &str, args: &[&OsStr]) -> Finished {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let done = run_to_end(program, cmd, TOOL_TIMEOUT);
    assert!(
        done.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    done
}

/// One line of `dpkg-deb -c`: `-rwxr-xr-x 0/0 14345272 2026-11-26 00:00 ./usr/bin/mqgate`.
#[derive(Debug)]
struct Entry {
    mode: String,
    owner: String,
    path: String,
}

/// The package's files (not its folders), by absolute path.
fn contents() -> Vec<Entry> {
    let listing = run_ok("dpkg-deb", &["-c".as_ref(), package().deb.as_os_str()]);
    listing
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 6, "unexpected dpkg-deb -c line: {line}");
            Entry {
                mode: fields[0].to_string(),
                owner: fields[1].to_string(),
                path: fields[5].trim_start_matches('.').to_string(),
            }
        })
        .filter(|e| !e.mode.starts_with('d'))
        .collect()
}

/// The folder's file names ending in `extension`, sorted.
fn names_in(folder: &str, extension: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_file(folder))
        .expect("read a workspace folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(extension))
        .collect();
    names.sort();
    names
}

/// The package's control files (`dpkg-deb -e`), unpacked once.
fn control_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = package().dir.join("control");
        run_ok(
            "dpkg-deb",
            &["-e".as_ref(), package().deb.as_os_str(), dir.as_os_str()],
        );
        dir
    })
    .clone()
}

/// The package's files (`dpkg-deb -x`), unpacked once.
fn root_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = package().dir.join("root");
        run_ok(
            "dpkg-deb",
            &["-x".as_ref(), package().deb.as_os_str(), dir.as_os_str()],
        );
        dir
    })
    .clone()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn the_package_holds_the_binary_the_unit_the_configuration_and_every_example() {
    let entries = contents();
    let mode_of = |path: &str| -> &str {
        entries
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.mode.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{path} is not in the package (assets in [package.metadata.deb], \
                     gateway/Cargo.toml): {entries:#?}"
                )
            })
    };

    assert_eq!(mode_of("/usr/bin/mqgate"), "-rwxr-xr-x");
    assert_eq!(
        mode_of("/usr/lib/systemd/system/mqgate.service"),
        "-rw-r--r--"
    );
    assert_eq!(mode_of("/etc/mqgate/mqgate.yaml"), "-rw-r--r--");
    for doc in ["README.md", "copyright", "examples/mqgate.yaml"] {
        assert_eq!(
            mode_of(&format!("/usr/share/doc/mqgate/{doc}")),
            "-rw-r--r--"
        );
    }
    // The mapping the packaged configuration uses is active; every other example
    // mapping lies next to it under a name the gateway does not read.
    assert_eq!(
        mode_of("/etc/mqgate/mappings/json-sensor.yaml"),
        "-rw-r--r--"
    );
    for name in names_in("mappings", ".yaml") {
        if name != "json-sensor.yaml" {
            let path = format!("/etc/mqgate/mappings/{name}.example");
            assert_eq!(mode_of(&path), "-rw-r--r--", "{path}");
        }
    }
    let scripts = names_in("scripts", ".rhai");
    assert!(scripts.len() >= 2, "scripts/*.rhai: {scripts:?}");
    for name in scripts {
        assert_eq!(
            mode_of(&format!("/etc/mqgate/scripts/{name}")),
            "-rw-r--r--"
        );
    }
    // The library the scripts import lies beside them, as the gateway looks for it.
    let modules = names_in("scripts/lib", ".rhai");
    assert!(!modules.is_empty(), "scripts/lib/*.rhai: {modules:?}");
    for name in modules {
        assert_eq!(
            mode_of(&format!("/etc/mqgate/scripts/lib/{name}")),
            "-rw-r--r--"
        );
    }

    // Modbus device profiles, where `profile: NAME` finds them next to the configuration.
    let profiles = names_in("profiles", ".yaml");
    assert!(profiles.len() >= 3, "profiles/*.yaml: {profiles:?}");
    for name in profiles {
        assert_eq!(
            mode_of(&format!("/etc/mqgate/profiles/{name}")),
            "-rw-r--r--"
        );
    }

    let allowed = [
        "/usr/bin/mqgate",
        "/usr/lib/systemd/system/mqgate.service",
        "/etc/mqgate/",
        "/usr/share/doc/mqgate/",
    ];
    for e in &entries {
        assert_eq!(e.owner, "0/0", "{} belongs to root", e.path);
        assert!(
            allowed
                .iter()
                .any(|a| e.path == *a || (a.ends_with('/') && e.path.starts_with(a))),
            "unexpected file in the package: {}",
            e.path
        );
    }
}

#[test]
fn every_file_under_etc_is_a_conffile() {
    let in_etc: BTreeSet<String> = contents()
        .into_iter()
        .map(|e| e.path)
        .filter(|p| p.starts_with("/etc/"))
        .collect();
    let conffiles: BTreeSet<String> = read(&control_dir().join("conffiles"))
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(in_etc.contains("/etc/mqgate/mqgate.yaml"), "{in_etc:?}");
    assert_eq!(conffiles, in_etc);
}

#[test]
fn the_control_file_names_the_package_and_its_dependencies() {
    let info = run_ok("dpkg-deb", &["-I".as_ref(), package().deb.as_os_str()]).stdout;
    let field = |name: &str| -> String {
        let prefix = format!("{name}: ");
        info.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in dpkg-deb -I:\n{info}"))
            .to_string()
    };
    assert_eq!(field("Package"), "mqgate");
    assert!(
        field("Version").starts_with(env!("CARGO_PKG_VERSION")),
        "{info}"
    );
    let depends = field("Depends");
    assert!(depends.contains("adduser"), "Depends: {depends}");
    // cargo-deb's `$auto` asks dpkg-shlibdeps (Debian package dpkg-dev).
    assert!(
        depends.contains("libc6"),
        "Depends: {depends} (is dpkg-shlibdeps installed? apt-get install dpkg-dev)"
    );
    // SQLite and the TLS library are built into the binary.
    assert!(!depends.contains("libsqlite3"), "Depends: {depends}");
    assert!(!depends.contains("libssl"), "Depends: {depends}");
}

#[test]
fn the_maintainer_scripts_add_the_user_and_enable_the_unit_without_starting_it() {
    let dir = control_dir();
    for name in ["postinst", "prerm", "postrm"] {
        let path = dir.join(name);
        let text = read(&path);
        assert!(
            !text.contains("#DEBHELPER#"),
            "{name} still has #DEBHELPER#"
        );
        let syntax = run_ok("sh", &["-n".as_ref(), path.as_os_str()]);
        assert!(syntax.stderr.is_empty(), "{name}: {}", syntax.stderr);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{name} is executable: {mode:o}");
    }

    let postinst = read(&dir.join("postinst"));
    assert!(
        postinst.contains("adduser --quiet --system --group"),
        "{postinst}"
    );
    assert!(
        postinst.contains("adduser --quiet mqgate dialout"),
        "{postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-helper enable mqgate.service"),
        "{postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-invoke try-restart mqgate.service"),
        "an upgrade restarts a running service:\n{postinst}"
    );
    assert!(
        !postinst.contains("deb-systemd-invoke start") && !postinst.contains("_dh_action=start"),
        "the first install must not start the service:\n{postinst}"
    );

    let prerm = read(&dir.join("prerm"));
    assert!(
        prerm.contains("deb-systemd-invoke stop mqgate.service"),
        "{prerm}"
    );

    let postrm = read(&dir.join("postrm"));
    assert!(
        postrm.contains("deb-systemd-helper purge mqgate.service"),
        "{postrm}"
    );
    assert!(postrm.contains("rm -rf /var/lib/mqgate"), "{postrm}");
}

#[test]
fn the_extracted_binary_runs_and_accepts_the_packaged_configuration() {
    let root = root_dir();
    let bin = root.join("usr/bin/mqgate");
    let bin_str = bin.to_str().expect("a UTF-8 path");

    let version = run_ok(bin_str, &["--version".as_ref()]);
    assert_eq!(
        version.stdout.trim(),
        format!("mqgate {}", env!("CARGO_PKG_VERSION"))
    );

    let config = root.join("etc/mqgate/mqgate.yaml");
    let check = run_ok(
        bin_str,
        &["check".as_ref(), "--config".as_ref(), config.as_os_str()],
    );
    assert!(
        check
            .stdout
            .contains("mqgate.yaml: ok (1 sources, 1 mappings, 1 scripts compiled)"),
        "stdout: {}\nstderr: {}",
        check.stdout,
        check.stderr
    );

    // The configuration keeps its state where the unit gives the service a
    // writable folder, and the unit runs the packaged binary on it.
    assert!(
        read(&config).contains("state_dir: /var/lib/mqgate\n"),
        "state_dir is /var/lib/mqgate"
    );
    let unit = read(&root.join("usr/lib/systemd/system/mqgate.service"));
    for line in [
        "ExecStart=/usr/bin/mqgate run --config /etc/mqgate/mqgate.yaml",
        "StateDirectory=mqgate",
        "User=mqgate",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit has {line:?}");
    }

    // Each example mapping's script is in the package where the mapping looks.
    let mappings = root.join("etc/mqgate/mappings");
    for entry in std::fs::read_dir(&mappings).expect("read the mappings") {
        let path = entry.expect("a mapping").path();
        for script in read(&path)
            .lines()
            .filter_map(|l| l.strip_prefix("script:"))
            .map(|s| s.trim().trim_matches('"'))
        {
            let resolved = mappings.join(script);
            assert!(
                resolved.is_file(),
                "{} names {script}, not in the package",
                path.display()
            );
        }
    }
}

#[test]
fn systemd_analyze_accepts_the_packaged_unit() {
    if !has_systemd_analyze() {
        return;
    }
    let root = root_dir();
    // verify wants ExecStart's program to exist: point it at the extracted one.
    let unit = read(&root.join("usr/lib/systemd/system/mqgate.service"));
    verify_unit(
        "mqgate.service",
        &unit,
        "/usr/bin/mqgate",
        &root.join("usr/bin/mqgate"),
        &package().dir.join("verify"),
    );
}

#[test]
fn broker_lite_service_has_a_writable_state_directory_for_persistence_and_systemd_analyze_accepts_it(
) {
    let unit = read(&workspace_file("systemd/broker-lite.service"));
    for line in [
        "DynamicUser=true",
        "StateDirectory=broker-lite",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit has {line:?}");
    }
    assert!(
        !unit.contains("keeps nothing on disk"),
        "the unit's comments say where the state goes"
    );
    assert!(unit.contains("/var/lib/broker-lite/broker-state.db"));
    let example = read(&workspace_file("broker-lite/broker.example.yaml"));
    assert!(example.contains("/var/lib/broker-lite/broker-state.db"));
    let readme = read(&workspace_file("README.md"));
    assert!(readme.contains("/var/lib/broker-lite/"));

    if !has_systemd_analyze() {
        return;
    }
    let bin = build_workspace_bin("broker-lite", "broker-lite");
    let dir = Scratch::new("verify-broker-lite");
    verify_unit(
        "broker-lite.service",
        &unit,
        "/usr/bin/broker-lite",
        &bin,
        dir.path(),
    );
}

#[test]
fn the_units_raise_the_file_descriptor_limit_above_the_connections_they_allow() {
    // Each connection is a descriptor: the broker's default connection limit, the
    // status page's highest, and room for the rest (files, listeners, journal).
    let broker = broker_lite::config::Limits::default().max_connections;
    let rest = 64;
    for (name, needs) in [
        (
            "mqgate.service",
            broker + mqgate::config::MAX_STATUS_CONNECTIONS + rest,
        ),
        ("broker-lite.service", broker + rest),
    ] {
        let unit = read(&workspace_file(&format!("systemd/{name}")));
        let limit: usize = unit
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .unwrap_or_else(|| panic!("{name} has no LimitNOFILE="))
            .parse()
            .unwrap_or_else(|e| panic!("{name}: LimitNOFILE= is not one number: {e}"));
        assert!(limit >= needs, "{name}: LimitNOFILE={limit}, needs {needs}");
    }
}

fn has_systemd_analyze() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        eprintln!("skipped: systemd-analyze is not installed (Debian package systemd)");
    }
    found
}

/// `systemd-analyze verify` on a copy of `unit` (named `name`, in `dir`) whose
/// `program` is replaced by `bin` (verify wants ExecStart's program to exist).
fn verify_unit(name: &str, unit: &str, program: &str, bin: &Path, dir: &Path) {
    let rewritten = unit.replace(program, bin.to_str().expect("a UTF-8 path"));
    assert_ne!(rewritten, unit, "the unit runs {program}");
    std::fs::create_dir_all(dir).expect("create the verify folder");
    let copy = dir.join(name);
    std::fs::write(&copy, rewritten).expect("write the unit copy");

    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg(&copy);
    let done = run_to_end("systemd-analyze verify", cmd, TOOL_TIMEOUT);
    // verify exits 0 after a line it could not parse ("..., ignoring"): any line
    // about this unit is a failure too.
    let complaints: Vec<&str> = done
        .stdout
        .lines()
        .chain(done.stderr.lines())
        .filter(|l| l.contains(name))
        .collect();
    assert!(
        done.status.success() && complaints.is_empty(),
        "systemd-analyze verify {name}: {:?}\n{}\n{}",
        done.status,
        done.stdout,
        done.stderr
    );
}
