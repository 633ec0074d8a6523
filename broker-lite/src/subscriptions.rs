//! Subscriptions as a trie over topic levels, so that routing a PUBLISH costs
//! in proportion to the topic's levels and the matching branches, not to the
//! number of subscriptions [MQTT-4.7].
//!
//! Nodes live in an arena and refer to each other by index: no recursion when
//! matching, pruning or dropping, however deep a filter is.

use std::collections::HashMap;
use std::hash::Hash;

use mqtt_proto::codec::QoS;

type NodeId = usize;

const ROOT: NodeId = 0;

/// Subscribers of one trie position. Usually a handful, kept in a `Vec`;
/// switches to a `HashMap` once large so inserts stay cheap.
#[derive(Debug, Clone)]
enum Subscribers<K> {
    Few(Vec<(K, QoS)>),
    Many(HashMap<K, QoS>),
}

/// Past this many subscribers on one position, a map replaces the list.
const FEW_MAX: usize = 16;

impl<K: Copy + Eq + Hash> Subscribers<K> {
    /// Adds or updates `key`; true if it was not there.
    fn insert(&mut self, key: K, qos: QoS) -> bool {
        match self {
            Subscribers::Few(list) => {
                if let Some(entry) = list.iter_mut().find(|(k, _)| *k == key) {
                    entry.1 = qos;
                    return false;
                }
                if list.len() < FEW_MAX {
                    list.push((key, qos));
                } else {
                    let mut map: HashMap<K, QoS> = list.drain(..).collect();
                    map.insert(key, qos);
                    *self = Subscribers::Many(map);
                }
                true
            }
            Subscribers::Many(map) => map.insert(key, qos).is_none(),
        }
    }

    fn remove(&mut self, key: K) -> bool {
        match self {
            Subscribers::Few(list) => match list.iter().position(|(k, _)| *k == key) {
                Some(i) => {
                    list.swap_remove(i);
                    true
                }
                None => false,
            },
            Subscribers::Many(map) => map.remove(&key).is_some(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Subscribers::Few(list) => list.is_empty(),
            Subscribers::Many(map) => map.is_empty(),
        }
    }

    fn for_each(&self, f: &mut impl FnMut(K, QoS)) {
        match self {
            Subscribers::Few(list) => list.iter().for_each(|&(k, q)| f(k, q)),
            Subscribers::Many(map) => map.iter().for_each(|(&k, &q)| f(k, q)),
        }
    }
}

impl<K> Default for Subscribers<K> {
    fn default() -> Self {
        Subscribers::Few(Vec::new())
    }
}

/// One topic level position in the trie.
#[derive(Debug, Clone)]
struct Node<K> {
    /// Children for literal levels.
    children: HashMap<Box<str>, NodeId>,
    /// Child for a `+` level.
    plus: Option<NodeId>,
    /// Filters that end at this position.
    exact: Subscribers<K>,
    /// Filters that end with `#` right below this position.
    multi: Subscribers<K>,
}

impl<K> Default for Node<K> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            plus: None,
            exact: Subscribers::default(),
            multi: Subscribers::default(),
        }
    }
}

impl<K: Copy + Eq + Hash> Node<K> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.exact.is_empty()
            && self.multi.is_empty()
    }
}

/// The edge from a node to one of its children.
#[derive(Debug, Clone, Copy)]
enum Edge<'a> {
    Literal(&'a str),
    Plus,
}

/// Where a filter's last level puts its subscribers.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Exact,
    Multi,
}

/// All subscriptions of a broker: (topic filter, subscriber key) → QoS.
///
/// Filters are expected to be valid (see `topic::validate_topic_filter`);
/// a `#` that is not the last level is stored as a literal level.
#[derive(Debug, Clone)]
pub struct SubscriptionTree<K> {
    nodes: Vec<Node<K>>,
    free: Vec<NodeId>,
    len: usize,
}

impl<K: Copy + Eq + Hash> Default for SubscriptionTree<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + Hash> SubscriptionTree<K> {
    pub fn new() -> Self {
        SubscriptionTree {
            nodes: vec![Node::default()],
            free: Vec::new(),
            len: 0,
        }
    }

