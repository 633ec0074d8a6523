//! One codec's QuickJS runtime: its files evaluated once into one context, then
//! called per frame within a memory limit (the runtime's allocations) and a time
//! limit (the calling thread's CPU time, checked from QuickJS's interrupt handler).
//! The memory limit is kept by the runtime's allocator (`memory.rs`).
//! QuickJS itself has no file, network or module access; the clock is fenced by the
//! prelude. A call that hits a limit leaves the context in an unknown state, so the
//! next call starts from a freshly loaded one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rquickjs::context::EvalOptions;
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Function, Runtime};

use super::memory::{Limited, Usage};
use crate::mapping::engine::thread_time;

/// Fences the clock and defines the entries that call `decodeUplink` and `encodeDownlink`.
const PRELUDE: &str = include_str!("prelude.js");

/// Stack a codec may use (nested calls), in bytes.
const MAX_STACK: usize = 256 * 1024;

/// Longest message of a thrown error kept, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// Limits of one codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsLimits {
    /// Memory the codec's runtime may hold (its code, globals and what a call builds).
    pub max_memory: usize,
    /// CPU time per call.
    pub max_call_time: Duration,
}

/// One source file of a codec: where it came from and its text.
#[derive(Debug, Clone)]
pub(crate) struct JsFile {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

/// Why a call (or loading the files) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsFailure {
    /// Thrown by the code: `at` is `file:line:column` when the engine knows it.
    Thrown {
        at: Option<String>,
        message: String,
    },
    Timeout,
    OutOfMemory,
    StackOverflow,
}

/// Which entry of the prelude to call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry {
    Decode,
    Encode,
}

impl Entry {
    /// The prelude's global that calls the codec's function.
    fn global(self) -> &'static str {
        match self {
            Entry::Decode => "__mqgate_decode",
            Entry::Encode => "__mqgate_encode",
        }
    }
}

/// A codec loaded into its own runtime; calls are serialised.
pub(crate) struct Sandbox {
    files: Vec<JsFile>,
    limits: JsLimits,
    clock: Arc<Clock>,
    usage: Arc<Usage>,
    loaded: Mutex<Option<Loaded>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field(
                "files",
                &self.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
            )
            .field("limits", &self.limits)
            .finish()
    }
}

struct Loaded {
    // The context before the runtime: a context holds its runtime alive.
    context: Context,
    _runtime: Runtime,
}

/// The deadline of the call running in a runtime, read by its interrupt handler.
#[derive(Debug, Default)]
struct Clock {
    /// Thread CPU time at the start of the call, in ns; 0 while no call runs.
    start_ns: AtomicU64,
    limit_ns: AtomicU64,
    /// Set when the handler ended a call.
    fired: AtomicBool,
}

impl Clock {
    fn start(&self, limit: Duration) {
        self.fired.store(false, Ordering::Relaxed);
        self.limit_ns.store(nanos(limit), Ordering::Relaxed);
        self.start_ns
            .store(nanos(thread_time()).max(1), Ordering::Relaxed);
    }

    fn stop(&self) {
        self.start_ns.store(0, Ordering::Relaxed);
    }

