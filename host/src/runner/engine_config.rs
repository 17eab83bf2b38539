//! The engine settings, in one place because `build.rs` includes this file too: it
//! precompiles the bundled probes with them, and precompiled code loads only into an
//! engine whose settings match the one that compiled it (wasmtime checks and refuses a
//! mismatch).

use wasmtime::Config;

/// The settings of every healthprobe engine: fuel and epoch interruption (the run's CPU
/// and time bounds) and the component model.
///
/// With `target` the engine compiles for that triple's baseline CPU (what `build.rs`
/// does, so the bundled probes load on any CPU of the architecture); without it, for this
/// machine's CPU.
pub fn config(target: Option<&str>) -> wasmtime::Result<Config> {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .wasm_component_model(true)
        // Both only serve native debuggers and profilers (traps are classified by type and
        // host panics never unwind through wasm frames here: the release build aborts);
        // leaving them out shrinks the precompiled probes by a seventh.
        .generate_address_map(false)
        .native_unwind_info(false);
    if let Some(target) = target {
        config.target(target)?;
    }
    Ok(config)
}
