//! `c-componentize bindgen WIT_DIR OUT_DIR`: writes the C bindings of the `probe` world
//! (`probe.h`, `probe.c`, `probe_component_type.o`), as `wit-bindgen c` does.
//! `c-componentize new CORE.wasm OUT.wasm`: turns the reactor module clang built into a
//! component, adapting WASI preview 1 to preview 2, as `wasm-tools component new --adapt`.

use anyhow::{bail, Context, Result};
use std::path::Path;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["bindgen", wit, out] => bindgen(Path::new(wit), Path::new(out)),
        ["new", core, out] => new(Path::new(core), Path::new(out)),
        _ => bail!("usage: c-componentize bindgen WIT_DIR OUT_DIR | new CORE.wasm OUT.wasm"),
    }
}

fn bindgen(wit: &Path, out: &Path) -> Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_path(wit)?;
    let world = resolve.select_world(&[package], Some("probe"))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

fn new(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("read {}", core.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()?;
    std::fs::write(out, component).with_context(|| format!("write {}", out.display()))
}
