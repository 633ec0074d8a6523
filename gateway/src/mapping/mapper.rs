//! `Mapper`: one source's compiled script, filter and topic template.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mqtt_proto::codec::QoS;
use mqtt_proto::topic::{InvalidTopic, TopicName};
use rhai::{Dynamic, Engine, Map, Scope, AST};

use super::calls::first_unknown_call;
use super::convert::{frame_to_dynamic, payload_bytes, placeholder_text};
use super::engine::{call_one, sandboxed_engine, DeadlineGuard, ScriptLimits};
use super::error::{from_eval, MapError, MappingError};
use super::js::{self, JsCodec, JsLimits};
use super::library;
use super::template::Template;
use crate::frame::{Frame, Meta};
use crate::message::Message;

/// What a mapping falls back on when its script leaves a field out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingDefaults {
    /// Topic template, e.g. `sensors/{source}/{name}`.
    pub topic: String,
    pub qos: QoS,
    pub retain: bool,
    /// A Rhai expression over `frame`, evaluated before the script; `false` filters the frame out.
    pub filter: Option<String>,
}

/// The outcome of mapping one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    Messages(Vec<Message>),
    /// The filter or the script chose to publish nothing.
    Filtered,
    /// The frame goes to the dead-letter topic with this error.
    Failed(MapError),
}

#[derive(Debug)]
struct Script {
    ast: AST,
    label: String,
}

/// What turns a frame into messages: a Rhai script's `map`, or a JavaScript
/// codec's `decodeUplink`.
#[derive(Debug)]
enum Program {
    Rhai(Script),
    Js(JsCodec),
}

/// What a JavaScript codec needs beyond the script and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecOptions {
    /// Files evaluated before the codec, in order (a vendor's shared library).
    pub libraries: Vec<PathBuf>,
    /// Memory the codec's engine may hold, in bytes.
    pub max_memory: usize,
}

impl CodecOptions {
    /// The codec's sandbox: this memory, and the script limits' time per call.
    pub fn limits(&self, max_call_time: std::time::Duration) -> JsLimits {
        JsLimits {
            max_memory: self.max_memory,
            max_call_time,
        }
    }
}

/// The memory a codec may hold when its mapping does not say.
pub const DEFAULT_CODEC_MEMORY: usize = 16 * 1024 * 1024;

impl Default for CodecOptions {
    fn default() -> Self {
        CodecOptions {
            libraries: Vec::new(),
            max_memory: DEFAULT_CODEC_MEMORY,
        }
    }
}

/// Turns a source's frames into messages. Compiled once; `map` is safe to call from
/// several threads at once.
#[derive(Debug)]
pub struct Mapper {
    source: String,
    engine: Engine,
    script: Option<Program>,
    filter: Option<AST>,
    template: Template,
    defaults: MappingDefaults,
    limits: ScriptLimits,
    /// Names the mapping in errors when there is no script.
    plain_label: String,
    /// Warnings a JavaScript codec returned, counted.
    warnings: AtomicU64,
    /// Its warnings are logged once a minute, with a count of the others.
    warnings_log: log_limit::LogLimit,
}

const RESERVED: [&str; 4] = ["payload", "topic", "qos", "retain"];

impl Mapper {
    /// Compile once. `script`: (path for messages, source text); `None` publishes each
    /// frame's bytes as they are. A `.js` script is a JavaScript codec, with no
    /// library and the default memory limit (see [`Mapper::with_codec`]).
    pub fn new(
        source_id: &str,
        script: Option<(&Path, &str)>,
        defaults: MappingDefaults,
        limits: ScriptLimits,
    ) -> Result<Mapper, MappingError> {
        Mapper::with_codec(
            source_id,
            script,
            defaults,
            limits,
            &CodecOptions::default(),
        )
    }

