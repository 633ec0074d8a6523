//! A mapping file (`mappings/*.yaml`): which source it maps, with which script,
//! and the defaults of the messages it produces.

use super::paths;
use std::path::{Path, PathBuf};

use config_report::{FieldPath, Report};
use mqtt_proto::codec::QoS;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::commands::CommandsConfig;
use super::homeassistant::HaEntity;

/// One loaded mapping file, paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingFile {
    /// The file it was read from.
    pub path: PathBuf,
    /// The id of the source whose frames it maps.
    pub source: String,
    /// The Rhai script, or a JavaScript codec (`.js`), relative paths resolved
    /// against the mapping file's folder. Without one, each frame is published as it is.
    pub script: Option<PathBuf>,
    /// JavaScript files evaluated before a `.js` codec, in order (a vendor's
    /// library the codec calls), resolved like `script`.
    pub libraries: Vec<PathBuf>,
    /// Topic template, e.g. `sensors/{source}/{name}`.
    pub topic: String,
    pub qos: QoS,
    pub retain: bool,
    /// A Rhai expression; frames for which it is false are counted as filtered.
    pub filter: Option<String>,
    pub limits: ScriptLimits,
    /// Entities announced to Home Assistant (MQTT discovery).
    pub homeassistant: Vec<HaEntity>,
    /// Commands from MQTT down to the source's device (its `script` resolved).
    pub commands: Option<CommandsConfig>,
}

impl MappingFile {
    /// What the mapping's JavaScript codec needs besides its script and limits.
    pub fn codec_options(&self) -> crate::mapping::CodecOptions {
        crate::mapping::CodecOptions {
            libraries: self.libraries.clone(),
            max_memory: self.limits.max_memory_kb.saturating_mul(1024),
        }
    }
}

/// The sandbox a mapping's script runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptLimits {
    /// Rhai operations per call.
    pub max_operations: u64,
    /// Wall-clock time per call, in milliseconds.
    pub max_call_ms: u64,
    /// Nesting depth of expressions.
    pub max_expr_depth: usize,
    /// Longest string, in bytes.
    pub max_string_size: usize,
    /// Most items in an array or a blob.
    pub max_array_size: usize,
    /// Most entries in an object map.
    pub max_map_size: usize,
    /// Memory a JavaScript codec's engine may hold, in KiB.
    pub max_memory_kb: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 100_000,
            max_call_ms: 100,
            max_expr_depth: 64,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_memory_kb: 16 * 1024,
        }
    }
}

/// A mapping file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    source: String,
    script: Option<PathBuf>,
    #[serde(default)]
    libraries: Vec<PathBuf>,
    #[serde(default = "default_topic")]
    topic: String,
    #[serde(
        default = "super::qos::at_least_once",
        deserialize_with = "super::qos::deserialize"
    )]
    qos: QoS,
    #[serde(default)]
    retain: bool,
    filter: Option<String>,
    #[serde(default)]
    limits: ScriptLimits,
    #[serde(default)]
    homeassistant: Vec<HaEntity>,
    commands: Option<CommandsConfig>,
}

fn default_topic() -> String {
    "sensors/{source}".to_string()
}

/// One mapping file on its own (for `mqgate map --mapping`): its fields checked,
/// its script's path resolved; the source is not checked against a gateway file.
pub fn load_one(path: &Path) -> Result<MappingFile, Vec<config_report::ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![config_report::ConfigError::whole_file(
            path,
            format!("cannot read: {e}"),
        )]
    })?;
    let value = config_report::parse_file(path, &text).map_err(|e| vec![e])?;
    let mut report = super::yaml::report(path, &text);
    let mapping = from_value(path, &value, &mut report);
    let errors = report.into_errors();
    match mapping {
        Some(m) if errors.is_empty() => Ok(m),
        _ => Err(errors),
    }
}

