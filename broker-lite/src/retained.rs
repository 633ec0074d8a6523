//! Retained messages by topic name, kept in a trie over topic levels so that a
//! new subscription finds the retained messages its filter matches without
//! scanning all of them [MQTT-3.3.1-6].
//!
//! Nodes live in an arena and refer to each other by index: no recursion when
//! matching, pruning or dropping, however deep a topic is.

use std::collections::HashMap;

use crate::subscriptions::{split_level, Pending};

type NodeId = usize;

const ROOT: NodeId = 0;

/// One topic level position; holds the message retained on exactly this topic, if any.
#[derive(Debug, Clone)]
struct Node<V> {
    children: HashMap<Box<str>, NodeId>,
    /// The full topic name and its retained value.
    value: Option<(Box<str>, V)>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            value: None,
        }
    }
}

/// A step of the walk over the trie for one filter.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    /// Match the node against what is left of the filter (`None`: the filter ended here).
    Match(NodeId, Option<&'a str>),
    /// Everything in the node's subtree matches, the node included.
    All(NodeId),
}

/// The retained message of every topic that has one.
///
/// Filters are expected to be valid (see `topic::validate_topic_filter`);
/// a `#` that is not the last level is taken as a literal level.
#[derive(Debug, Clone)]
pub struct RetainedStore<V> {
    nodes: Vec<Node<V>>,
    free: Vec<NodeId>,
    len: usize,
}

impl<V> Default for RetainedStore<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> RetainedStore<V> {
    pub fn new() -> Self {
        RetainedStore {
            nodes: vec![Node::default()],
            free: Vec::new(),
            len: 0,
        }
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Retains `value` for `topic`, returning the value it replaces.
    pub fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = ROOT;
        for level in topic.split('/') {
            node = match self.nodes[node].children.get(level) {
                Some(&child) => child,
                None => {
                    let child = self.alloc();
                    self.nodes[node].children.insert(level.into(), child);
                    child
                }
            };
        }
        match &mut self.nodes[node].value {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            slot @ None => {
                *slot = Some((topic.into(), value));
                self.len += 1;
                None
            }
        }
    }

    /// Drops the retained message of `topic`, pruning positions left empty.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let mut path: Vec<(NodeId, &str)> = Vec::new();
        let mut node = ROOT;
        for level in topic.split('/') {
            let child = *self.nodes[node].children.get(level)?;
            path.push((node, level));
            node = child;
        }
        let (_, value) = self.nodes[node].value.take()?;
        self.len -= 1;
        while let Some((parent, level)) = path.pop() {
            let current = &self.nodes[node];
            if current.value.is_some() || !current.children.is_empty() {
                break;
            }
            self.nodes[parent].children.remove(level);
            self.release(node);
            node = parent;
        }
        Some(value)
    }

    /// The value retained for exactly this topic name.
    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = ROOT;
        for level in topic.split('/') {
            node = *self.nodes[node].children.get(level)?;
        }
        self.nodes[node].value.as_ref().map(|(_, v)| v)
    }

    /// Calls `f` with each retained topic name and value that `filter` matches.
    pub fn for_each_match(&self, filter: &str, mut f: impl FnMut(&str, &V)) {
        let mut steps: Pending<Step<'_>, 32> = Pending::new();
        let (level, rest) = split_level(filter);
        let root = &self.nodes[ROOT];
        // [MQTT-4.7.2-1] A first-level wildcard does not match a `$` topic.
        let wildcard_children = || {
            root.children
                .iter()
                .filter(|(level, _)| !level.starts_with('$'))
                .map(|(_, &child)| child)
        };
        match (level, rest) {
            ("#", None) => wildcard_children().for_each(|child| steps.push(Step::All(child))),
            ("+", rest) => {
                wildcard_children().for_each(|child| steps.push(Step::Match(child, rest)))
            }
            (literal, rest) => {
                if let Some(&child) = root.children.get(literal) {
                    steps.push(Step::Match(child, rest));
                }
            }
        }
        while let Some(step) = steps.pop() {
            match step {
                Step::All(id) => {
                    let node = &self.nodes[id];
                    emit(node, &mut f);
                    node.children
                        .values()
                        .for_each(|&child| steps.push(Step::All(child)));
                }
                Step::Match(id, None) => emit(&self.nodes[id], &mut f),
                Step::Match(id, Some(rest)) => {
                    let node = &self.nodes[id];
                    match split_level(rest) {
                        // `a/#` matches `a` itself and everything below it.
                        ("#", None) => steps.push(Step::All(id)),
                        ("+", rest) => node
                            .children
                            .values()
                            .for_each(|&child| steps.push(Step::Match(child, rest))),
                        (literal, rest) => {
                            if let Some(&child) = node.children.get(literal) {
                                steps.push(Step::Match(child, rest));
                            }
                        }
                    }
                }
            }
        }
    }

    fn alloc(&mut self) -> NodeId {
        match self.free.pop() {
            Some(id) => id,
            None => {
                self.nodes.push(Node::default());
                self.nodes.len() - 1
            }
        }
    }

    fn release(&mut self, id: NodeId) {
        self.nodes[id] = Node::default();
        self.free.push(id);
    }
}

