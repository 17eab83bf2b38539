//! Host-side bindings for the `healthprobe:probe` WIT worlds, and for `healthprobe:tls`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "probe",
    imports: { default: async },
    exports: { default: async },
});

/// The world of `healthprobe:probe@0.1.0` (`probe-text` from 0.1.1 on): text details and
/// no filled-in defaults. Its imports and types are the ones above.
pub mod text {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "probe-text",
        imports: { default: async },
        exports: { default: async },
        with: {
            "healthprobe:probe/types": crate::bindings::healthprobe::probe::types,
            "healthprobe:probe/http": crate::bindings::healthprobe::probe::http,
        },
    });
}

/// Host-side bindings for `healthprobe:tls`: ALPN and peer facts for a probe's `wasi:tls`
/// handshakes (see `imports/tls.rs`).
pub mod tls {
    wasmtime::component::bindgen!({
        path: "../wit/deps/tls",
        world: "imports",
    });
}