/// Reads one mapping file's value; problems go to `report`.
pub(crate) fn from_value(
    path: &Path,
    value: &Value,
    report: &mut Report<'_>,
) -> Option<MappingFile> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let Some(raw) = report.piece::<Raw>(&FieldPath::root(), value) else {
        // The fields that do read are checked all the same, so that a bad field
        // does not hide a bad topic template or a missing script after it.
        let script = field::<PathBuf>(value, "script").map(|script| paths::join(folder, script));
        let libraries: Vec<PathBuf> = field::<Vec<PathBuf>>(value, "libraries")
            .unwrap_or_default()
            .into_iter()
            .map(|l| paths::join(folder, l))
            .collect();
        let topic: Option<String> = field(value, "topic");
        let filter: Option<String> = field(value, "filter");
        let limits: Option<ScriptLimits> = field(value, "limits");
        let homeassistant: Option<Vec<HaEntity>> = field(value, "homeassistant");
        let commands = field::<CommandsConfig>(value, "commands").map(|c| resolve(c, folder));
        let checked = Checked {
            script: script.as_deref(),
            libraries: &libraries,
            topic: topic.as_deref(),
            filter: filter.as_deref(),
            limits: limits.as_ref(),
            homeassistant: homeassistant.as_deref().unwrap_or_default(),
            commands: commands.as_ref(),
            source: value.get("source").and_then(Value::as_str),
        };
        checked.check(report);
        return None;
    };
    let script = raw.script.map(|script| paths::join(folder, script));
    let libraries: Vec<PathBuf> = raw
        .libraries
        .into_iter()
        .map(|l| paths::join(folder, l))
        .collect();
    let commands = raw.commands.map(|c| resolve(c, folder));
    let checked = Checked {
        script: script.as_deref(),
        libraries: &libraries,
        topic: Some(&raw.topic),
        filter: raw.filter.as_deref(),
        limits: Some(&raw.limits),
        homeassistant: &raw.homeassistant,
        commands: commands.as_ref(),
        source: Some(&raw.source),
    };
    checked.check(report);
    Some(MappingFile {
        path: path.to_path_buf(),
        source: raw.source,
        script,
        libraries,
        topic: raw.topic,
        qos: raw.qos,
        retain: raw.retain,
        filter: raw.filter,
        limits: raw.limits,
        homeassistant: raw.homeassistant,
        commands,
    })
}

/// The commands' script resolved against the mapping file's folder.
fn resolve(mut commands: CommandsConfig, folder: &Path) -> CommandsConfig {
    commands.script = commands.script.map(|s| paths::join(folder, s));
    commands
}

/// The field `key` of a mapping, when it is there and reads as a `T`.
fn field<T: DeserializeOwned>(value: &Value, key: &str) -> Option<T> {
    serde_yaml_ng::from_value(value.get(key)?.clone()).ok()
}

/// The fields of a mapping file that are checked beyond their types; `None`
/// for one that is absent or did not read (its error is reported already).
struct Checked<'a> {
    /// Resolved against the mapping file's folder.
    script: Option<&'a Path>,
    libraries: &'a [PathBuf],
    topic: Option<&'a str>,
    filter: Option<&'a str>,
    limits: Option<&'a ScriptLimits>,
    homeassistant: &'a [HaEntity],
    commands: Option<&'a CommandsConfig>,
    /// The mapping's source, when it reads.
    source: Option<&'a str>,
}

impl Checked<'_> {
    fn check(&self, report: &mut Report<'_>) {
        let root = FieldPath::root();
        if let Some(script) = self.script {
            if !script.is_file() {
                report.add(
                    &root.key("script"),
                    format!("script file {} does not exist", script.display()),
                );
            }
        }
        self.check_libraries(report);
        if let Some(Err(message)) = self.topic.map(check_topic_template) {
            report.add(&root.key("topic"), message);
        }
        if self.filter.is_some_and(|f| f.trim().is_empty()) {
            report.add(
                &root.key("filter"),
                "is empty; leave it out to keep every frame",
            );
        }
        if let Some(l) = self.limits {
            let at = root.key("limits");
            for (name, value) in [
                ("max_operations", l.max_operations),
                ("max_call_ms", l.max_call_ms),
                ("max_expr_depth", l.max_expr_depth as u64),
                ("max_string_size", l.max_string_size as u64),
                ("max_array_size", l.max_array_size as u64),
                ("max_map_size", l.max_map_size as u64),
                ("max_memory_kb", l.max_memory_kb as u64),
            ] {
                if value == 0 {
                    report.add(&at.key(name), "must be at least 1");
                }
            }
        }
        if let Some(c) = self.commands {
            let at = root.key("commands");
            if let Some(script) = &c.script {
                if !script.is_file() {
                    report.add(
                        &at.key("script"),
                        format!("script file {} does not exist", script.display()),
                    );
                }
            }
            c.check(&at, report);
        }
        for (i, e) in self.homeassistant.iter().enumerate() {
            let at = root.key("homeassistant").index(i);
            if e.name.trim().is_empty() {
                report.add(&at.key("name"), "must not be empty");
            }
            match &e.state_topic {
                Some(t) => {
                    if let Err(why) = mqtt_proto::topic::validate_topic_name(t) {
                        report.add(&at.key("state_topic"), why.to_string());
                    }
                }
                None if !e.component.commands() => {
                    report.add(&at.key("state_topic"), "a sensor needs a state_topic");
                }
                None => {}
            }
            self.check_command_topic(e, &at, report);
        }
    }
}