    /// As [`Mapper::new`], with what a JavaScript codec needs besides.
    pub fn with_codec(
        source_id: &str,
        script: Option<(&Path, &str)>,
        defaults: MappingDefaults,
        limits: ScriptLimits,
        options: &CodecOptions,
    ) -> Result<Mapper, MappingError> {
        let mut engine = sandboxed_engine(source_id, &limits);
        let script = match script {
            None => None,
            Some((path, text)) if js::is_codec(path) => {
                let codec = JsCodec::load(
                    path,
                    text,
                    &options.libraries,
                    options.limits(limits.max_call_time),
                )?;
                if !codec.decodes() {
                    return Err(MappingError::Library {
                        message: format!(
                            "{}: defines no `decodeUplink(input)`, which a mapping calls for each frame",
                            codec.label()
                        ),
                    });
                }
                Some(Program::Js(codec))
            }
            Some((path, text)) => {
                library::install(&mut engine, path, &limits)?;
                let label = path.display().to_string();
                let mut ast = engine
                    .compile(text)
                    .map_err(|e| MappingError::compile(&label, &e))?;
                let has_map = ast
                    .iter_functions()
                    .any(|f| f.name == "map" && f.params.len() == 1);
                if !has_map {
                    return Err(MappingError::NoMapFunction { path: label });
                }
                if let Some((name, is_const, _)) = ast.iter_literal_variables(true, true).next() {
                    return Err(MappingError::TopLevelVariable {
                        path: label,
                        keyword: if is_const { "const" } else { "let" },
                        name: name.to_string(),
                    });
                }
                if let Some(call) = first_unknown_call(&engine, &ast) {
                    return Err(MappingError::unknown_call(label, call));
                }
                ast.set_source(label.as_str());
                Some(Program::Rhai(Script { ast, label }))
            }
        };
        let filter = match &defaults.filter {
            None => None,
            Some(expr) => {
                let scope = Scope::new();
                let ast = engine
                    .compile_expression_with_scope(&scope, expr)
                    .map_err(|e| MappingError::Filter {
                        expr: expr.clone(),
                        line: e.position().line().unwrap_or(0),
                        column: e.position().position().unwrap_or(0),
                        message: e.0.to_string(),
                    })?;
                if let Some(call) = first_unknown_call(&engine, &ast) {
                    return Err(MappingError::unknown_call(format!("filter {expr:?}"), call));
                }
                Some(ast)
            }
        };
        // Last: loading the mapping file reports a bad template already, so the
        // script's and the filter's own errors are the ones worth finding here.
        let template = Template::parse(&defaults.topic).map_err(|why| MappingError::Template {
            template: defaults.topic.clone(),
            why,
        })?;
        Ok(Mapper {
            source: source_id.to_string(),
            engine,
            script,
            filter,
            template,
            defaults,
            limits,
            plain_label: format!("mapping of source {source_id}"),
            warnings: AtomicU64::new(0),
            warnings_log: log_limit::LogLimit::new(log_limit::MINUTE),
        })
    }

    /// The source id this mapper was built for.
    pub fn source_id(&self) -> &str {
        &self.source
    }

    /// How many warnings its JavaScript codec has returned so far.
    pub fn codec_warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    /// Map one frame: filter, run the script, build and check the messages.
    pub fn map(&self, frame: &Frame) -> Mapped {
        if self.filter.is_none() && self.script.is_none() {
            return self.publish_as_is(frame);
        }
        let mut frame_value = frame_to_dynamic(frame);
        if let Some(filter) = &self.filter {
            match self.run_filter(filter, frame_value) {
                Ok(Some(v)) => frame_value = v,
                Ok(None) => return Mapped::Filtered,
                Err(e) => return Mapped::Failed(e),
            }
        }
        let script = match &self.script {
            None => return self.publish_as_is(frame),
            Some(Program::Js(codec)) => return self.decode(codec, frame),
            Some(Program::Rhai(script)) => script,
        };
        let result = call_one(
            &self.engine,
            &script.ast,
            "map",
            frame_value,
            self.limits.max_call_time,
        );
        match result {
            Ok(v) => self.messages(&script.label, v, frame),
            Err(e) => Mapped::Failed(from_eval(&script.label, &e, &self.limits)),
        }
    }