    fn past(&self) -> bool {
        let start = self.start_ns.load(Ordering::Relaxed);
        if start == 0 {
            return false;
        }
        let past =
            nanos(thread_time()).saturating_sub(start) >= self.limit_ns.load(Ordering::Relaxed);
        if past {
            self.fired.store(true, Ordering::Relaxed);
        }
        past
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Sandbox {
    /// Load `files` in order (libraries first, the codec last).
    pub(crate) fn new(
        files: Vec<JsFile>,
        limits: JsLimits,
    ) -> Result<Sandbox, (PathBuf, JsFailure)> {
        let sandbox = Sandbox {
            files,
            limits,
            clock: Arc::new(Clock::default()),
            usage: Arc::new(Usage::default()),
            loaded: Mutex::new(None),
        };
        let loaded = sandbox.load()?;
        *sandbox.lock() = Some(loaded);
        Ok(sandbox)
    }

    /// Whether the codec defines a global function `name`.
    pub(crate) fn defines(&self, name: &str) -> bool {
        let guard = self.lock();
        guard.as_ref().is_some_and(|l| {
            l.context.with(|ctx| {
                let v: Option<Function<'_>> = ctx.globals().get(name).ok();
                v.is_some()
            })
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Loaded>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load(&self) -> Result<Loaded, (PathBuf, JsFailure)> {
        let here = |e: rquickjs::Error| {
            (
                self.files
                    .last()
                    .map(|f| f.path.clone())
                    .unwrap_or_default(),
                JsFailure::Thrown {
                    at: None,
                    message: format!("cannot start the JavaScript engine: {e}"),
                },
            )
        };
        self.usage.clear();
        let allocator = Limited::new(self.limits.max_memory, self.usage.clone());
        let runtime = Runtime::new_with_alloc(allocator).map_err(here)?;
        runtime.set_max_stack_size(MAX_STACK);
        let clock = self.clock.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || clock.past())));
        let context = Context::full(&runtime).map_err(here)?;
        context.with(|ctx| -> Result<(), (PathBuf, JsFailure)> {
            eval::<()>(&ctx, "prelude.js", PRELUDE.as_bytes())
                .map_err(|f| (PathBuf::from("prelude.js"), f))?;
            for file in &self.files {
                self.clock.start(self.limits.max_call_time);
                let result = eval::<rquickjs::Value<'_>>(
                    &ctx,
                    &file.path.display().to_string(),
                    file.text.as_bytes(),
                );
                self.clock.stop();
                result.map_err(|f| (file.path.clone(), self.failure(f)))?;
            }
            Ok(())
        })?;
        Ok(Loaded {
            context,
            _runtime: runtime,
        })
    }

    /// A timeout is what the interrupt handler ended, and running out of memory
    /// what the allocator refused, whatever QuickJS reports.
    fn failure(&self, f: JsFailure) -> JsFailure {
        if self.clock.fired.load(Ordering::Relaxed) {
            JsFailure::Timeout
        } else if self.usage.refused() {
            JsFailure::OutOfMemory
        } else {
            f
        }
    }

    /// Call `entry` with the input object as JSON and the frame's receive time;
    /// the codec's result comes back as JSON text.
    pub(crate) fn call(
        &self,
        entry: Entry,
        input_json: &str,
        received_ms: f64,
    ) -> Result<String, JsFailure> {
        let mut guard = self.lock();
        if guard.is_none() {
            *guard = Some(self.load().map_err(|(_, f)| f)?);
        }
        let loaded = guard.as_ref().expect("loaded above");
        let result = loaded.context.with(|ctx| {
            let f: Function<'_> =
                ctx.globals()
                    .get(entry.global())
                    .map_err(|e| JsFailure::Thrown {
                        at: None,
                        message: e.to_string(),
                    })?;
            self.usage.clear();
            self.clock.start(self.limits.max_call_time);
            let out = f
                .call::<_, rquickjs::Value<'_>>((input_json, received_ms))
                .catch(&ctx);
            self.clock.stop();
            let out = out.map_err(|e| self.failure(caught(e)))?;
            match out.as_string() {
                Some(s) => s.to_string().map_err(|e| JsFailure::Thrown {
                    at: None,
                    message: e.to_string(),
                }),
                // `JSON.stringify` of a function or a symbol.
                None => Ok("null".into()),
            }
        });
        if let Err(JsFailure::Timeout | JsFailure::OutOfMemory | JsFailure::StackOverflow) = &result
        {
            // Drop the runtime the call left half done; the next call loads afresh.
            *guard = None;
        }
        result
    }
}

/// Evaluate `source` as a global script named `name` (errors then name it).
fn eval<'js, V: rquickjs::FromJs<'js>>(
    ctx: &Ctx<'js>,
    name: &str,
    source: &[u8],
) -> Result<V, JsFailure> {
    let mut options = EvalOptions::default();
    options.global = true;
    options.strict = false;
    options.filename = Some(name.to_string());
    ctx.eval_with_options::<V, _>(source, options)
        .catch(ctx)
        .map_err(caught)
}

/// A caught error as a failure: out of memory and stack overflow by QuickJS's
/// messages, anything else thrown with where it was thrown.
fn caught(e: CaughtError<'_>) -> JsFailure {
    match e {
        CaughtError::Exception(ex) => {
            let message = ex.message().unwrap_or_default();
            let name: Option<String> = ex.get("name").ok();
            let name = name.unwrap_or_else(|| "Error".into());
            if message == "out of memory" {
                return JsFailure::OutOfMemory;
            }
            if message.contains("stack overflow") || message.contains("call stack size") {
                return JsFailure::StackOverflow;
            }
            let at = ex.stack().as_deref().and_then(first_location).or_else(|| {
                // A syntax error names its place in its own fields.
                let file: Option<String> = ex.get("fileName").ok();
                let line: Option<i32> = ex.get("lineNumber").ok();
                Some(format!("{}:{}", file?, line?))
            });
            JsFailure::Thrown {
                at,
                message: bounded(format!("{name}: {message}")),
            }
        }
        CaughtError::Value(v) => {
            let message = match v.as_string().and_then(|s| s.to_string().ok()) {
                Some(s) => s,
                None => v
                    .ctx()
                    .json_stringify(v.clone())
                    .ok()
                    .flatten()
                    .and_then(|s| s.to_string().ok())
                    .unwrap_or_else(|| format!("a {}", v.type_name())),
            };
            JsFailure::Thrown {
                at: None,
                message: bounded(format!("threw {message}")),
            }
        }
        CaughtError::Error(rquickjs::Error::Allocation) => JsFailure::OutOfMemory,
        CaughtError::Error(e) => JsFailure::Thrown {
            at: None,
            message: e.to_string(),
        },
    }
}

/// `text` cut to `MAX_MESSAGE_CHARS`: a codec's message goes into logs and dead letters.
fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// The first `file:line:column` of a QuickJS stack trace that is not the prelude.
fn first_location(stack: &str) -> Option<String> {
    stack.lines().find_map(|line| {
        let line = line.trim().strip_prefix("at ")?;
        let place = match (line.rfind('('), line.ends_with(')')) {
            (Some(open), true) => &line[open + 1..line.len() - 1],
            _ => line,
        };
        (place.contains(':') && !place.starts_with("prelude.js") && place != "native")
            .then(|| place.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::first_location;

    #[test]
    fn the_place_is_the_first_frame_outside_the_prelude() {
        let stack = "    at decode (scripts/lib/x.js:12:9)\n    at decodeUplink (scripts/x.js:3:5)\n    at <anonymous> (prelude.js:47:17)\n";
        assert_eq!(first_location(stack), Some("scripts/lib/x.js:12:9".into()));
        assert_eq!(first_location("    at prelude.js:1:1\n"), None);
        assert_eq!(
            first_location("    at codec.js:4:1\n"),
            Some("codec.js:4:1".into())
        );
    }
}
