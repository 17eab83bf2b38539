//! Probes compiled into the binary, so `healthprobe run http …` needs no file.

/// One bundled probe.
#[derive(Debug)]
pub struct Bundled {
    /// The name used on the command line.
    pub name: &'static str,
    /// The component's bytes.
    pub wasm: &'static [u8],
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
