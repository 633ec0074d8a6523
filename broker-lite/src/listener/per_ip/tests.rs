use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

#[test]
fn an_address_gets_max_slots_and_others_are_not_affected() {
    let per_ip = PerIp::new(2);
    assert!(per_ip.enter(A) && per_ip.enter(A));
    assert!(!per_ip.enter(A), "third from A is refused");
    assert!(per_ip.enter(B), "B has its own count");
    assert_eq!(per_ip.open(A), 2);
}

#[test]
fn leaving_gives_the_place_back_and_empty_entries_go() {
    let per_ip = PerIp::new(1);
    assert!(per_ip.enter(A), "first place");
    assert!(!per_ip.enter(A));
    per_ip.leave(A);
    assert_eq!(per_ip.open(A), 0);
    assert!(
        per_ip.open.lock().unwrap().is_empty(),
        "no entry kept for A"
    );
    assert!(per_ip.enter(A), "A may connect again");
}

#[test]
fn ipv4_mapped_ipv6_addresses_count_as_their_ipv4_address() {
    let per_ip = PerIp::new(1);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(per_ip.enter(A), "first place");
    assert!(!per_ip.enter(mapped));
    assert!(per_ip.enter(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    per_ip.leave(mapped);
    assert_eq!(per_ip.open(A), 0, "the mapped address left A's place");
}

#[test]
fn zero_means_no_limit() {
    let per_ip = PerIp::new(0);
    assert!((0..1000).all(|_| per_ip.enter(A)));
    assert_eq!(per_ip.open(A), 0, "nothing is counted");
    per_ip.leave(A);
    assert_eq!(per_ip.open(A), 0, "and leaving does not count below zero");
}
