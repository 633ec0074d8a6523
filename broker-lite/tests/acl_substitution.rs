//! `%u` and `%c` in ACL patterns with real clients: a user name or client id
//! holding `/` (or a wildcard) is not put into a pattern, so `bob/inbox` does
//! not get `users/bob/inbox/#` from `users/%u/#`.

mod real;

use std::path::Path;

use broker_lite::auth::hash::{PasswordHash, MIN_ITERATIONS};
use real::TestBroker;
use test_support::mosquitto::{mosquitto_pub, Subscriber};
use test_support::Scratch;

const ACL: &str = "\
user admin
topic readwrite #

user bob/inbox
topic readwrite fence/#

pattern readwrite users/%u/#
pattern readwrite devices/%c/#
pattern read fence/#
";

/// Users admin, bob and bob/inbox (password: the name), the ACL above, anonymous
/// clients allowed.
fn broker(dir: &Path) -> TestBroker {
    let mut users = String::new();
    for user in ["admin", "bob", "bob/inbox"] {
        let hash = PasswordHash::new(user.as_bytes(), MIN_ITERATIONS).expect("salt");
        users.push_str(&format!("{user}:{hash}\n"));
    }
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, users).expect("write the password file");
    let acl = dir.join("acl");
    std::fs::write(&acl, ACL).expect("write the ACL file");
    TestBroker::start(|c| {
        c.auth.password_file = Some(passwd);
        c.auth.acl_file = Some(acl);
        c.auth.allow_anonymous = Some(true);
    })
}

fn who(user: &str) -> [&str; 4] {
    ["-u", user, "-P", user]
}

/// Topics `sub` received before `marker`, which the admin publishes last.
fn topics_before(port: u16, sub: &mut Subscriber, marker: &str) -> Vec<String> {
    let args = [&who("admin")[..], &["-q", "1", "-t", marker, "-m", "end"]].concat();
    mosquitto_pub(port, &args);
    let (before, _) = sub.msgs_until_topic(marker);
    before.into_iter().map(|m| m.topic).collect()
}

#[test]
fn a_slash_in_a_user_name_does_not_reach_another_users_topics_through_a_pattern() {
    let dir = Scratch::new("broker-lite-acl-subst-user");
    let b = broker(dir.path());
    let filters = ["-q", "1", "-t", "users/bob/inbox/#", "-t", "#"];
    let mut sneaky = Subscriber::spawn(b.port, &[&who("bob/inbox")[..], &filters].concat());
    assert_eq!(
        sneaky.wait_suback(),
        [0x80, 1],
        "users/bob/inbox/# was granted to bob/inbox"
    );
    let mut bob = Subscriber::subscribed(
        b.port,
        &[&who("bob")[..], &["-q", "1", "-t", "users/bob/#"]].concat(),
    );
    let admin = who("admin");
    mosquitto_pub(
        b.port,
        &[
            &admin[..],
            &["-q", "1", "-t", "users/bob/inbox/x", "-m", "for bob"],
        ]
        .concat(),
    );
    // The one bob/inbox may read comes last; bob's own pattern still works.
    assert_eq!(
        topics_before(b.port, &mut sneaky, "fence/1"),
        Vec::<String>::new()
    );
    let got = bob.expect_msg();
    assert_eq!(
        (got.topic.as_str(), got.text()),
        ("users/bob/inbox/x", "for bob".into())
    );

    // Nor may bob/inbox publish there.
    let mut watcher = Subscriber::subscribed(
        b.port,
        &[&admin[..], &["-q", "1", "-t", "users/#", "-t", "fence/#"]].concat(),
    );
    let sneaky_pub = who("bob/inbox");
    mosquitto_pub(
        b.port,
        &[
            &sneaky_pub[..],
            &["-q", "1", "-t", "users/bob/inbox/y", "-m", "forged"],
        ]
        .concat(),
    );
    assert_eq!(
        topics_before(b.port, &mut watcher, "fence/2"),
        Vec::<String>::new()
    );
    b.wait_metrics("the forged publish counted", |m| m.publishes_denied == 1);
}

#[test]
fn a_slash_in_a_client_id_does_not_reach_another_devices_topics_through_a_pattern() {
    let dir = Scratch::new("broker-lite-acl-subst-client");
    let b = broker(dir.path());
    let mut sneaky = Subscriber::spawn(
        b.port,
        &[
            "-i",
            "gw/secret",
            "-q",
            "1",
            "-t",
            "devices/gw/secret/#",
            "-t",
            "fence/#",
        ],
    );
    assert_eq!(sneaky.wait_suback(), [0x80, 1]);
    let mut own = Subscriber::subscribed(b.port, &["-i", "gw", "-q", "1", "-t", "devices/gw/#"]);
    mosquitto_pub(
        b.port,
        &[
            &who("admin")[..],
            &["-q", "1", "-t", "devices/gw/secret/k", "-m", "key"],
        ]
        .concat(),
    );
    assert_eq!(
        topics_before(b.port, &mut sneaky, "fence/3"),
        Vec::<String>::new()
    );
    assert_eq!(own.expect_msg().topic, "devices/gw/secret/k");
}
