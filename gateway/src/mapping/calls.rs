//! Calls to functions that do not exist, found when a script compiles: Rhai itself
//! only notices them when the call runs, so a typo (`flaot_or_null`) in a branch a
//! test frame never reaches would dead-letter frames in the field. Every call in the
//! script (function bodies and closures included) is looked up by name among the
//! engine's functions (Rhai's own, mqgate's helpers), the script's functions and
//! Rhai's keywords. Calls into an imported module (`dl::decode`) are the module's
//! business and not looked up here.

use std::collections::BTreeSet;

use rhai::{ASTNode, Engine, Expr, Position, Stmt, AST};

/// Names Rhai handles itself rather than as functions.
const KEYWORDS: [&str; 11] = [
    "print",
    "debug",
    "type_of",
    "eval",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
    "this",
];

/// A call to a name nothing defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownCall {
    pub(crate) name: String,
    pub(crate) position: Position,
    /// The closest known name, when one is close enough to be the intended one.
    pub(crate) suggestion: Option<String>,
}

/// The first call in `ast` (in source order) to a function that neither `engine`
/// nor the script defines; `None` when every call resolves.
pub(crate) fn first_unknown_call(engine: &Engine, ast: &AST) -> Option<UnknownCall> {
    let calls = Calls::of(ast);
    if calls.calls.is_empty() {
        return None;
    }
    let mut known: BTreeSet<String> = engine
        .collect_fn_metadata(None, |f| Some(f.metadata.name.to_string()), true)
        .into_iter()
        .collect();
    known.extend(ast.iter_functions().map(|f| f.name.to_string()));
    known.extend(KEYWORDS.iter().map(|k| k.to_string()));
    let (name, position) = calls
        .calls
        .into_iter()
        .filter(|(name, _, method)| {
            // `f(x)` calls the function pointer held by a variable `f`, and
            // `obj.f(x)` the one held by a map property `f`.
            let defined = known.contains(name.as_str())
                || calls.variables.contains(name.as_str())
                || (*method && calls.properties.contains(name.as_str()));
            !defined
        })
        .map(|(name, position, _)| (name, position))
        .min_by_key(|(_, position)| (position.line(), position.position()))?;
    let suggestion = closest(&name, &known);
    Some(UnknownCall {
        name,
        position,
        suggestion,
    })
}

/// What the walk over a script collects.
#[derive(Default)]
struct Calls {
    /// (name, where, called as a method)
    calls: Vec<(String, Position, bool)>,
    /// Variables, loop variables and parameters: each may hold a function pointer.
    variables: BTreeSet<String>,
    /// Map keys and properties: each may hold a function pointer called as a method.
    properties: BTreeSet<String>,
}

impl Calls {
    fn of(ast: &AST) -> Calls {
        let mut found = Calls::default();
        for f in ast.iter_functions() {
            found
                .variables
                .extend(f.params.iter().map(|p| p.to_string()));
        }
        ast.walk(&mut |path: &[ASTNode<'_>]| {
            match path.last() {
                Some(ASTNode::Stmt(Stmt::FnCall(call, position)))
                | Some(ASTNode::Expr(Expr::FnCall(call, position)))
                    if !call.is_operator_call() && call.namespace.is_empty() =>
                {
                    found.add_call(&call.name, *position, false);
                }
                Some(ASTNode::Expr(Expr::MethodCall(call, position))) => {
                    found.add_call(&call.name, *position, true);
                }
                Some(ASTNode::Stmt(Stmt::Var(var, ..))) => {
                    found.variables.insert(var.0.name.to_string());
                }
                Some(ASTNode::Stmt(Stmt::For(each, ..))) => {
                    found.variables.insert(each.0.name.to_string());
                    if let Some(counter) = &each.1 {
                        found.variables.insert(counter.name.to_string());
                    }
                }
                Some(ASTNode::Expr(Expr::Map(map, ..))) => {
                    found
                        .properties
                        .extend(map.0.iter().map(|(key, _)| key.name.to_string()));
                }
                // A map of constants is folded into one value when it compiles.
                Some(ASTNode::Expr(Expr::DynamicConstant(value, ..))) => {
                    if let Some(map) = value.read_lock::<rhai::Map>() {
                        found.properties.extend(map.keys().map(|k| k.to_string()));
                    }
                }
                Some(ASTNode::Expr(Expr::Property(property, ..))) => {
                    found.properties.insert(property.2.to_string());
                }
                _ => {}
            }
            true
        });
        found
    }

