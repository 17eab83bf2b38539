//! Probes compiled into the binary, so `healthprobe run http …` needs no file, and
//! precompiled when the binary was built (`build.rs`), so it needs no compiler either.

/// One bundled probe.
#[derive(Debug)]
pub struct Bundled {
    /// The name used on the command line.
    pub name: &'static str,
    /// The component precompiled for this binary's engine and target (a `.cwasm`),
    /// LZ4-compressed with its size prepended.
    pub precompiled: &'static [u8],
    /// SHA-256 (hex) of the component as built, before precompiling.
    pub sha256: &'static str,
    /// Size in bytes of the component as built.
    pub wasm_size: usize,
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The bundled probe called `name`.
pub fn find(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.name == name)
}

/// The names of the bundled probes.
pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|b| b.name).collect()
}

impl Bundled {
    /// The precompiled code, decompressed.
    pub fn precompiled(&self) -> Result<Vec<u8>, String> {
        lz4_flex::decompress_size_prepended(self.precompiled).map_err(|e| e.to_string())
    }
}
