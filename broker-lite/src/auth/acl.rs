//! Topic ACLs: a mosquitto-like text file, compiled per client at CONNECT into
//! tries so that each check costs in proportion to the topic's levels, not to
//! the number of rules.
//!
//! ```text
//! # Rules before any `user` or `client` line are for anonymous clients.
//! topic read public/#
//!
//! user alice
//! topic readwrite sensors/#
//! topic deny sensors/secret/#
//!
//! client gateway-1
//! topic write devices/gateway-1/#
//!
//! # Patterns apply to every client; %u is the user name, %c the client id.
//! pattern readwrite users/%u/#
//! pattern
//! topic write devices/%c/status
//! ```
//!
//! A client gets the rules of its user (or the anonymous rules), of its client
//! id, and every pattern. Reading or writing a topic needs a matching `read`,
//! `write` or `readwrite` rule and no matching `deny` rule: deny wins.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use mqtt_proto::codec::QoS;
use mqtt_proto::topic::{filter_within, filters_overlap, validate_topic_filter};

use crate::subscriptions::SubscriptionTree;

use config_report::ConfigError as FileError;

/// What a rule grants, or `Deny`, which takes reading and writing away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn parse(word: &str) -> Option<Access> {
        match word {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            "readwrite" => Some(Access::ReadWrite),
            "deny" => Some(Access::Deny),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    access: Access,
    filter: String,
}

/// The parsed ACL file.
#[derive(Debug, Clone, Default)]
pub struct AclFile {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    clients: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

/// Which rules a `topic` line adds to.
#[derive(Debug, Clone)]
enum Block {
    Anonymous,
    User(String),
    Client(String),
    Pattern,
}

impl AclFile {
    /// `topic` and `pattern` lines in force.
    pub fn rule_count(&self) -> usize {
        let named: usize = self
            .users
            .values()
            .chain(self.clients.values())
            .map(Vec::len)
            .sum();
        self.anonymous.len() + self.patterns.len() + named
    }

    /// Read and check the whole file; every bad line is reported.
    pub fn load(path: &Path) -> Result<AclFile, Vec<FileError>> {
        let text = fs::read_to_string(path).map_err(|e| vec![super::unreadable(path, &e)])?;
        AclFile::parse(&text, path)
    }

    /// Parse the file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<AclFile, Vec<FileError>> {
        let mut acl = AclFile::default();
        let mut block = Block::Anonymous;
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = match line.split_once(char::is_whitespace) {
                Some((k, r)) => (k, r.trim()),
                None => (line, ""),
            };
            let result = match keyword {
                "user" | "client" if rest.is_empty() => Err(format!("{keyword} needs a name")),
                "user" => {
                    block = Block::User(rest.to_string());
                    acl.users.entry(rest.to_string()).or_default();
                    Ok(())
                }
                "client" => {
                    block = Block::Client(rest.to_string());
                    acl.clients.entry(rest.to_string()).or_default();
                    Ok(())
                }
                "pattern" if rest.is_empty() => {
                    block = Block::Pattern;
                    Ok(())
                }
                "pattern" => parse_rule(rest, true).map(|rule| acl.patterns.push(rule)),
                "topic" => {
                    let pattern = matches!(block, Block::Pattern);
                    parse_rule(rest, pattern).map(|rule| acl.rules_of(&block).push(rule))
                }
                other => Err(format!(
                    "unknown keyword {other:?} (expected topic, user, client or pattern)"
                )),
            };
            if let Err(message) = result {
                errors.push(super::line_error(path, i + 1, message));
            }
        }
        if errors.is_empty() {
            Ok(acl)
        } else {
            Err(errors)
        }
    }

    fn rules_of(&mut self, block: &Block) -> &mut Vec<Rule> {
        match block {
            Block::Anonymous => &mut self.anonymous,
            Block::User(name) => self.users.entry(name.clone()).or_default(),
            Block::Client(id) => self.clients.entry(id.clone()).or_default(),
            Block::Pattern => &mut self.patterns,
        }
    }

    /// The rules that apply to one client, ready to check. `user` is `None`
    /// for an anonymous client.
    pub fn compile(&self, user: Option<&str>, client_id: &str) -> ClientAcl {
        let mut acl = ClientAcl::default();
        let own = match user {
            Some(name) => self.users.get(name),
            None => Some(&self.anonymous),
        };
        for rule in own.into_iter().chain(self.clients.get(client_id)).flatten() {
            acl.add(rule.access, rule.filter.clone());
        }
        for rule in &self.patterns {
            if let Some(filter) = substitute(rule, user, client_id) {
                acl.add(rule.access, filter);
            }
        }
        acl
    }
}

