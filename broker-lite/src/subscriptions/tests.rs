use super::*;
use proptest::prelude::*;

fn matches_of(tree: &SubscriptionTree<u32>, topic: &str) -> Vec<(u32, QoS)> {
    let mut seen = Vec::new();
    tree.for_each_match(topic, |k, q| seen.push((k, q)));
    seen.sort();
    seen
}

fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut tree = SubscriptionTree::new();
    tree.insert(filter, 1u32, QoS::AtMostOnce);
    !matches_of(&tree, topic).is_empty()
}

#[test]
fn filters_match_the_examples_of_spec_section_4_7() {
    let table = [
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking",
            true,
        ),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/tennis/player1/#", "sport/tennis/player2", false),
        ("sport/#", "sport", true),
        ("#", "sport/tennis", true),
        ("#", "/", true),
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player2", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("+", "finance", true),
        ("+/tennis/#", "sport/tennis/player1", true),
        ("+/tennis/#", "sport/tennis", true),
        ("+/tennis/#", "sport/golf", false),
        ("sport/+/player1", "sport/tennis/player1", true),
        ("sport/tennis", "sport/tennis", true),
        ("sport/tennis", "sport/Tennis", false),
        ("sport/tennis", "sport/tennis/", false),
        ("sport//tennis", "sport//tennis", true),
        ("sport/+/tennis", "sport//tennis", true),
    ];
    for (filter, topic, expected) in table {
        assert_eq!(
            filter_matches(filter, topic),
            expected,
            "{filter} vs {topic}"
        );
    }
}

