//! Writes the generated captures into `tests/captures/`:
//! `cargo run -p mqgate-tests --bin make-captures`.

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    for (name, bytes) in mqgate_tests::captures::all() {
        let path = dir.join(name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        std::fs::write(&path, &bytes)?;
        println!("{}: {} bytes", path.display(), bytes.len());
    }
    Ok(())
}
