//! `/healthz`: healthy when every source is connected (or a replay has finished)
//! and every output is connected; otherwise the reasons, one per line.

use super::snapshot::Snapshot;

/// What is not healthy in `s`, one line each; empty when all is well.
pub fn problems(s: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for src in &s.sources {
        match src.state.as_str() {
            "connected" | "finished" => {}
            "waiting" => {
                let since = src
                    .since_ms
                    .map(|ms| format!(" since {}Z", crate::utc::date_time(ms.div_euclid(1000))))
                    .unwrap_or_default();
                let error = src.last_error.as_deref().unwrap_or("unknown error");
                out.push(format!("source {}: waiting{since}: {error}", src.id));
            }
            other => out.push(format!("source {}: {other}", src.id)),
        }
    }
    if let Some(st) = &s.store {
        if let Some(error) = &st.last_error {
            out.push(format!("store: {error}"));
        }
        if st.disk_low {
            out.push(format!(
                "store: only {} bytes free on its disk: it counts as full",
                st.disk_free_bytes
            ));
        }
    }
    for o in &s.outputs {
        if !o.connected {
            let error = o.last_error.as_deref().unwrap_or("no connection yet");
            out.push(format!("output {}: not connected: {error}", o.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::snapshot::*;

    fn healthy() -> Snapshot {
        Snapshot {
            gateway: GatewayInfo {
                id: "pi".into(),
                version: "0".into(),
                uptime_secs: 1.0,
                now_ms: 0,
                reloads: Reloads::default(),
            },
            sources: ["connected", "finished"]
                .iter()
                .map(|state| SourceSnapshot {
                    id: format!("s-{state}"),
                    state: state.to_string(),
                    since_ms: None,
                    last_error: None,
                    bytes: 0,
                    frames: 0,
                    bad_frames: 0,
                    reopens: 0,
                    last_frame_ms: None,
                    recent: Vec::new(),
                    last_bad_frame: None,
                    duty_cycle: Vec::new(),
                    modbus: None,
                    mqtt: None,
                    lorawan: None,
                    poll_timeouts: 0,
                    polls: Vec::new(),
                })
                .collect(),
            mappings: Vec::new(),
            store: None,
            outputs: vec![OutputSnapshot {
                name: "upstream".into(),
                connected: true,
                published: 0,
                failed: None,
                in_flight: Some(0),
                resent: Some(0),
                possible_duplicates: None,
                connects: Some(1),
                sessions_lost: None,
                max_inflight: None,
                window: None,
                cutoffs: None,
                awaiting_release_max: None,
                last_error: None,
                last_error_at_ms: None,
            }],
            broker: None,
            commands: Vec::new(),
        }
    }

    #[test]
    fn connected_and_finished_sources_with_connected_outputs_are_healthy() {
        assert_eq!(problems(&healthy()), Vec::<String>::new());
    }

    #[test]
    fn a_waiting_source_and_a_disconnected_output_are_each_named_with_their_error() {
        let mut s = healthy();
        s.sources[0].state = "waiting".into();
        s.sources[0].since_ms = Some(86_400_000 + 1500);
        s.sources[0].last_error = Some("device unplugged".into());
        s.outputs[0].connected = false;
        s.outputs[0].last_error = Some("connection refused".into());
        assert_eq!(
            problems(&s),
            vec![
                "source s-connected: waiting since 1970-01-02T00:00:01Z: device unplugged",
                "output upstream: not connected: connection refused",
            ]
        );
    }

    #[test]
    fn a_starting_source_is_not_healthy_yet() {
        let mut s = healthy();
        s.sources[1].state = "starting".into();
        assert_eq!(problems(&s), vec!["source s-finished: starting"]);
    }

    #[test]
    fn a_failing_store_and_a_nearly_full_disk_are_named() {
        let mut s = healthy();
        s.store = Some(StoreSnapshot {
            depth: 0,
            bytes: 0,
            oldest_age_secs: None,
            appended: 0,
            commits: 0,
            evicted: Evictions::default(),
            blocked: false,
            disk_free_bytes: 1000,
            disk_low: true,
            last_error: Some("message store /s/m.db: the disk is full (x)".into()),
        });
        assert_eq!(
            problems(&s),
            [
                "store: message store /s/m.db: the disk is full (x)",
                "store: only 1000 bytes free on its disk: it counts as full"
            ]
        );
    }
}