impl Checked<'_> {
    /// Libraries are JavaScript files that exist, for a JavaScript codec.
    fn check_libraries(&self, report: &mut Report<'_>) {
        let at = FieldPath::root().key("libraries");
        if self.libraries.is_empty() {
            return;
        }
        if !self.script.is_some_and(crate::mapping::js::is_codec) {
            report.add(
                &at,
                "libraries are JavaScript files loaded before a JavaScript codec; the mapping's script is not a .js file",
            );
            return;
        }
        for (i, l) in self.libraries.iter().enumerate() {
            if !crate::mapping::js::is_codec(l) {
                report.add(&at.index(i), format!("{} is not a .js file", l.display()));
            } else if !l.is_file() {
                report.add(
                    &at.index(i),
                    format!("library file {} does not exist", l.display()),
                );
            }
        }
    }

    /// An entity that sends commands needs a `command_topic` its mapping's
    /// `commands:` filter takes; one that does not, none.
    fn check_command_topic(&self, e: &HaEntity, at: &FieldPath, report: &mut Report<'_>) {
        let kind = e.component.as_str();
        match (&e.command_topic, e.component.commands()) {
            (Some(_), false) => report.add(
                &at.key("command_topic"),
                format!("a {kind} sends no commands; leave command_topic out"),
            ),
            (None, true) => report.add(
                &at.key("command_topic"),
                format!("a {kind} needs a command_topic"),
            ),
            (Some(topic), true) => {
                if let Err(why) = mqtt_proto::topic::validate_topic_name(topic) {
                    report.add(&at.key("command_topic"), why.to_string());
                    return;
                }
                let served = match (self.commands, self.source) {
                    (None, _) => Some("the mapping has no `commands:` section"),
                    (Some(c), Some(source)) if !c.topic.contains("{gateway}") => {
                        let filter = c.topic.replace("{source}", source);
                        (!mqtt_proto::topic::matches(&filter, topic))
                            .then_some("the mapping's commands.topic does not take it")
                    }
                    // Known once the gateway's id is: checked when it starts.
                    _ => None,
                };
                if let Some(why) = served {
                    report.add(&at.key("command_topic"), format!("{topic:?}: {why}"));
                }
            }
            (None, false) => {}
        }
        if e.component == crate::config::HaComponent::Select && e.options.is_empty() {
            report.add(&at.key("options"), "a select needs its options");
        }
    }
}

/// A topic template is a topic name with `{placeholder}`s: not empty, no
/// wildcards, no NUL, braces around a name.
pub(crate) fn check_topic_template(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("topic must not be empty".to_string());
    }
    if let Some(c) = topic.chars().find(|c| matches!(c, '+' | '#' | '\0')) {
        return Err(format!("{c:?} is not allowed in a topic name: {topic:?}"));
    }
    let mut rest = topic;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("unmatched `}}` in {topic:?}"));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("unclosed `{{` in {topic:?}"));
        };
        let name = &after[..close];
        let is_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_name {
            return Err(format!(
                "`{{{name}}}` in {topic:?} is not a placeholder: use letters, digits and `_` between the braces"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_topic_template;

    #[test]
    fn topic_templates_need_named_placeholders_and_no_wildcards() {
        assert!(check_topic_template("sensors/{source}/{name}").is_ok());
        assert!(check_topic_template("plain/topic").is_ok());
        for bad in ["", "a/+/b", "a/#", "a/{source", "a/}b", "a/{}", "a/{x y}"] {
            assert!(check_topic_template(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