#[test]
fn dollar_topics_are_not_matched_by_first_level_wildcards() {
    let table = [
        ("#", "$SYS/broker/uptime", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("+", "$SYS", false),
        ("+/#", "$SYS/a", false),
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/#", "$SYS", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("a/+", "a/$b", true),
        ("a/#", "a/$b/c", true),
    ];
    for (filter, topic, expected) in table {
        assert_eq!(
            filter_matches(filter, topic),
            expected,
            "{filter} vs {topic}"
        );
    }
}

#[test]
fn overlapping_filters_report_a_key_once_per_matching_filter() {
    let mut tree = SubscriptionTree::new();
    tree.insert("a/b", 1, QoS::AtMostOnce);
    tree.insert("a/+", 1, QoS::ExactlyOnce);
    tree.insert("#", 1, QoS::AtLeastOnce);
    tree.insert("a/#", 2, QoS::AtLeastOnce);
    tree.insert("b/#", 3, QoS::AtLeastOnce);
    assert_eq!(
        matches_of(&tree, "a/b"),
        vec![
            (1, QoS::AtMostOnce),
            (1, QoS::AtLeastOnce),
            (1, QoS::ExactlyOnce),
            (2, QoS::AtLeastOnce),
        ]
    );
}

#[test]
fn inserting_the_same_filter_and_key_again_only_replaces_the_qos() {
    let mut tree = SubscriptionTree::new();
    assert!(tree.insert("a/+", 7, QoS::AtMostOnce));
    assert!(!tree.insert("a/+", 7, QoS::ExactlyOnce));
    assert!(tree.insert("a/+", 8, QoS::AtMostOnce));
    assert_eq!(tree.len(), 2);
    assert_eq!(
        matches_of(&tree, "a/x"),
        vec![(7, QoS::ExactlyOnce), (8, QoS::AtMostOnce)]
    );
}

#[test]
fn removing_every_subscription_prunes_the_tree_back_to_its_root() {
    let mut tree = SubscriptionTree::new();
    let filters = ["a/b/c", "a/+/c", "a/#", "#", "+", "/", "a//+/#"];
    for (i, filter) in filters.iter().enumerate() {
        assert!(tree.insert(filter, i as u32, QoS::AtLeastOnce));
    }
    assert!(!tree.remove("a/b/c", 99), "unknown key");
    assert!(!tree.remove("a/b", 0), "unknown filter");
    for (i, filter) in filters.iter().enumerate() {
        assert!(tree.remove(filter, i as u32), "{filter}");
        assert!(!tree.remove(filter, i as u32), "{filter} twice");
    }
    assert!(tree.is_empty());
    assert!(tree.nodes[ROOT].is_empty());
    assert_eq!(
        tree.free.len(),
        tree.nodes.len() - 1,
        "every node but the root is free"
    );
    assert!(matches_of(&tree, "a/b/c").is_empty());
}

#[test]
fn removing_one_filter_keeps_the_branches_others_still_use() {
    let mut tree = SubscriptionTree::new();
    tree.insert("a/b/c", 1, QoS::AtMostOnce);
    tree.insert("a/b", 2, QoS::AtMostOnce);
    tree.insert("a/b/c", 3, QoS::AtMostOnce);
    assert!(tree.remove("a/b/c", 1));
    assert_eq!(matches_of(&tree, "a/b/c"), vec![(3, QoS::AtMostOnce)]);
    assert!(tree.remove("a/b/c", 3));
    assert_eq!(matches_of(&tree, "a/b"), vec![(2, QoS::AtMostOnce)]);
    assert!(tree.nodes[ROOT].children.contains_key("a"));
}

#[test]
fn a_position_with_many_subscribers_keeps_each_one_once() {
    let mut tree = SubscriptionTree::new();
    for key in 0..100u32 {
        assert!(tree.insert("busy/topic", key, QoS::AtMostOnce));
    }
    for key in 0..100u32 {
        assert!(!tree.insert("busy/topic", key, QoS::AtLeastOnce));
    }
    assert_eq!(tree.len(), 100);
    let seen = matches_of(&tree, "busy/topic");
    assert_eq!(
        seen,
        (0..100).map(|k| (k, QoS::AtLeastOnce)).collect::<Vec<_>>()
    );
    for key in (0..100u32).step_by(2) {
        assert!(tree.remove("busy/topic", key));
    }
    assert_eq!(matches_of(&tree, "busy/topic").len(), 50);
}

#[test]
fn very_deep_filters_and_topics_do_not_exhaust_the_stack() {
    let mut tree = SubscriptionTree::new();
    let deep_plus = vec!["+"; 30_000].join("/");
    let deep_topic = vec!["x"; 30_000].join("/");
    tree.insert(&deep_plus, 1u32, QoS::AtMostOnce);
    tree.insert(&deep_topic, 2u32, QoS::AtMostOnce);
    assert_eq!(
        matches_of(&tree, &deep_topic),
        vec![(1, QoS::AtMostOnce), (2, QoS::AtMostOnce)]
    );
    assert!(tree.remove(&deep_plus, 1));
    drop(tree);
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
    (prop::collection::vec(level, 1..5), any::<bool>()).prop_map(|(levels, multi)| {
        let mut filter = levels.join("/");
        if multi {
            filter.push_str("/#");
        }
        if filter == "/#" {
            filter = "#".into();
        }
        filter
    })
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, u32, QoS),
    Remove(String, u32),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let qos = prop::sample::select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]);
    prop_oneof![
        3 => (filter_strategy(), 0..4u32, qos).prop_map(|(f, k, q)| Op::Insert(f, k, q)),
        1 => (filter_strategy(), 0..4u32).prop_map(|(f, k)| Op::Remove(f, k)),
    ]
}

proptest! {
    #[test]
    fn the_tree_matches_like_a_naive_scan_of_every_subscription(
        ops in prop::collection::vec(op_strategy(), 0..60),
        topics in prop::collection::vec(topic_strategy(), 1..10),
    ) {
        let mut tree = SubscriptionTree::new();
        let mut model: HashMap<(String, u32), QoS> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(filter, key, qos) => {
                    let new = model.insert((filter.clone(), key), qos).is_none();
                    prop_assert_eq!(tree.insert(&filter, key, qos), new);
                }
                Op::Remove(filter, key) => {
                    let existed = model.remove(&(filter.clone(), key)).is_some();
                    prop_assert_eq!(tree.remove(&filter, key), existed);
                }
            }
            prop_assert_eq!(tree.len(), model.len());
        }
        for topic in topics {
            let mut expected: Vec<(u32, QoS)> = model
                .iter()
                .filter(|((filter, _), _)| naive_matches(filter, &topic))
                .map(|((_, key), qos)| (*key, *qos))
                .collect();
            expected.sort();
            prop_assert_eq!(matches_of(&tree, &topic), expected, "topic {:?}", topic);
        }
    }
}
