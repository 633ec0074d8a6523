//! Script libraries: the `.rhai` files of the `lib/` folder beside a mapping script,
//! which the script imports by name (`import "decentlab" as dl;` reads
//! `lib/decentlab.rhai`). Every module of the folder is read, compiled and evaluated
//! once when the script is loaded (and on reload), under the script's sandbox limits;
//! at run time an `import` only looks the name up, and any other path is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::module_resolvers::ModuleResolver;
use rhai::{Engine, EvalAltResult, Module, Position, Scope, Shared, AST};

use super::calls::first_unknown_call;
use super::engine::{refuse_import, DeadlineGuard, ScriptLimits};
use super::error::{from_eval, MappingError};

/// The library folder's name, beside the script.
const LIB_DIR: &str = "lib";

/// Compile and evaluate the modules of the `lib/` folder beside `script` (if there
/// is one) and let `engine` import them. The first module that does not compile
/// or load is the error, named by its file and line.
pub(crate) fn install(
    engine: &mut Engine,
    script: &Path,
    limits: &ScriptLimits,
) -> Result<(), MappingError> {
    let dir = script.parent().unwrap_or(Path::new("")).join(LIB_DIR);
    let files = match module_files(&dir) {
        Some(files) => files,
        None => return Ok(()),
    };
    let mut sources = BTreeMap::new();
    for (name, path) in files {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| MappingError::Library {
            message: format!("{label}: cannot read: {e}"),
        })?;
        let mut ast = engine
            .compile(&text)
            .map_err(|e| MappingError::compile(&label, &e))?;
        if let Some(call) = first_unknown_call(engine, &ast) {
            return Err(MappingError::unknown_call(label, call));
        }
        ast.set_source(label.as_str());
        sources.insert(name, (label, ast));
    }
    let loading = Arc::new(Loading {
        sources,
        loaded: Mutex::new(BTreeMap::new()),
        active: Mutex::new(Vec::new()),
        failure: Mutex::new(None),
        limits: limits.clone(),
    });
    engine.set_module_resolver(Loader(loading.clone()));
    let names: Vec<String> = loading.sources.keys().cloned().collect();
    let mut outcome = Ok(());
    for name in names {
        if let Err(e) = loading.load(engine, &name, Position::NONE) {
            outcome = Err(loading.take_failure().unwrap_or_else(|| {
                let label = &loading.sources[&name].0;
                MappingError::Library {
                    message: from_eval(label, &e, limits).to_string(),
                }
            }));
            break;
        }
    }
    let modules = std::mem::take(&mut *lock(&loading.loaded));
    engine.set_module_resolver(LibraryResolver { modules });
    outcome
}

/// `(module name, file)` of every `.rhai` file in `dir`, sorted; `None` without the folder.
fn module_files(dir: &Path) -> Option<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rhai"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
        .collect();
    files.sort();
    Some(files)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The modules of a library while they are being evaluated: each once, in the
/// order imports need them, a cycle refused.
struct Loading {
    sources: BTreeMap<String, (String, AST)>,
    loaded: Mutex<BTreeMap<String, Shared<Module>>>,
    /// The modules being evaluated, outermost first.
    active: Mutex<Vec<String>>,
    /// The first error, named by the module it happened in.
    failure: Mutex<Option<MappingError>>,
    limits: ScriptLimits,
}

impl Loading {
    fn load(
        &self,
        engine: &Engine,
        name: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if let Some(m) = lock(&self.loaded).get(name) {
            return Ok(m.clone());
        }
        let Some((label, ast)) = self.sources.get(name) else {
            return Err(refuse_import(name, pos));
        };
        {
            let mut active = lock(&self.active);
            if active.iter().any(|a| a == name) {
                let chain = active.join(" → ");
                return Err(Box::new(EvalAltResult::ErrorRuntime(
                    format!("import cycle: {chain} → {name}").into(),
                    pos,
                )));
            }
            active.push(name.to_string());
        }
        let result = {
            let _deadline = DeadlineGuard::start(self.limits.max_call_time);
            Module::eval_ast_as_new(Scope::new(), ast, engine)
        };
        lock(&self.active).pop();
        match result {
            Ok(module) => {
                let module: Shared<Module> = module.into();
                lock(&self.loaded).insert(name.to_string(), module.clone());
                Ok(module)
            }
            Err(e) => {
                let mut failure = lock(&self.failure);
                if failure.is_none() {
                    *failure = Some(MappingError::Library {
                        message: from_eval(label, &e, &self.limits).to_string(),
                    });
                }
                Err(e)
            }
        }
    }

    fn take_failure(&self) -> Option<MappingError> {
        lock(&self.failure).take()
    }
}

/// Resolves imports while the library loads.
struct Loader(Arc<Loading>);

impl ModuleResolver for Loader {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        self.0.load(engine, path, pos)
    }
}

/// Resolves imports at run time: a module of the library, already evaluated, or
/// the refusal every other path gets.
struct LibraryResolver {
    modules: BTreeMap<String, Shared<Module>>,
}

impl ModuleResolver for LibraryResolver {
    fn resolve(
        &self,
        _engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        match self.modules.get(path) {
            Some(m) => Ok(m.clone()),
            None => Err(refuse_import(path, pos)),
        }
    }
}
