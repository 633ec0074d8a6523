//! Script libraries: a mapping script imports the modules of the `lib/` folder beside
//! it, compiled once when the script is loaded, under the same sandbox limits; every
//! other import stays refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use mqgate::frame::{Frame, Meta};
use mqgate::mapping::{MapError, Mapped, Mapper, MappingDefaults, MappingError, ScriptLimits};
use mqtt_proto::codec::QoS;
use test_support::scratch::Scratch;

/// A scripts folder holding the given files (paths relative to it).
fn scripts(files: &[(&str, &str)]) -> Scratch {
    let dir = Scratch::new("mqgate-lib");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn defaults() -> MappingDefaults {
    MappingDefaults {
        topic: "t/{source}".into(),
        qos: QoS::AtMostOnce,
        retain: false,
        filter: None,
    }
}

fn load(dir: &Path, script: &str) -> Result<Mapper, MappingError> {
    let path: PathBuf = dir.join(script);
    let text = std::fs::read_to_string(&path).unwrap();
    Mapper::new(
        "dev",
        Some((&path, &text)),
        defaults(),
        ScriptLimits::default(),
    )
}

fn frame(bytes: &[u8], fport: Option<&str>) -> Frame {
    let mut meta = Meta::default();
    if let Some(p) = fport {
        meta.extra.insert("fport".into(), p.into());
    }
    Frame {
        source: Arc::from("dev"),
        received_at: SystemTime::now(),
        bytes: Bytes::copy_from_slice(bytes),
        meta,
    }
}

fn payload(mapper: &Mapper, f: &Frame) -> String {
    match mapper.map(f) {
        Mapped::Messages(m) => String::from_utf8(m[0].payload.to_vec()).unwrap(),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn failure(mapper: &Mapper, f: &Frame) -> MapError {
    match mapper.map(f) {
        Mapped::Failed(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

const TWICE: &str = "fn twice(x) { x * 2 }\n";

#[test]
fn a_script_imports_a_module_of_its_lib_folder() {
    let dir = scripts(&[
        ("lib/maths.rhai", TWICE),
        (
            "double.rhai",
            "fn map(frame) {\n    import \"maths\" as m;\n    #{ payload: `${m::twice(frame.bytes.len())}` }\n}\n",
        ),
    ]);
    let mapper = load(dir.path(), "double.rhai").unwrap();
    assert_eq!(payload(&mapper, &frame(b"abc", None)), "6");
}

#[test]
fn a_top_level_import_is_not_run_and_the_error_says_where_imports_go() {
    let dir = scripts(&[
        ("lib/maths.rhai", TWICE),
        (
            "top.rhai",
            "import \"maths\" as m;\nfn map(frame) {\n    #{ payload: m::twice(2) }\n}\n",
        ),
    ]);
    let mapper = load(dir.path(), "top.rhai").unwrap();
    let e = failure(&mapper, &frame(b"", None)).to_string();
    assert!(e.contains("Module not found: m"), "{e}");
    assert!(
        e.contains("import modules inside the function that uses them"),
        "{e}"
    );
}

#[test]
fn modules_import_each_other_and_read_their_constants_through_global() {
    let dir = scripts(&[
        ("lib/maths.rhai", TWICE),
        (
            "lib/units.rhai",
            "import \"maths\" as m;\nconst SCALE = 10;\nfn scaled(x) { m::twice(x) * global::SCALE }\n",
        ),
        (
            "s.rhai",
            "fn map(frame) {\n    import \"units\" as u;\n    #{ payload: `${u::scaled(frame.bytes.len())}` }\n}\n",
        ),
    ]);
    let mapper = load(dir.path(), "s.rhai").unwrap();
    assert_eq!(payload(&mapper, &frame(b"ab", None)), "40");
}

#[test]
fn a_module_that_does_not_compile_is_named_with_its_file_and_line() {
    let dir = scripts(&[
        (
            "lib/broken.rhai",
            "fn ok() { 1 }\n\nfn bad(x) {\n    let y = (x + ;\n}\n",
        ),
        ("s.rhai", "fn map(frame) { () }\n"),
    ]);
    let e = load(dir.path(), "s.rhai").expect_err("a compile error");
    let text = e.to_string();
    let want = format!("{}:4:", dir.path().join("lib/broken.rhai").display());
    assert!(text.starts_with(&want), "{text} should start with {want}");
    assert!(matches!(e, MappingError::Compile { line: 4, .. }), "{e:?}");
}

#[test]
fn a_module_whose_top_level_code_fails_is_named_with_its_file_and_line() {
    let dir = scripts(&[
        ("lib/a.rhai", "import \"b\" as b;\nfn f() { b::g() }\n"),
        (
            "lib/b.rhai",
            "fn g() { 1 }\n\nthrow \"b refuses to load\";\n",
        ),
        ("s.rhai", "fn map(frame) { () }\n"),
    ]);
    let text = load(dir.path(), "s.rhai").err().unwrap().to_string();
    let want = format!("{}:3:", dir.path().join("lib/b.rhai").display());
    assert!(text.starts_with(&want), "{text} should start with {want}");
    assert!(text.contains("b refuses to load"), "{text}");
}

#[test]
fn an_import_cycle_is_refused_when_the_library_loads() {
    let dir = scripts(&[
        ("lib/a.rhai", "import \"b\" as b;\n"),
        ("lib/b.rhai", "import \"a\" as a;\n"),
        ("s.rhai", "fn map(frame) { () }\n"),
    ]);
    let text = load(dir.path(), "s.rhai").err().unwrap().to_string();
    assert!(text.contains("import cycle: a → b → a"), "{text}");
}

#[test]
fn a_module_cannot_import_from_outside_the_lib_folder() {
    let dir = scripts(&[
        ("secret.rhai", "fn key() { 42 }\n"),
        (
            "lib/sneaky.rhai",
            "import \"../secret\" as s;\nfn key() { s::key() }\n",
        ),
        ("s.rhai", "fn map(frame) { () }\n"),
    ]);
    let text = load(dir.path(), "s.rhai").err().unwrap().to_string();
    assert!(
        text.contains("import \"../secret\" refused: mapping scripts cannot import modules"),
        "{text}"
    );
    assert!(
        text.starts_with(&dir.path().join("lib/sneaky.rhai").display().to_string()),
        "{text}"
    );

    // Nor can a script: a path that is no module of the library is refused as before.
    let dir = scripts(&[
        ("secret.rhai", "fn key() { 42 }\n"),
        ("lib/maths.rhai", TWICE),
        (
            "s.rhai",
            "fn map(frame) {\n    import \"../secret\" as s;\n    #{ payload: `${s::key()}` }\n}\n",
        ),
    ]);
    let mapper = load(dir.path(), "s.rhai").unwrap();
    let e = failure(&mapper, &frame(b"x", None));
    assert!(
        e.to_string()
            .contains("import \"../secret\" refused: mapping scripts cannot import modules"),
        "{e}"
    );
}

#[test]
fn imports_do_not_read_the_disk_at_run_time() {
    let dir = scripts(&[
        ("lib/maths.rhai", TWICE),
        (
            "s.rhai",
            "fn map(frame) {\n    import \"maths\" as m;\n    #{ payload: `${m::twice(21)}` }\n}\n",
        ),
    ]);
    let mapper = load(dir.path(), "s.rhai").unwrap();
    std::fs::remove_dir_all(dir.path().join("lib")).unwrap();
    assert_eq!(payload(&mapper, &frame(b"", None)), "42");
    assert_eq!(payload(&mapper, &frame(b"", None)), "42");
}

/// A reload (SIGHUP) builds every mapper again: the new one reads the library as it
/// is now, the running one keeps what it compiled.
#[test]
fn loading_again_compiles_the_changed_library_and_the_old_mapper_keeps_its_own() {
    let dir = scripts(&[
        ("lib/maths.rhai", TWICE),
        (
            "s.rhai",
            "fn map(frame) {\n    import \"maths\" as m;\n    #{ payload: `${m::twice(21)}` }\n}\n",
        ),
    ]);
    let old = load(dir.path(), "s.rhai").unwrap();
    std::fs::write(
        dir.path().join("lib/maths.rhai"),
        "fn twice(x) { x * 2 + 1 }\n",
    )
    .unwrap();
    let new = load(dir.path(), "s.rhai").unwrap();
    assert_eq!(payload(&new, &frame(b"", None)), "43");
    assert_eq!(payload(&old, &frame(b"", None)), "42");

    std::fs::write(dir.path().join("lib/maths.rhai"), "fn twice(x) { x * }\n").unwrap();
    let e = load(dir.path(), "s.rhai").expect_err("a compile error");
    assert!(e.to_string().contains("maths.rhai:1:"), "{e}");
}

#[test]
fn the_sandbox_limits_stop_an_endless_loop_in_a_module_function() {
    let dir = scripts(&[
        ("lib/spin.rhai", "fn forever() {\n    loop { }\n}\n"),
        (
            "s.rhai",
            "fn map(frame) {\n    import \"spin\" as s;\n    if frame.bytes.len() > 0 { s::forever(); }\n    #{ payload: \"ok\" }\n}\n",
        ),
    ]);
    let mapper = load(dir.path(), "s.rhai").unwrap();
    let e = failure(&mapper, &frame(b"x", None));
    assert!(
        matches!(
            e,
            MapError::TooManyOperations { .. } | MapError::Timeout { .. }
        ),
        "{e:?}"
    );
    assert_eq!(payload(&mapper, &frame(b"", None)), "ok");
}

#[test]
fn an_error_in_a_module_function_names_the_module_file_and_line() {
    let dir = scripts(&[
        ("lib/picky.rhai", "fn check(n) {\n    if n > 1 {\n        throw `too long: ${n}`;\n    }\n    n\n}\n"),
        (
            "s.rhai",
            "fn map(frame) {\n    import \"picky\" as p;\n    #{ payload: p::check(frame.bytes.len()) }\n}\n",
        ),
    ]);
    let mapper = load(dir.path(), "s.rhai").unwrap();
    let e = failure(&mapper, &frame(b"abc", None));
    let want = format!(
        "{}:3:9: runtime error: too long: 3",
        dir.path().join("lib/picky.rhai").display()
    );
    assert!(
        e.to_string().starts_with(&want),
        "{e} should start with {want}"
    );
    assert_eq!(payload(&mapper, &frame(b"a", None)), "1");
}

#[test]
fn the_sandbox_limits_stop_an_endless_loop_while_a_module_loads() {
    let dir = scripts(&[
        ("lib/spin.rhai", "let n = 0;\nloop { n += 1; }\n"),
        ("s.rhai", "fn map(frame) { () }\n"),
    ]);
    let text = load(dir.path(), "s.rhai").err().unwrap().to_string();
    assert!(
        text.starts_with(&dir.path().join("lib/spin.rhai").display().to_string()),
        "{text}"
    );
    assert!(text.contains("exceeded 100000 operations"), "{text}");
}

#[test]
fn fport_reads_the_lorawan_port_from_the_frame_meta() {
    let dir = scripts(&[(
        "s.rhai",
        "fn map(frame) { #{ payload: fport(frame) + 1 } }\n",
    )]);
    let mapper = load(dir.path(), "s.rhai").unwrap();
    assert_eq!(payload(&mapper, &frame(b"", Some("85"))), "86");
    let e = failure(&mapper, &frame(b"", None));
    assert!(e.to_string().contains("frame meta has no fport"), "{e}");
    let e = failure(&mapper, &frame(b"", Some("two")));
    assert!(
        e.to_string()
            .contains("frame meta fport \"two\" is not a number"),
        "{e}"
    );
}