    fn add_call(&mut self, name: &str, position: Position, method: bool) {
        // Operators and other internal names are not identifiers.
        let is_identifier =
            name.chars().all(|c| c.is_alphanumeric() || c == '_') && !name.is_empty();
        if is_identifier {
            self.calls.push((name.to_string(), position, method));
        }
    }
}

/// The known name closest to `name`, if it is within a typo's distance.
fn closest(name: &str, known: &BTreeSet<String>) -> Option<String> {
    let limit = (name.chars().count() / 4).clamp(1, 3);
    known
        .iter()
        .filter(|k| !k.contains('$'))
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k.clone())
}

#[cfg(test)]
mod tests {
    use super::first_unknown_call;
    use crate::mapping::engine::{sandboxed_engine, ScriptLimits};

    fn unknown(script: &str) -> Option<(String, usize, Option<String>)> {
        let engine = sandboxed_engine("t", &ScriptLimits::default());
        let ast = engine.compile(script).expect("compiles");
        first_unknown_call(&engine, &ast)
            .map(|c| (c.name, c.position.line().unwrap_or(0), c.suggestion))
    }

    #[test]
    fn a_misspelt_helper_is_found_with_its_line_and_the_name_meant() {
        let found =
            unknown("fn map(frame) {\n  let t = frame.text;\n  #{ t: flaot_or_null(t) }\n}");
        assert_eq!(
            found,
            Some(("flaot_or_null".into(), 3, Some("float_or_null".into())))
        );
    }

    #[test]
    fn a_misspelt_method_is_found() {
        let found = unknown("fn map(frame) {\n  frame.text.to_uppr()\n}");
        assert_eq!(found.map(|f| (f.0, f.1)), Some(("to_uppr".into(), 2)));
    }

    #[test]
    fn calls_in_closures_and_other_functions_are_looked_at_too() {
        let found =
            unknown("fn map(frame) { helper(frame) }\nfn helper(f) {\n  [1].map(|x| nope(x))\n}");
        assert_eq!(found.map(|f| (f.0, f.1)), Some(("nope".into(), 3)));
    }

    #[test]
    fn what_resolves_is_not_reported() {
        for script in [
            // helpers, Rhai's own functions and methods, keywords, operators
            "fn map(frame) { let v = float_or_null(frame.text); print(type_of(v)); \
             let s = `${v}`; s.to_upper(); parse_int(\"1\") + 1 == 2 && 1 in [1]; \
             for (x, i) in 0..3 { x + i } }",
            // the script's own functions, a function pointer in a variable and in a map
            "fn map(frame) { let f = Fn(\"twice\"); let m = #{ act: |x| x }; \
             f(2); m.act(1); f.call(3); twice(4) }\nfn twice(x) { x * 2 }",
            // a parameter holding a function pointer
            "fn map(frame) { apply(|x| x, 1) }\nfn apply(g, v) { g(v) }",
            // calls into an imported module are the module's to resolve
            "fn map(frame) { lib::decode(frame) }",
        ] {
            assert_eq!(unknown(script), None, "{script}");
        }
    }

    #[test]
    fn a_name_far_from_every_known_one_gets_no_suggestion() {
        let found = unknown("fn map(frame) { zzqqxxyy() }");
        assert_eq!(found, Some(("zzqqxxyy".into(), 1, None)));
    }
}
