//! Host bindings for the `weft:workflow` WIT package.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "workflow",
    imports: { default: async | trappable },
    exports: { default: async },
});
