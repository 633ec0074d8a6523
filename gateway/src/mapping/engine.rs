//! The sandboxed Rhai engine: limits, no `eval`, imports only from the script's
//! library (`library.rs`), no `sleep`, print to tracing, and a time limit per call
//! (the calling thread's CPU time) checked from the progress callback.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::module_resolvers::ModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Module, Position, Shared};

use super::helpers;

/// Resource limits for one script call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Rhai operations per call (a loop iteration, a function call, an expression...).
    pub max_operations: u64,
    /// Nesting depth of expressions and statements.
    pub max_expr_depth: usize,
    /// Longest string a script may build, in bytes.
    pub max_string_size: usize,
    /// Most elements in an array or bytes in a blob.
    pub max_array_size: usize,
    /// Most entries in a map.
    pub max_map_size: usize,
    /// Time per call, counted on the calling thread's CPU clock (time spent waiting
    /// for a core under load does not count).
    pub max_call_time: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 100_000,
            max_expr_depth: 64,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_call_time: Duration::from_millis(100),
        }
    }
}

/// Depth of nested script function calls (recursion) allowed.
pub const MAX_CALL_LEVELS: usize = 24;

/// The token the progress callback ends a call with when its deadline passed.
pub(crate) const DEADLINE_TOKEN: &str = "mqgate:deadline";

/// How many operations pass between two looks at the clock.
const CLOCK_EVERY: u64 = 512;

thread_local! {
    /// The time limit of the script call running on this thread, if any, and the
    /// thread's CPU time when the call was first looked at.
    static DEADLINE: Cell<Option<(Duration, Option<Duration>)>> = const { Cell::new(None) };
}

/// Called from the progress callback every `CLOCK_EVERY` operations: `true` once the
/// call has used more CPU time than its limit. Reading the clock costs about as much
/// as a small script, so a call that ends within `CLOCK_EVERY` operations never does;
/// the first look only records where the call stands.
fn past_deadline() -> bool {
    DEADLINE.with(|d| match d.get() {
        None => false,
        Some((limit, None)) => {
            d.set(Some((limit, Some(thread_time()))));
            false
        }
        Some((limit, Some(base))) => thread_time().saturating_sub(base) >= limit,
    })
}

/// CPU time this thread has used. Limits count the script's own work, so a frame
/// is not dead-lettered because the machine was busy and the thread waited.
#[cfg(unix)]
pub(super) fn thread_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return wall_time();
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(unix))]
pub(super) fn thread_time() -> Duration {
    wall_time()
}

/// Fallback clock: time since the first call in this process.
fn wall_time() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Sets this thread's time limit for the life of the guard.
pub(crate) struct DeadlineGuard(Option<(Duration, Option<Duration>)>);

impl DeadlineGuard {
    pub(crate) fn start(limit: Duration) -> DeadlineGuard {
        DeadlineGuard(DEADLINE.with(|d| d.replace(Some((limit, None)))))
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.0));
    }
}

/// The error of an `import` that names no module of the script's library.
pub(crate) fn refuse_import(path: &str, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        format!("import {path:?} refused: mapping scripts cannot import modules").into(),
        pos,
    ))
}

/// Refuses every `import`: scripts may not read modules from disk.
struct NoImports;

impl ModuleResolver for NoImports {
    fn resolve(
        &self,
        _engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        Err(refuse_import(path, pos))
    }
}

/// An engine with every sandbox setting and helper in place.
pub(super) fn sandboxed_engine(source_id: &str, limits: &ScriptLimits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.max_operations)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_module_resolver(NoImports)
        .disable_symbol("eval");
    engine.on_progress(|ops| {
        if ops % CLOCK_EVERY != 0 {
            return None;
        }
        past_deadline().then(|| Dynamic::from(DEADLINE_TOKEN))
    });
    let source: Arc<str> = source_id.into();
    let print_source = source.clone();
    engine.on_print(move |s| tracing::info!(source = &*print_source, "script: {s}"));
    engine.on_debug(move |s, _, pos| tracing::debug!(source = &*source, %pos, "script: {s}"));
    // Rhai's core `sleep` would block the worker thread without using operations or
    // CPU time, out of reach of both limits.
    engine.register_fn("sleep", |_: rhai::INT| -> Result<(), Box<EvalAltResult>> {
        helpers::fail("sleep is not available in mapping scripts".into())
    });
    engine.register_fn(
        "sleep",
        |_: rhai::FLOAT| -> Result<(), Box<EvalAltResult>> {
            helpers::fail("sleep is not available in mapping scripts".into())
        },
    );
    helpers::register(&mut engine);
    engine
}

/// Call the script function `name` with one argument, within `max_call_time`:
/// how both `map(frame)` and `encode(command)` run.
pub(super) fn call_one(
    engine: &Engine,
    ast: &rhai::AST,
    name: &str,
    arg: Dynamic,
    max_call_time: Duration,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let _deadline = DeadlineGuard::start(max_call_time);
    engine.call_fn_with_options::<Dynamic>(
        rhai::CallFnOptions::new()
            .eval_ast(false)
            .rewind_scope(true),
        &mut rhai::Scope::new(),
        ast,
        name,
        (arg,),
    )
}
