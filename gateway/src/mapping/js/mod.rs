//! JavaScript codecs: a vendor's decoder in The Things Network's codec interface
//! (`decodeUplink`, `encodeDownlink`), run unchanged in QuickJS. Each codec has its
//! own runtime and context, loaded once (its library files first, then the codec)
//! and reused for every frame, with a memory limit and a CPU-time limit per call.
//! See the README's "JavaScript codecs".

mod codec;
mod memory;
mod sandbox;
#[cfg(test)]
mod tests;

pub use codec::{downlink, uplink, Downlink, JsCodec, Uplink};
pub use sandbox::JsLimits;

/// Whether `path` names a JavaScript codec (by its extension) rather than a Rhai script.
pub fn is_codec(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("js"))
}