/// `[access] filter` after `topic` or `pattern`; no access word means readwrite.
fn parse_rule(rest: &str, pattern: bool) -> Result<Rule, String> {
    let (access, filter) = match rest.split_once(char::is_whitespace) {
        Some((word, filter)) if Access::parse(word).is_some() => {
            (Access::parse(word).unwrap_or(Access::Deny), filter.trim())
        }
        _ if Access::parse(rest).is_some() => {
            return Err(format!("no topic filter after {rest:?}"));
        }
        _ => (Access::ReadWrite, rest),
    };
    if filter.is_empty() {
        return Err("no topic filter".into());
    }
    let has_vars = filter.contains("%u") || filter.contains("%c");
    if has_vars && !pattern {
        return Err(format!(
            "{filter:?}: %u and %c are replaced only in pattern rules"
        ));
    }
    let check = filter.replace("%u", "u").replace("%c", "c");
    validate_topic_filter(&check)
        .map_err(|e| format!("{filter:?} is not a valid topic filter: {e}"))?;
    Ok(Rule {
        access,
        filter: filter.to_string(),
    })
}

/// What a user name or client id must not bring into a pattern's filter: `/`
/// would add levels (user `bob/inbox` reaching `users/bob/inbox/#` through
/// `users/%u/#`), `+` and `#` would be wildcards, NUL is never in a topic.
const NOT_SUBSTITUTED: [char; 4] = ['/', '+', '#', '\0'];

/// A pattern rule's filter for one client, or `None` when it does not apply:
/// `%u` for an anonymous client, or a grant whose user name or client id holds
/// one of `NOT_SUBSTITUTED` (it would grant more than the pattern means). A
/// deny rule in that case only denies more: the level becomes `+`, or, when
/// the value holds a `/` (so stands for any number of levels), `#`.
fn substitute(rule: &Rule, user: Option<&str>, client_id: &str) -> Option<String> {
    if !rule.filter.contains('%') {
        return Some(rule.filter.clone());
    }
    let refused = |s: &str| s.contains(NOT_SUBSTITUTED);
    let mut levels = Vec::new();
    for level in rule.filter.split('/') {
        let uses_user = level.contains("%u");
        let uses_client = level.contains("%c");
        if uses_user && user.is_none() {
            return None;
        }
        let values = [
            user.filter(|_| uses_user),
            Some(client_id).filter(|_| uses_client),
        ];
        if values.into_iter().flatten().any(refused) {
            if rule.access != Access::Deny {
                return None;
            }
            if values.into_iter().flatten().any(|v| v.contains('/')) {
                levels.push("#".to_string());
                break;
            }
            levels.push("+".to_string());
            continue;
        }
        let mut level = level.to_string();
        if let Some(u) = user {
            level = level.replace("%u", u);
        }
        levels.push(level.replace("%c", client_id));
    }
    Some(levels.join("/"))
}

/// One client's rules, compiled.
#[derive(Debug, Default, Clone)]
pub struct ClientAcl {
    read: SubscriptionTree<u8>,
    write: SubscriptionTree<u8>,
    deny: SubscriptionTree<u8>,
    /// Filters that grant reading, for the overlap check at SUBSCRIBE.
    read_filters: Vec<String>,
    deny_filters: Vec<String>,
}

