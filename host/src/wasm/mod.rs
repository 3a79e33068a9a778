//! Wasmtime: the engine, compiled-component cache, bindings, the base linker, and the two WASI
//! flavours (deterministic for orchestrations, real for activities). The weft interfaces are
//! implemented, and linked per guest kind, by the runtime (`runtime::imports`).

pub mod bindings;
mod limits;
mod wasi;

pub use limits::{GuestLimit, Limits, trap_message};
pub use wasi::{OrchestrationClock, activity_wasi, orchestration_wasi};

use bindings::weft::workflow::types;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Why a component cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    #[error("the component cannot be linked: {0}")]
    Link(String),
    #[error("the component does not answer which orchestrations and activities it exports: {0}")]
    Describe(String),
}

/// The most memory one guest may use, by default.
pub const MAX_GUEST_MEMORY: usize = 64 << 20;

/// The engine every component of this process runs on, made on first use. Instances come
/// from a pool sized then for `instances` live at once (hot orchestrations plus running
/// activities), each with room for `max_memory` bytes of linear memory: no mapping and
/// unmapping of memory per instance. One engine per process keeps the pool's reservations (and
/// the kernel's count of mappings) bounded however many runtimes the process holds. A thread
/// moves the engine's epoch on every [`limits::TICK`]: guests count their running time in it.
pub fn engine(instances: u32, max_memory: usize) -> Result<Engine, ComponentError> {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    if let Some(e) = ENGINE.get() {
        return Ok(e.clone());
    }
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    // A Rust component holds a handful of core instances, memories and tables.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(4))
        .total_stacks(instances)
        .max_memory_size(max_memory)
        .decommit_batch_size(64);
    config.memory_reservation(max_memory as u64);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).map_err(|e| ComponentError::Engine(format!("{e:#}")))?;
    let engine = ENGINE.get_or_init(|| engine).clone();
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("weft-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(limits::TICK);
            }
        })
        .map_err(|e| ComponentError::Engine(e.to_string()))?;
    Ok(engine)
}

/// A wasm store for one guest call, held to `limits`.
pub fn new_store<C: Send + 'static>(
    engine: &Engine,
    state: GuestState<C>,
) -> wasmtime::Store<GuestState<C>> {
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_callback(|mut s| s.data_mut().limits.tick());
    store.set_epoch_deadline(1);
    store
}

/// Whether an instantiation failed only because the pool is full for now.
pub fn is_pool_exhausted(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
}

/// Compiles components, keeping compiled copies on disk keyed by digest and engine.
pub struct Compiler {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    engine_key: String,
}