    /// Evaluate the filter; `Some(frame)` (handed back) to go on, `None` if filtered out.
    fn run_filter(&self, filter: &AST, frame_value: Dynamic) -> Result<Option<Dynamic>, MapError> {
        let label = || format!("filter of source {}", self.source);
        let mut scope = Scope::new();
        scope.push("frame", frame_value);
        let result = {
            let _deadline = DeadlineGuard::start(self.limits.max_call_time);
            self.engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, filter)
        };
        let keep = match result {
            Err(e) => return Err(from_eval(&label(), &e, &self.limits)),
            Ok(v) => v.as_bool().map_err(|t| MapError::BadShape {
                at: label(),
                why: format!("the filter gave a {t}, not a bool"),
            })?,
        };
        Ok(keep.then(|| scope.remove::<Dynamic>("frame").unwrap_or_default()))
    }

    /// A JavaScript codec's `data` as the one message, published on the topic template.
    fn decode(&self, codec: &JsCodec, frame: &Frame) -> Mapped {
        let uplink = match codec.decode(frame) {
            Ok(u) => u,
            Err(e) => return Mapped::Failed(e),
        };
        if !uplink.warnings.is_empty() {
            self.warnings
                .fetch_add(uplink.warnings.len() as u64, Ordering::Relaxed);
            if let Some(skipped) = self.warnings_log.check() {
                tracing::warn!(
                    source = %self.source,
                    "{}: codec warning: {}{}",
                    codec.label(),
                    uplink.warnings.join("; "),
                    log_limit::suppressed(skipped)
                );
            }
        }
        let payload = match serde_json::to_vec(&uplink.data) {
            Ok(p) => p,
            Err(e) => return Mapped::Failed(bad_shape(codec.label(), format!("data: {e}"))),
        };
        match self.topic(codec.label(), None, frame) {
            Ok(topic) => Mapped::Messages(vec![Message {
                topic,
                payload: payload.into(),
                qos: self.defaults.qos,
                retain: self.defaults.retain,
            }]),
            Err(e) => Mapped::Failed(e),
        }
    }

    fn publish_as_is(&self, frame: &Frame) -> Mapped {
        match self.topic(&self.plain_label, None, frame) {
            Ok(topic) => Mapped::Messages(vec![Message {
                topic,
                payload: frame.bytes.clone(),
                qos: self.defaults.qos,
                retain: self.defaults.retain,
            }]),
            Err(e) => Mapped::Failed(e),
        }
    }

    /// The script's return value as messages.
    fn messages(&self, label: &str, value: Dynamic, frame: &Frame) -> Mapped {
        if value.is_unit() {
            return Mapped::Filtered;
        }
        let result = if value.is_map() {
            self.message(label, value.cast::<Map>(), frame)
                .map(|m| vec![m])
        } else if value.is_array() {
            let items = value.cast::<rhai::Array>();
            if items.is_empty() {
                return Mapped::Filtered;
            }
            let mut out = Vec::with_capacity(items.len());
            let mut failed = None;
            for (i, item) in items.into_iter().enumerate() {
                if !item.is_map() {
                    failed = Some(bad_shape(
                        label,
                        format!(
                            "element {i} of the array is a {}, not a map",
                            item.type_name()
                        ),
                    ));
                    break;
                }
                match self.message(label, item.cast::<Map>(), frame) {
                    Ok(m) => out.push(m),
                    Err(e) => {
                        failed = Some(prefix_index(e, i));
                        break;
                    }
                }
            }
            failed.map_or(Ok(out), Err)
        } else {
            Err(bad_shape(
                label,
                format!(
                    "expected (), a map or an array of maps, got a {}",
                    value.type_name()
                ),
            ))
        };
        match result {
            Ok(messages) => Mapped::Messages(messages),
            Err(e) => Mapped::Failed(e),
        }
    }

    fn message(&self, label: &str, mut map: Map, frame: &Frame) -> Result<Message, MapError> {
        let payload = match map.remove("payload") {
            Some(p) => payload_bytes(p).map_err(|why| bad_shape(label, why))?,
            None => return Err(bad_shape(label, "a message map needs a `payload`".into())),
        };
        let qos = match map.get("qos") {
            None => self.defaults.qos,
            Some(q) => q
                .as_int()
                .ok()
                .and_then(|q| u8::try_from(q).ok())
                .and_then(QoS::from_u8)
                .ok_or_else(|| bad_shape(label, format!("qos must be 0, 1 or 2, got {q}")))?,
        };
        let retain = match map.get("retain") {
            None => self.defaults.retain,
            Some(r) => r
                .as_bool()
                .map_err(|t| bad_shape(label, format!("retain must be a bool, got a {t}")))?,
        };
        let topic = match map.get("topic") {
            None => self.topic(label, Some(&map), frame)?,
            Some(t) => {
                let topic = t
                    .clone()
                    .into_string()
                    .map_err(|t| bad_shape(label, format!("topic must be a string, got a {t}")))?;
                check_topic(label, topic)?
            }
        };
        Ok(Message {
            topic,
            payload,
            qos,
            retain,
        })
    }

    /// The default topic filled from the script's extra keys, `source` and the frame's meta.
    fn topic(
        &self,
        label: &str,
        fields: Option<&Map>,
        frame: &Frame,
    ) -> Result<TopicName, MapError> {
        let mut bad_field = None;
        let filled = self.template.fill(|name| {
            if let Some(v) = fields.and_then(|m| m.get(name)) {
                if !RESERVED.contains(&name) {
                    return match placeholder_text(v) {
                        Ok(s) => Some(Cow::Owned(s)),
                        Err(why) => {
                            bad_field = Some(format!("field `{name}`: {why}"));
                            Some(Cow::Borrowed(""))
                        }
                    };
                }
            }
            if name == "source" {
                return Some(Cow::Owned(self.source.clone()));
            }
            meta_field(&frame.meta, name)
        });
        if let Some(why) = bad_field {
            return Err(bad_shape(label, why));
        }
        let topic = filled.map_err(|name| MapError::UnknownPlaceholder {
            at: label.to_string(),
            template: self.template.as_str().to_string(),
            name,
        })?;
        check_topic(label, topic)
    }
}