impl ClientAcl {
    fn add(&mut self, access: Access, filter: String) {
        let q = QoS::AtMostOnce;
        match access {
            Access::Read => {
                self.read.insert(&filter, 0, q);
                self.read_filters.push(filter);
            }
            Access::Write => {
                self.write.insert(&filter, 0, q);
            }
            Access::ReadWrite => {
                self.read.insert(&filter, 0, q);
                self.write.insert(&filter, 0, q);
                self.read_filters.push(filter);
            }
            Access::Deny => {
                self.deny.insert(&filter, 0, q);
                self.deny_filters.push(filter);
            }
        }
    }

    /// May the client receive a message on `topic`?
    pub fn can_read(&self, topic: &str) -> bool {
        any_match(&self.read, topic) && !any_match(&self.deny, topic)
    }

    /// May the client publish to `topic` (or leave a will there)?
    pub fn can_write(&self, topic: &str) -> bool {
        any_match(&self.write, topic) && !any_match(&self.deny, topic)
    }

    /// May the client subscribe to `filter`? Yes when some topic it matches is
    /// readable: a read grant overlaps it and no deny rule covers all of it.
    /// Messages on topics the client may not read are still held back one by
    /// one at delivery, so a wide filter only brings what the rules allow.
    pub fn can_subscribe(&self, filter: &str) -> bool {
        if self.deny_filters.iter().any(|d| filter_within(filter, d)) {
            return false;
        }
        self.read_filters.iter().any(|r| filters_overlap(filter, r))
    }
}

