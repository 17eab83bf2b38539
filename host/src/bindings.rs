//! Host-side bindings for the `healthprobe:probe` WIT world, and for `healthprobe:tls`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "probe",
    imports: { default: async },
    exports: { default: async },
});

/// Host-side bindings for `healthprobe:tls`: ALPN and peer facts for a probe's `wasi:tls`
/// handshakes (see `imports/tls.rs`).
pub mod tls {
    wasmtime::component::bindgen!({
        path: "../wit/deps/tls",
        world: "imports",
    });
}