fn emit<V>(node: &Node<V>, f: &mut impl FnMut(&str, &V)) {
    if let Some((topic, value)) = &node.value {
        f(topic, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches_of(store: &RetainedStore<u32>, filter: &str) -> Vec<(String, u32)> {
        let mut seen = Vec::new();
        store.for_each_match(filter, |topic, v| seen.push((topic.to_string(), *v)));
        seen.sort();
        seen
    }

    fn store_of(topics: &[&str]) -> RetainedStore<u32> {
        let mut store = RetainedStore::new();
        for (i, topic) in topics.iter().enumerate() {
            store.insert(topic, i as u32);
        }
        store
    }

    fn topics_matching(store: &RetainedStore<u32>, filter: &str) -> Vec<String> {
        matches_of(store, filter)
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn filters_find_the_retained_topics_of_spec_section_4_7() {
        let store = store_of(&[
            "sport",
            "sport/",
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
            "sport/tennis/player2",
            "/finance",
            "finance",
        ]);
        let table: [(&str, &[&str]); 9] = [
            (
                "sport/tennis/player1/#",
                &[
                    "sport/tennis/player1",
                    "sport/tennis/player1/ranking",
                    "sport/tennis/player1/score/wimbledon",
                ],
            ),
            (
                "sport/tennis/+",
                &["sport/tennis/player1", "sport/tennis/player2"],
            ),
            ("sport/+", &["sport/"]),
            ("sport", &["sport"]),
            ("+/+", &["/finance", "sport/"]),
            ("/+", &["/finance"]),
            ("+", &["finance", "sport"]),
            ("sport/tennis/player3", &[]),
            (
                "+/tennis/#",
                &[
                    "sport/tennis/player1",
                    "sport/tennis/player1/ranking",
                    "sport/tennis/player1/score/wimbledon",
                    "sport/tennis/player2",
                ],
            ),
        ];
        for (filter, expected) in table {
            assert_eq!(topics_matching(&store, filter), expected, "{filter}");
        }
        assert_eq!(topics_matching(&store, "#").len(), store.len());
        assert_eq!(topics_matching(&store, "sport/#").len(), 6);
    }

    #[test]
    fn first_level_wildcards_skip_dollar_topics() {
        let store = store_of(&["$SYS/broker/uptime", "$SYS", "a/$b", "plain"]);
        assert_eq!(topics_matching(&store, "#"), ["a/$b", "plain"]);
        assert_eq!(topics_matching(&store, "+"), ["plain"]);
        assert_eq!(
            topics_matching(&store, "+/broker/uptime"),
            Vec::<String>::new()
        );
        assert_eq!(
            topics_matching(&store, "$SYS/#"),
            ["$SYS", "$SYS/broker/uptime"]
        );
        assert_eq!(
            topics_matching(&store, "$SYS/+/uptime"),
            ["$SYS/broker/uptime"]
        );
        assert_eq!(topics_matching(&store, "a/+"), ["a/$b"]);
    }

    #[test]
    fn inserting_a_topic_again_replaces_its_value() {
        let mut store = RetainedStore::new();
        assert_eq!(store.insert("a/b", 1), None);
        assert_eq!(store.insert("a/b", 2), Some(1));
        assert_eq!(store.len(), 1);
        assert_eq!(store.get("a/b"), Some(&2));
        assert_eq!(store.get("a"), None);
        assert_eq!(matches_of(&store, "a/b"), [("a/b".to_string(), 2)]);
    }

    #[test]
    fn removing_every_topic_prunes_the_store_back_to_its_root() {
        let topics = ["a/b/c", "a/b", "a", "/", "", "a//c", "$SYS/x"];
        let mut store = store_of(&topics);
        assert_eq!(store.len(), topics.len());
        assert_eq!(store.remove("a/b/c/d"), None);
        assert_eq!(store.remove("a/c"), None);
        for (i, topic) in topics.iter().enumerate() {
            assert_eq!(store.remove(topic), Some(i as u32), "{topic}");
            assert_eq!(store.remove(topic), None, "{topic} twice");
            assert_eq!(store.get(topic), None);
        }
        assert!(store.is_empty());
        assert!(store.nodes[ROOT].children.is_empty());
        assert_eq!(store.free.len(), store.nodes.len() - 1);
    }

    #[test]
    fn removing_a_topic_keeps_its_parent_and_children() {
        let mut store = store_of(&["a", "a/b", "a/b/c"]);
        assert_eq!(store.remove("a/b"), Some(1));
        assert_eq!(topics_matching(&store, "#"), ["a", "a/b/c"]);
        assert_eq!(store.remove("a/b/c"), Some(2));
        assert_eq!(topics_matching(&store, "a/#"), ["a"]);
    }

    #[test]
    fn very_deep_topics_do_not_exhaust_the_stack() {
        let deep = vec!["x"; 30_000].join("/");
        let mut store = store_of(&[&deep]);
        assert_eq!(matches_of(&store, "#"), [(deep.clone(), 0)]);
        assert_eq!(store.get(&deep), Some(&0));
        store.insert("x", 1);
        assert_eq!(store.remove(&deep), Some(0));
        assert_eq!(store.len(), 1);
    }

    /// The rules of section 4.7, level by level, with no trie.
    fn naive_matches(filter: &str, topic: &str) -> bool {
        if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
            return false;
        }
        let filter: Vec<&str> = filter.split('/').collect();
        let topic: Vec<&str> = topic.split('/').collect();
        for (i, level) in filter.iter().enumerate() {
            match *level {
                "#" => return true,
                "+" if i < topic.len() => {}
                literal if topic.get(i) == Some(&literal) => {}
                _ => return false,
            }
        }
        filter.len() == topic.len()
    }

    fn topic_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(vec!["a", "b", "", "$s"]);
        prop::collection::vec(level, 1..5).prop_map(|levels| levels.join("/"))
    }

    fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(vec!["a", "b", "", "$s", "+"]);
        (prop::collection::vec(level, 0..5), any::<bool>()).prop_map(|(levels, multi)| {
            let mut levels: Vec<&str> = levels;
            if multi || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
    }

    proptest! {
        #[test]
        fn the_store_matches_like_a_naive_scan_of_every_topic(
            ops in prop::collection::vec((topic_strategy(), prop::option::of(0..100u32)), 0..60),
            filters in prop::collection::vec(filter_strategy(), 1..10),
        ) {
            let mut store = RetainedStore::new();
            let mut model: HashMap<String, u32> = HashMap::new();
            for (topic, value) in ops {
                match value {
                    Some(v) => prop_assert_eq!(store.insert(&topic, v), model.insert(topic, v)),
                    None => prop_assert_eq!(store.remove(&topic), model.remove(&topic)),
                }
                prop_assert_eq!(store.len(), model.len());
            }
            for (topic, value) in &model {
                prop_assert_eq!(store.get(topic), Some(value));
            }
            for filter in filters {
                let mut expected: Vec<(String, u32)> = model
                    .iter()
                    .filter(|(topic, _)| naive_matches(&filter, topic))
                    .map(|(topic, v)| (topic.clone(), *v))
                    .collect();
                expected.sort();
                prop_assert_eq!(matches_of(&store, &filter), expected, "filter {:?}", filter);
            }
        }
    }
}