fn any_match(tree: &SubscriptionTree<u8>, topic: &str) -> bool {
    let mut hit = false;
    tree.for_each_match(topic, |_, _| hit = true);
    hit
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "\
# anonymous
topic read public/#

user alice
topic readwrite sensors/#
topic deny sensors/secret/#
topic write alice/out
topic alice/both

client gw-1
topic write devices/gw-1/#

pattern readwrite users/%u/#
pattern
topic read devices/%c/config
topic deny devices/%c/locked/#
";

    fn example() -> AclFile {
        AclFile::parse(EXAMPLE, Path::new("acl")).unwrap()
    }

    #[test]
    fn anonymous_clients_get_the_rules_before_any_user() {
        let acl = example().compile(None, "anon-1");
        assert!(acl.can_read("public/news"));
        assert!(!acl.can_write("public/news"));
        assert!(!acl.can_read("sensors/a"));
        // %u patterns do not apply without a user name; %c ones do.
        assert!(!acl.can_read("users//x"));
        assert!(acl.can_read("devices/anon-1/config"));
    }

    #[test]
    fn a_user_gets_its_block_and_not_the_anonymous_rules() {
        let acl = example().compile(Some("alice"), "c1");
        assert!(acl.can_read("sensors/temp"));
        assert!(acl.can_write("sensors/temp"));
        assert!(!acl.can_read("public/news"));
        assert!(acl.can_write("alice/out"));
        assert!(!acl.can_read("alice/out"));
        assert!(acl.can_read("alice/both") && acl.can_write("alice/both"));
    }

    #[test]
    fn deny_wins_over_a_wider_grant() {
        let acl = example().compile(Some("alice"), "c1");
        assert!(!acl.can_read("sensors/secret/key"));
        assert!(!acl.can_write("sensors/secret"));
        assert!(acl.can_read("sensors/secretive"));
    }

    #[test]
    fn patterns_substitute_user_name_and_client_id() {
        let file = example();
        let bob = file.compile(Some("bob"), "phone");
        assert!(bob.can_read("users/bob/inbox") && bob.can_write("users/bob/outbox"));
        assert!(!bob.can_read("users/alice/inbox"));
        assert!(bob.can_read("devices/phone/config"));
        assert!(!bob.can_write("devices/phone/config"));
        assert!(!bob.can_read("devices/other/config"));
    }

    #[test]
    fn a_client_block_applies_by_client_id_whatever_the_user() {
        let file = example();
        assert!(file.compile(None, "gw-1").can_write("devices/gw-1/up"));
        assert!(file
            .compile(Some("bob"), "gw-1")
            .can_write("devices/gw-1/up"));
        assert!(!file
            .compile(Some("bob"), "gw-2")
            .can_write("devices/gw-1/up"));
    }

    #[test]
    fn a_wildcard_in_a_user_name_or_client_id_grants_nothing_through_a_pattern() {
        let file = example();
        let sneaky = file.compile(Some("#"), "+");
        assert!(!sneaky.can_read("users/alice/inbox"));
        assert!(!sneaky.can_read("devices/x/config"));
        // A deny pattern still applies, widened.
        let text = "topic readwrite devices/#\npattern deny devices/%c/#\n";
        let acl = AclFile::parse(text, Path::new("acl"))
            .unwrap()
            .compile(None, "a+b");
        assert!(!acl.can_write("devices/anyone/x"));
        assert!(acl.can_write("devices"));
    }

    #[test]
    fn a_slash_in_a_user_name_or_client_id_does_not_reach_other_levels_through_a_pattern() {
        let file = example();
        // (user, client id, topic, readable)
        let cases = [
            (Some("bob/inbox"), "c", "users/bob/inbox/x", false),
            (Some("bob/inbox"), "c", "users/bob/inbox", false),
            (Some("bob/inbox"), "c", "users/bob/x", false),
            (Some("bob"), "c", "users/bob/inbox/x", true),
            (
                None,
                "phone/config/x",
                "devices/phone/config/x/config",
                false,
            ),
            (None, "phone", "devices/phone/config", true),
            (Some("nul\0"), "c", "users/nul\0/x", false),
        ];
        for (user, client_id, topic, readable) in cases {
            let acl = file.compile(user, client_id);
            assert_eq!(
                acl.can_read(topic),
                readable,
                "{user:?} {client_id:?} {topic}"
            );
            if !readable {
                assert!(!acl.can_write(topic), "{user:?} {client_id:?} {topic}");
                assert!(!acl.can_subscribe(topic), "{user:?} {client_id:?} {topic}");
            }
        }
        // A deny pattern still applies, to every topic under its fixed levels.
        let text = "topic readwrite devices/#\npattern deny devices/%c/locked\n";
        let acl = AclFile::parse(text, Path::new("acl"))
            .unwrap()
            .compile(None, "a/b");
        for topic in ["devices/a/b/locked", "devices/a/b", "devices/other/x"] {
            assert!(!acl.can_write(topic), "{topic}");
        }
    }

    #[test]
    fn an_unknown_user_gets_only_patterns_and_its_client_block() {
        let acl = example().compile(Some("mallory"), "m");
        assert!(!acl.can_read("public/news"));
        assert!(!acl.can_read("sensors/a"));
        assert!(acl.can_write("users/mallory/x"));
    }

    #[test]
    fn hash_and_plus_grants_follow_topic_matching_rules() {
        let text = "topic read a/+/c\ntopic read #\ntopic read $SYS/broker/uptime\n";
        let acl = AclFile::parse(text, Path::new("acl"))
            .unwrap()
            .compile(None, "c");
        assert!(acl.can_read("x/y"));
        assert!(acl.can_read("a/b/c"));
        // `#` does not reach `$` topics; only the explicit one is readable.
        assert!(!acl.can_read("$SYS/broker/clients/connected"));
        assert!(acl.can_read("$SYS/broker/uptime"));
    }

    #[test]
    fn subscribing_needs_an_overlapping_read_grant_not_covered_by_a_deny() {
        let acl = example().compile(Some("alice"), "c1");
        let cases = [
            ("sensors/#", true),
            ("sensors/+/x", true),
            ("#", true),
            ("+/temp", true),
            ("sensors/secret/#", false),
            ("sensors/secret/a", false),
            ("alice/out", false),
            ("public/#", false),
            ("$SYS/#", false),
        ];
        for (filter, expected) in cases {
            assert_eq!(acl.can_subscribe(filter), expected, "{filter}");
        }
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = "\
topic read
topic read a/#/b
user
frobnicate x
topic a/%u
pattern write x/+y
topic read fine
";
        let errors = AclFile::parse(text, Path::new("acl.txt")).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "acl.txt:1: no topic filter after \"read\"",
                "acl.txt:2: \"a/#/b\" is not a valid topic filter: \
                 [MQTT-4.7.1-2] '#' must be the last level and alone in it",
                "acl.txt:3: user needs a name",
                "acl.txt:4: unknown keyword \"frobnicate\" (expected topic, user, client or pattern)",
                "acl.txt:5: \"a/%u\": %u and %c are replaced only in pattern rules",
                "acl.txt:6: \"x/+y\" is not a valid topic filter: \
                 [MQTT-4.7.1-3] '+' must be alone in its level",
            ]
        );
    }

    #[test]
    fn the_example_file_parses_and_means_what_its_comments_say() {
        let text = include_str!("../../examples/acl");
        let file = AclFile::parse(text, Path::new("examples/acl")).unwrap();
        let ha = file.compile(Some("homeassistant"), "ha");
        assert!(ha.can_read("sensors/boiler-1/temp"));
        assert!(!ha.can_read("sensors/boiler-1/raw/frame"));
        assert!(ha.can_write("commands/boiler-1/on") && !ha.can_read("commands/boiler-1/on"));
        let boiler = file.compile(None, "boiler-1");
        assert!(boiler.can_write("sensors/boiler-1/temp") && boiler.can_read("public/x"));
        assert!(boiler.can_write("status/boiler-1") && !boiler.can_write("status/other"));
        let gateway = file.compile(Some("mqgate"), "gw");
        assert!(gateway.can_read("$SYS/broker/uptime") && gateway.can_write("any/topic"));
    }

    #[test]
    fn a_topic_without_access_word_is_readwrite_and_may_contain_spaces() {
        let text = "topic living room/lamp\ntopic read kitchen/ceiling light\n";
        let acl = AclFile::parse(text, Path::new("acl"))
            .unwrap()
            .compile(None, "c");
        assert!(acl.can_read("living room/lamp") && acl.can_write("living room/lamp"));
        assert!(acl.can_read("kitchen/ceiling light"));
        assert!(!acl.can_write("kitchen/ceiling light"));
    }

    /// The cost of one read check for a client with many rules; printed so that
    /// `cargo test --release -- --nocapture acl_check_cost` gives the figure.
    #[test]
    fn acl_check_cost_does_not_grow_with_the_number_of_rules() {
        let mut text = String::from("user big\n");
        for i in 0..5000 {
            text.push_str(&format!("topic read site/{i}/+/temperature\n"));
            text.push_str(&format!("topic deny site/{i}/secret/#\n"));
        }
        text.push_str("pattern readwrite users/%u/#\n");
        let file = AclFile::parse(&text, Path::new("acl")).unwrap();
        let started = std::time::Instant::now();
        let acl = file.compile(Some("big"), "c");
        let compile = started.elapsed();
        let topics = [
            "site/4321/room/temperature",
            "site/4321/secret/x",
            "site/99999/room/temperature",
            "users/big/a/b/c",
        ];
        let expected = [true, false, false, true];
        let rounds = 20_000;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            for (t, e) in topics.iter().zip(expected) {
                assert_eq!(std::hint::black_box(acl.can_read(t)), e, "{t}");
            }
        }
        let per_check = started.elapsed() / (rounds * topics.len() as u32);
        println!("10001 rules: compile {compile:?}, one read check {per_check:?}");
        // Generous bound for unoptimised builds on a busy machine.
        assert!(per_check < std::time::Duration::from_micros(50));
    }
}
