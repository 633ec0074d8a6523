use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

#[test]
fn an_address_gets_max_slots_and_others_are_not_affected() {
    let per_ip = PerIp::new(2);
    let a1 = per_ip.enter(A);
    let a2 = per_ip.enter(A);
    assert!(a1.is_some() && a2.is_some());
    assert!(per_ip.enter(A).is_none(), "third from A is refused");
    assert!(per_ip.enter(B).is_some(), "B has its own count");
    assert_eq!(per_ip.open(A), 2);
}

#[test]
fn a_dropped_slot_gives_its_place_back_and_empty_entries_go() {
    let per_ip = PerIp::new(1);
    let slot = per_ip.enter(A).expect("first slot");
    assert!(per_ip.enter(A).is_none());
    drop(slot);
    assert_eq!(per_ip.open(A), 0);
    assert!(
        per_ip.open.lock().unwrap().is_empty(),
        "no entry kept for A"
    );
    assert!(per_ip.enter(A).is_some(), "A may connect again");
}

#[test]
fn ipv4_mapped_ipv6_addresses_count_as_their_ipv4_address() {
    let per_ip = PerIp::new(1);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    let _slot = per_ip.enter(A).expect("first slot");
    assert!(per_ip.enter(mapped).is_none());
    assert!(per_ip.enter(IpAddr::V6(Ipv6Addr::LOCALHOST)).is_some());
}

#[test]
fn zero_means_no_limit() {
    let per_ip = PerIp::new(0);
    let slots: Vec<_> = (0..1000).map(|_| per_ip.enter(A)).collect();
    assert!(slots.iter().all(Option::is_some));
    assert_eq!(per_ip.open(A), 0, "nothing is counted");
}