impl Compiler {
    pub fn new(engine: Engine, cache_dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = format!("{:016x}", h.finish());
        Self {
            engine,
            cache_dir,
            engine_key,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `bytes` (digest `digest`), or loads the compiled copy from the cache.
    pub fn compile(&self, digest: &str, bytes: &[u8]) -> Result<Component, ComponentError> {
        let cached = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{}.cwasm", self.engine_key)));
        if let Some(path) = &cached
            && path.exists()
        {
            match load_compiled(&self.engine, path) {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!("ignoring cached {}: {e}", path.display()),
            }
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| ComponentError::Invalid(format!("{e:#}")))?;
        if let Some(path) = &cached
            && let Err(e) = write_atomically(path, &compiled)
        {
            tracing::warn!("cannot cache {}: {e}", path.display());
        }
        // SAFETY-relevant: these bytes were produced by this engine just now.
        load_serialized(&self.engine, &compiled)
    }
}

#[allow(unsafe_code, reason = "loading wasmtime's own compiled output")]
fn load_compiled(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was written by `Compiler::compile` for this engine configuration (its
    // name carries the engine's compatibility hash), into a directory weft owns; wasmtime
    // checks the header and refuses files from other engines or versions.
    unsafe { Component::deserialize_file(engine, path) }
}

#[allow(unsafe_code, reason = "loading wasmtime's own compiled output")]
fn load_serialized(engine: &Engine, bytes: &[u8]) -> Result<Component, ComponentError> {
    // SAFETY: `bytes` come straight from `Engine::precompile_component` of this engine.
    unsafe { Component::deserialize(engine, bytes) }
        .map_err(|e| ComponentError::Invalid(format!("{e:#}")))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    // Content first, then the name: after a power cut the cache holds the whole file or
    // none, never a name over a short or empty one (which ext4 can leave after a rename).
    let mut file = std::fs::File::create(&tmp)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)?;
    // And the name made durable: a restart after a power cut finds the compiled copy instead
    // of compiling every component again.
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Outbound HTTP policy of a store.
pub enum HttpPolicy {
    /// Activities: real requests, with the attempt's trace context unless the request has
    /// its own.
    Allow { traceparent: Option<String> },
    /// Orchestrations: every request is refused.
    Deny,
}

impl wasmtime_wasi_http::WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        match self {
            Self::Allow { traceparent } => {
                let mut request = request;
                if let Some(tp) = traceparent.as_deref()
                    && !request.headers().contains_key("traceparent")
                    && let Ok(value) = http::HeaderValue::from_str(tp)
                {
                    request.headers_mut().insert("traceparent", value);
                }
                let default = wasmtime_wasi_http::default_hooks();
                default.send_request(request, options, fut)
            }
            Self::Deny => {
                tracing::warn!(
                    "refused outbound HTTP to {} from an orchestration",
                    request.uri()
                );
                Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
            }
        }
    }
}

/// The data of a wasm store: WASI state plus `C`, the weft context of the call.
pub struct GuestState<C> {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub http_policy: HttpPolicy,
    pub limits: Limits,
    pub ctx: C,
}

impl<C> GuestState<C> {
    pub fn new(wasi: WasiCtx, http_policy: HttpPolicy, limits: Limits, ctx: C) -> Self {
        Self {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_policy,
            limits,
            ctx,
        }
    }
}

impl<C: Send> WasiView for GuestState<C> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl<C: Send> WasiHttpView for GuestState<C> {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}

impl<C: Send> types::Host for GuestState<C> {}

/// The import name of the `orchestration-context` interface.
pub const ORCHESTRATION_CONTEXT: &str = "weft:workflow/orchestration-context@0.1.0";
/// The import name of the `activity-context` interface.
pub const ACTIVITY_CONTEXT: &str = "weft:workflow/activity-context@0.1.0";

/// A linker with WASI, `wasi:http` and the weft types, but neither context interface: each
/// guest kind adds the one it is given.
pub fn linker<C>(engine: &Engine) -> wasmtime::Result<Linker<GuestState<C>>>
where
    C: Send + 'static,
{
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Defines every function `component` imports from interface `interface` (a full import name,
/// such as [`ACTIVITY_CONTEXT`]) as one that traps with `why` and the function's name. For a
/// guest kind that is not given the interface: the component links, and a call to it fails
/// with a message that says why. Nothing is defined if the component does not import it.
pub fn trap_imports<T: 'static>(
    linker: &mut Linker<T>,
    component: &Component,
    interface: &str,
    why: &str,
) -> wasmtime::Result<()> {
    let engine = linker.engine().clone();
    let ty = component.component_type();
    let Some(import) = ty.get_import(&engine, interface) else {
        return Ok(());
    };
    let ComponentItem::ComponentInstance(instance) = import.ty else {
        wasmtime::bail!("import `{interface}` is not an instance");
    };
    let mut linker = linker.instance(interface)?;
    for (name, item) in instance.exports(&engine) {
        if let ComponentItem::ComponentFunc(_) = item.ty {
            let message = format!("{why} (called `{name}`)");
            linker.func_new(name, move |_, _, _, _| {
                Err(wasmtime::Error::msg(message.clone()))
            })?;
        }
    }
    Ok(())
}