fn meta_field<'a>(meta: &'a Meta, name: &str) -> Option<Cow<'a, str>> {
    match name {
        "rssi" => meta.rssi.map(|v| Cow::Owned(v.to_string())),
        "snr" => meta.snr.map(|v| Cow::Owned(v.to_string())),
        "frequency_hz" => meta.frequency_hz.map(|v| Cow::Owned(v.to_string())),
        "datarate" => meta.datarate.as_deref().map(Cow::Borrowed),
        "port" => meta.port.as_deref().map(Cow::Borrowed),
        "topic" => meta.topic.as_deref().map(Cow::Borrowed),
        other => match other.strip_prefix("level").map(str::parse::<usize>) {
            // `{level0}`, `{level1}`...: the levels of the topic a message came in on.
            Some(Ok(i)) if meta.topic.is_some() => meta
                .topic
                .as_deref()
                .and_then(|t| t.split('/').nth(i))
                .map(Cow::Borrowed),
            _ => meta.extra.get(other).map(|v| Cow::Borrowed(v.as_str())),
        },
    }
}

/// The one place a mapped topic is checked: the message carries a `TopicName` from here on.
fn check_topic(label: &str, topic: String) -> Result<TopicName, MapError> {
    TopicName::new(topic).map_err(|InvalidTopic { topic, error }| MapError::BadTopic {
        at: label.to_string(),
        topic,
        why: error.to_string(),
    })
}

fn bad_shape(label: &str, why: String) -> MapError {
    MapError::BadShape {
        at: label.to_string(),
        why,
    }
}

fn prefix_index(e: MapError, i: usize) -> MapError {
    match e {
        MapError::BadShape { at, why } => MapError::BadShape {
            at,
            why: format!("message {i}: {why}"),
        },
        other => other,
    }
}
