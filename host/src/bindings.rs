//! Host-side bindings for the `healthprobe:probe` WIT world.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "probe",
    imports: { default: async },
    exports: { default: async },
});