    /// Number of (filter, key) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Subscribes `key` to `filter`; true if new, false if it only replaced the QoS.
    pub fn insert(&mut self, filter: &str, key: K, qos: QoS) -> bool {
        let mut node = ROOT;
        let (edges, slot) = filter_path(filter);
        for edge in edges {
            node = match self.child(node, edge) {
                Some(child) => child,
                None => {
                    let child = self.alloc();
                    match edge {
                        Edge::Literal(level) => {
                            self.nodes[node].children.insert(level.into(), child);
                        }
                        Edge::Plus => self.nodes[node].plus = Some(child),
                    }
                    child
                }
            };
        }
        let subscribers = match slot {
            Slot::Exact => &mut self.nodes[node].exact,
            Slot::Multi => &mut self.nodes[node].multi,
        };
        let added = subscribers.insert(key, qos);
        if added {
            self.len += 1;
        }
        added
    }

    /// Unsubscribes `key` from `filter`; false if it was not subscribed.
    /// Positions left without subscribers or children are pruned.
    pub fn remove(&mut self, filter: &str, key: K) -> bool {
        let (edges, slot) = filter_path(filter);
        let mut path: Vec<(NodeId, Edge<'_>)> = Vec::new();
        let mut node = ROOT;
        for edge in edges {
            match self.child(node, edge) {
                Some(child) => {
                    path.push((node, edge));
                    node = child;
                }
                None => return false,
            }
        }
        let subscribers = match slot {
            Slot::Exact => &mut self.nodes[node].exact,
            Slot::Multi => &mut self.nodes[node].multi,
        };
        if !subscribers.remove(key) {
            return false;
        }
        self.len -= 1;
        while let Some((parent, edge)) = path.pop() {
            if !self.nodes[node].is_empty() {
                break;
            }
            match edge {
                Edge::Literal(level) => {
                    self.nodes[parent].children.remove(level);
                }
                Edge::Plus => self.nodes[parent].plus = None,
            }
            self.release(node);
            node = parent;
        }
        true
    }

    /// Calls `f` once per (filter, key) whose filter matches the topic name.
    /// A key subscribed through several matching filters is seen once per filter.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(K, QoS)) {
        // [MQTT-4.7.2-1] A first-level wildcard does not match a `$` topic.
        let dollar = topic.starts_with('$');
        let root = &self.nodes[ROOT];
        if !dollar {
            root.multi.for_each(&mut f);
        }
        let mut pending: Pending<(NodeId, Option<&str>), 32> = Pending::new();
        let (level, rest) = split_level(topic);
        if let Some(child) = root.children.get(level) {
            pending.push((*child, rest));
        }
        if let (Some(plus), false) = (root.plus, dollar) {
            pending.push((plus, rest));
        }
        while let Some((id, rest)) = pending.pop() {
            let node = &self.nodes[id];
            // `a/#` matches `a` itself and everything below it.
            node.multi.for_each(&mut f);
            let Some(rest) = rest else {
                node.exact.for_each(&mut f);
                continue;
            };
            let (level, rest) = split_level(rest);
            if let Some(child) = node.children.get(level) {
                pending.push((*child, rest));
            }
            if let Some(plus) = node.plus {
                pending.push((plus, rest));
            }
        }
    }

    fn child(&self, node: NodeId, edge: Edge<'_>) -> Option<NodeId> {
        match edge {
            Edge::Literal(level) => self.nodes[node].children.get(level).copied(),
            Edge::Plus => self.nodes[node].plus,
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

/// The edges a filter walks, and where its subscribers go at the end.
fn filter_path(filter: &str) -> (impl Iterator<Item = Edge<'_>>, Slot) {
    let (body, slot) = if filter == "#" {
        (None, Slot::Multi)
    } else if let Some(body) = filter.strip_suffix("/#") {
        (Some(body), Slot::Multi)
    } else {
        (Some(filter), Slot::Exact)
    };
    let edges = body
        .into_iter()
        .flat_map(|body| body.split('/'))
        .map(|level| match level {
            "+" => Edge::Plus,
            literal => Edge::Literal(literal),
        });
    (edges, slot)
}

/// Splits off the first level: `"a/b/c"` → `("a", Some("b/c"))`, `"a"` → `("a", None)`.
pub(crate) fn split_level(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (s, None),
    }
}

/// A LIFO stack that keeps its first `N` entries inline and only allocates past them.
pub(crate) struct Pending<T: Copy, const N: usize> {
    inline: [Option<T>; N],
    spill: Vec<T>,
    len: usize,
}

impl<T: Copy, const N: usize> Pending<T, N> {
    pub(crate) fn new() -> Self {
        Pending {
            inline: [None; N],
            spill: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, value: T) {
        if self.len < N {
            self.inline[self.len] = Some(value);
        } else {
            self.spill.push(value);
        }
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        if self.len < N {
            self.inline[self.len].take()
        } else {
            self.spill.pop()
        }
    }
}

#[cfg(test)]
mod tests;
