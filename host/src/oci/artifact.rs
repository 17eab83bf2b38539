//! The Wasm OCI artifact layout (CNCF TAG Runtime's "Wasm OCI Artifact" specification, as
//! `wkg` writes it): an OCI image manifest, a config of media type
//! [`WASM_CONFIG`] describing the component, and one [`WASM_LAYER`] layer, the component.
//! Reading a manifest tells such an artifact from what is often given by mistake: a
//! container image, or an image index.

use serde::Deserialize;

/// The manifest's media type.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config's media type in a Wasm artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The component layer's media type.
pub const WASM_LAYER: &str = "application/wasm";

/// Every manifest type a registry may answer with, so that a container image or an index
/// is read and explained instead of refused by the client as an unknown type.
pub const ACCEPTED: &[&str] = &[
    MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Config types of container images.
const IMAGE_CONFIGS: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A content descriptor: what a manifest says of its config or a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Its media type.
    pub media_type: String,
    /// Its SHA-256, hex.
    pub hex: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Descriptor {
    /// The descriptor of a config of ours.
    pub fn config(bytes: &[u8]) -> Self {
        Self::of(WASM_CONFIG, bytes)
    }

    /// The descriptor of a component layer.
    pub fn layer(bytes: &[u8]) -> Self {
        Self::of(WASM_LAYER, bytes)
    }

    fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.into(),
            hex: super::store::sha256(bytes),
            size: bytes.len() as u64,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": format!("sha256:{}", self.hex),
            "size": self.size,
        })
    }
}

/// What a Wasm artifact's manifest says.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The component layer.
    pub layer: Descriptor,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    size: u64,
}

/// Reads a manifest as a Wasm artifact's, or says what it is instead.
pub fn parse(bytes: &[u8]) -> Result<Artifact, String> {
    let raw: RawManifest = serde_json::from_slice(bytes)
        .map_err(|e| format!("its manifest is not an OCI manifest ({e})"))?;
    let media = raw.media_type.as_deref().unwrap_or_default();
    if raw.manifests.is_some() || media.contains("index") || media.contains("list") {
        return Err(
            "it is an image index (a multi-platform container image), not a Wasm component artifact"
                .into(),
        );
    }
    if raw.schema_version != Some(2) {
        return Err("its manifest is not an OCI image manifest (schemaVersion is not 2)".into());
    }
    let config = raw
        .config
        .ok_or("its manifest has no config, so it is not a Wasm component artifact")?;
    if IMAGE_CONFIGS.contains(&config.media_type.as_str()) {
        return Err(format!(
            "it is a container image (config {}), not a Wasm component artifact; push a probe with `healthprobe push` or `wkg oci push`",
            config.media_type
        ));
    }
    if config.media_type != WASM_CONFIG {
        return Err(format!(
            "it is not a Wasm component artifact: its config's media type is {}, not {WASM_CONFIG}",
            crate::text::excerpt(&config.media_type, 100)
        ));
    }
    let layers = raw.layers.unwrap_or_default();
    let [layer] = layers.as_slice() else {
        return Err(format!(
            "a Wasm component artifact has exactly one layer, this one has {}",
            layers.len()
        ));
    };
    if layer.media_type != WASM_LAYER {
        return Err(format!(
            "its layer's media type is {}, not {WASM_LAYER}",
            crate::text::excerpt(&layer.media_type, 100)
        ));
    }
    let hex = super::sha256_hex(&layer.digest).ok_or_else(|| {
        format!(
            "its layer's digest {} is not a sha256 digest",
            crate::text::excerpt(&layer.digest, 100)
        )
    })?;
    Ok(Artifact {
        layer: Descriptor {
            media_type: layer.media_type.clone(),
            hex,
            size: layer.size,
        },
    })
}

/// The manifest of a Wasm artifact with this config and layer.
pub fn manifest(config: &Descriptor, layer: &Descriptor) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.json(),
        "layers": [layer.json()],
    }))
    .expect("a JSON value serialises")
}

/// The config of a Wasm artifact holding `component`: its top-level imports and exports
/// (the specification's `component` object), the layer's digest, and `created` (RFC 3339).
/// Refused if `component` is not a WebAssembly component.
pub fn config(component: &[u8], created: &str) -> Result<Vec<u8>, String> {
    let (imports, exports) = names(component)?;
    let value = serde_json::json!({
        "created": created,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [format!("sha256:{}", super::store::sha256(component))],
        "component": {"exports": exports, "imports": imports, "target": null},
    });
    Ok(serde_json::to_vec(&value).expect("a JSON value serialises"))
}

/// A component's top-level import and export names.
fn names(component: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    use wasmparser::{Parser, Payload};
    if !Parser::is_component(component) {
        let what = if Parser::is_core_wasm(component) {
            "a core WebAssembly module, not a component (build it for wasm32-wasip2, or adapt it with `wasm-tools component new`)"
        } else {
            "not a WebAssembly component"
        };
        return Err(what.into());
    }
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(component) {
        let payload = payload.map_err(|e| format!("not a valid component: {e}"))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    let import = import.map_err(|e| format!("not a valid component: {e}"))?;
                    imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    let export = export.map_err(|e| format!("not a valid component: {e}"))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_manifest_reads_back_as_a_wasm_artifact() {
        let component = b"\0asm\x0d\0\x01\0";
        let m = manifest(&Descriptor::config(b"{}"), &Descriptor::layer(component));
        let a = parse(&m).unwrap();
        assert_eq!(a.layer, Descriptor::layer(component));
    }

    #[test]
    fn container_images_and_indexes_are_told_apart() {
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":2},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:00","size":2}]}"#;
        assert!(parse(image).unwrap_err().contains("container image"));
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert!(parse(index).unwrap_err().contains("image index"));
        assert!(
            parse(b"nonsense")
                .unwrap_err()
                .contains("not an OCI manifest")
        );
    }

    #[test]
    fn config_lists_a_components_imports_and_exports() {
        // A real component's names are checked by the push tests; here, what is not a
        // component is refused in words.
        let core = b"\0asm\x01\0\0\0";
        assert!(
            config(core, "1970-01-01T00:00:00Z")
                .unwrap_err()
                .contains("core WebAssembly module")
        );
        assert!(
            config(b"hello", "x")
                .unwrap_err()
                .contains("not a WebAssembly component")
        );
        let empty = b"\0asm\x0d\0\x01\0";
        let c: serde_json::Value =
            serde_json::from_slice(&config(empty, "1970-01-01T00:00:00Z").unwrap()).unwrap();
        assert_eq!(c["architecture"], "wasm");
        assert_eq!(c["component"]["imports"], serde_json::json!([]));
        assert_eq!(
            c["layerDigests"][0],
            format!("sha256:{}", crate::oci::store::sha256(empty))
        );
    }
}
