//! The status page in a real browser. `mqgate run` runs a copy of the demo
//! (examples/demo.yaml, on free ports); headless Chromium opens the page, waits
//! for live data, checks that the numbers move, that every source, mapping and
//! output of `/api/status` is listed, that the charts draw, and that the console
//! shows no error and no failed request. The screenshot is saved to the target's
//! tmp folder, and to docs/status-page.png with `MQGATE_UPDATE_SCREENSHOT=1`.
//!
//! Needs the Debian packages `chromium chromium-driver`; fails (not skips)
//! without them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mqgate_tests::mqgate::{start_mqgate_run, workspace_file, workspace_root};
use mqgate_tests::webdriver::{Browser, LogEntry};
use serde_json::Value;
use test_support::process::{Proc, Stream};
use test_support::scratch::Scratch;

/// How long any one wait may take.
const WAIT: Duration = Duration::from_secs(20);
/// Chart points (one a second) the page must have before the second reading and
/// the screenshot.
const SAMPLES: u64 = 5;
/// Chart points before the screenshot that goes into docs/: enough for the
/// charts to show a line rather than a stub.
const DOCS_SAMPLES: u64 = 30;

/// Whether this run replaces docs/status-page.png.
fn updating_docs() -> bool {
    std::env::var("MQGATE_UPDATE_SCREENSHOT").as_deref() == Ok("1")
}

/// The tables, the header and the store line as text. Each table is a list of
/// rows, each row its cells' text by the cell's `data-col` hook, or by column
/// heading in a table without hooks.
const READ_PAGE: &str = r#"
const text = id => { const e = document.getElementById(id); return e ? e.textContent.trim() : null; };
const table = id => {
  const t = document.getElementById(id);
  if (!t) return null;
  const rows = Array.from(t.querySelectorAll("tr"));
  if (t.querySelector("[data-col]")) {
    return rows.map(r => Object.fromEntries(Array.from(r.querySelectorAll("[data-col]"))
      .map(c => [c.dataset.col, c.textContent.trim()])));
  }
  if (rows.length === 0) return [];
  const head = Array.from(rows[0].cells).map(c => c.textContent.trim());
  return rows.slice(1).map(r =>
    Object.fromEntries(Array.from(r.cells).map((c, i) => [head[i] || String(i), c.textContent.trim()])));
};
return { live: text("live"), uptime: text("uptime"), store: text("store"),
         sources: table("sources"), mappings: table("mappings"), outputs: table("outputs") };
"#;

/// True once the event stream is open and a snapshot has filled the tables.
const FIRST_SNAPSHOT: &str = r#"
const live = document.getElementById("live"), sources = document.getElementById("sources");
return !!live && live.textContent.trim() === "live" && !!sources && sources.rows.length > 1;
"#;

/// Points in the messages/s chart: the canvas's `data-points` hook if the page
/// sets it, else the length of the page's `rates` array; `null` when neither exists.
const SAMPLE_COUNT: &str = r#"
const c = document.getElementById("rate");
if (c && c.dataset && c.dataset.points != null) return Number(c.dataset.points);
return typeof rates === "undefined" ? null : rates.length;
"#;

/// For each chart canvas, how many pixels are painted in colour: the plotted
/// line, not the grey labels of its scale.
const CHART_PIXELS: &str = r#"
return ["rate", "depth"].map(id => {
  const c = document.getElementById(id);
  if (!c || !c.getContext) return { id, painted: null };
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 0; i < d.length; i += 4) {
    const spread = Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]);
    if (d[i + 3] > 100 && spread > 80) painted++;
  }
  return { id, painted };
});
"#;

/// Every request the page made that the browser timed, with its HTTP status.
const REQUESTS: &str = r#"
return performance.getEntries()
  .filter(e => e.entryType === "navigation" || e.entryType === "resource")
  .map(e => ({ url: e.name, status: e.responseStatus }));
"#;

/// `/api/status` as the page's own origin serves it.
const API_STATUS: &str = r#"
const done = arguments[arguments.length - 1];
fetch("/api/status").then(r => r.json()).then(done, e => done({ error: String(e) }));
"#;

/// A copy of the demo in `dir/examples/` with the broker, the status page and the
/// Semtech UDP source on free ports; `mappings`, `scripts`, `tests` and the other
/// files of `examples/` are links to the repository's, so that the demo's relative
/// paths resolve as they do in the repository. Returns the file and the source ids.
fn demo_copy(dir: &Scratch) -> (PathBuf, Vec<String>) {
    let demo = workspace_file("examples/demo.yaml");
    let mut text = std::fs::read_to_string(&demo).expect("read examples/demo.yaml");
    for (addr, what) in [
        ("127.0.0.1:1883", "broker"),
        ("127.0.0.1:8080", "status"),
        ("127.0.0.1:1700", "Semtech UDP source"),
    ] {
        let line = format!("listen: {addr}");
        assert_eq!(
            text.matches(&line).count(),
            1,
            "examples/demo.yaml: expected one `{line}` ({what}) to move to a free port"
        );
        text = text.replace(&line, "listen: 127.0.0.1:0");
    }
    let examples = dir.path().join("examples");
    std::fs::create_dir_all(&examples).expect("create examples/");
    for name in ["mappings", "scripts", "tests"] {
        std::os::unix::fs::symlink(workspace_file(name), dir.path().join(name))
            .unwrap_or_else(|e| panic!("link {name}/: {e}"));
    }
    let entries = std::fs::read_dir(workspace_file("examples")).expect("list examples/");
    for entry in entries.map(|e| e.expect("an entry of examples/")) {
        if entry.file_name() != "demo.yaml" {
            std::os::unix::fs::symlink(entry.path(), examples.join(entry.file_name()))
                .unwrap_or_else(|e| panic!("link {:?}: {e}", entry.file_name()));
        }
    }
    let ids = text
        .lines()
        .filter_map(|l| l.strip_prefix("  - id: "))
        .map(|id| id.trim().to_string())
        .collect();
    (dir.write("examples/demo.yaml", text), ids)
}

/// The page's address, from `mqgate run`'s `status page on http://ADDR/` line.
fn status_url(gw: &Proc) -> String {
    let addr = mqgate_tests::http::status_addr(gw, WAIT);
    assert!(addr.ip().is_loopback(), "{addr}");
    format!("http://{addr}/")
}

/// Headless Chromium on the gateway's status page.
fn open_page(gw: &Proc) -> Browser {
    let url = status_url(gw);
    let browser = Browser::start().unwrap_or_else(|e| panic!("{e:#}"));
    browser
        .goto(&url)
        .unwrap_or_else(|e| panic!("open {url}: {e:#}"));
    browser
}

/// One table row: cell text by column (`data-col` hook or heading).
type Row = BTreeMap<String, String>;

/// A column as the page's `data-col` hook names it, and as its heading does.
#[derive(Debug, Clone, Copy)]
struct Col {
    hook: &'static str,
    heading: &'static str,
}

const SOURCE_ID: Col = Col {
    hook: "id",
    heading: "source",
};
const FRAMES: Col = Col {
    hook: "frames",
    heading: "frames",
};
const MAPPING_SOURCE: Col = Col {
    hook: "source",
    heading: "source",
};
const MESSAGES: Col = Col {
    hook: "messages",
    heading: "messages",
};
const OUTPUT_NAME: Col = Col {
    hook: "name",
    heading: "output",
};
const PUBLISHED: Col = Col {
    hook: "published",
    heading: "published",
};

fn cell(row: &Row, col: Col) -> Option<&str> {
    row.get(col.hook)
        .or_else(|| row.get(col.heading))
        .map(String::as_str)
}

/// What the page shows at one moment.
#[derive(Debug)]
struct View {
    live: String,
    uptime: String,
    store: String,
    sources: Vec<Row>,
    mappings: Vec<Row>,
    outputs: Vec<Row>,
}

impl View {
    fn read(browser: &Browser) -> View {
        let v = browser.execute(READ_PAGE, &[]).expect("read the page");
        let text = |key: &str| {
            v[key]
                .as_str()
                .unwrap_or_else(|| panic!("the page has no #{key}: {v}"))
                .to_string()
        };
        let table = |key: &str| -> Vec<Row> {
            let rows = v[key]
                .as_array()
                .unwrap_or_else(|| panic!("the page has no table #{key}: {v}"));
            rows.iter()
                .map(|r| {
                    r.as_object()
                        .expect("a row is an object")
                        .iter()
                        .map(|(k, c)| (k.clone(), c.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .collect()
        };
        View {
            live: text("live"),
            uptime: text("uptime"),
            store: text("store"),
            sources: table("sources"),
            mappings: table("mappings"),
            outputs: table("outputs"),
        }
    }

    /// The ids in column `id` of `rows`, in order; rows without one (headings,
    /// error lines) are skipped.
    fn ids(rows: &[Row], id: Col) -> Vec<String> {
        rows.iter()
            .filter_map(|r| cell(r, id).filter(|s| !s.is_empty()))
            .map(str::to_string)
            .collect()
    }

    /// The number in column `col` of the row whose column `id` is `key`.
    fn number(&self, rows: &[Row], id: Col, key: &str, col: Col) -> u64 {
        let row = rows
            .iter()
            .find(|r| cell(r, id) == Some(key))
            .unwrap_or_else(|| panic!("no row {key:?}: {self:#?}"));
        let text = cell(row, col).unwrap_or_else(|| panic!("no column {col:?} in {row:?}"));
        text.parse()
            .unwrap_or_else(|_| panic!("{key}: {col:?} {text:?} is not a number"))
    }

    fn frames(&self, source: &str) -> u64 {
        self.number(&self.sources, SOURCE_ID, source, FRAMES)
    }

    /// Messages made by all mappings together.
    fn messages(&self) -> u64 {
        View::ids(&self.mappings, MAPPING_SOURCE)
            .iter()
            .map(|s| self.number(&self.mappings, MAPPING_SOURCE, s, MESSAGES))
            .sum()
    }

    fn published(&self, output: &str) -> u64 {
        self.number(&self.outputs, OUTPUT_NAME, output, PUBLISHED)
    }

    /// `up 1h 2m 3s` in seconds.
    fn uptime_secs(&self) -> u64 {
        let rest = self
            .uptime
            .strip_prefix("up ")
            .unwrap_or_else(|| panic!("uptime {:?} does not start with `up `", self.uptime));
        rest.split_whitespace()
            .map(|part| {
                let (n, unit) = part.split_at(part.len() - 1);
                let n: u64 = n
                    .parse()
                    .unwrap_or_else(|_| panic!("uptime {:?}: {part:?}", self.uptime));
                n * match unit {
                    "d" => 86_400,
                    "h" => 3_600,
                    "m" => 60,
                    "s" => 1,
                    _ => panic!("uptime {:?}: unit of {part:?}", self.uptime),
                }
            })
            .sum()
    }
}

/// The ids (`key` of each entry of `list`) of an `/api/status` list.
fn api_ids(status: &Value, list: &str, key: &str) -> Vec<String> {
    status[list]
        .as_array()
        .unwrap_or_else(|| panic!("/api/status has no {list}: {status}"))
        .iter()
        .map(|x| x[key].as_str().expect("a string id").to_string())
        .collect()
}

/// Saves the screenshot in the target's tmp folder, and as the README's picture
/// when `MQGATE_UPDATE_SCREENSHOT=1`.
fn save_screenshot(png: &[u8]) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    std::fs::write(&target, png).unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
    eprintln!("screenshot: {}", target.display());
    if updating_docs() {
        let docs = workspace_root().join("docs/status-page.png");
        std::fs::write(&docs, png).unwrap_or_else(|e| panic!("write {}: {e}", docs.display()));
        eprintln!("screenshot: {}", docs.display());
    }
}

/// What went wrong in the browser: requests that did not answer 200, and console
/// entries that are errors (`SEVERE`) or about the network (failed loads).
fn browser_problems(browser: &Browser) -> Vec<String> {
    let requests = browser.execute(REQUESTS, &[]).expect("the requests");
    let requests = requests.as_array().expect("a list");
    assert!(!requests.is_empty(), "the browser timed no request");
    let mut problems: Vec<String> = requests
        .iter()
        .filter(|r| r["status"] != 200)
        .map(|r| format!("request {} answered {}", r["url"], r["status"]))
        .collect();
    let log: Vec<LogEntry> = browser.console_logs().expect("the console log");
    problems.extend(
        log.iter()
            .filter(|e| e.level == "SEVERE" || e.source == "network")
            .map(|e| format!("console {} [{}] {}", e.level, e.source, e.message)),
    );
    problems
}

#[test]
fn chromium_shows_the_demo_live_with_moving_numbers_drawn_charts_and_no_console_error() {
    let dir = Scratch::new("browser");
    let (config, source_ids) = demo_copy(&dir);
    assert!(source_ids.len() >= 2, "demo sources: {source_ids:?}");
    let mut gw = start_mqgate_run(&config);
    let browser = open_page(&gw);

    browser
        .wait_for("the first snapshot on the page", WAIT, FIRST_SNAPSHOT)
        .unwrap_or_else(|e| panic!("{e:#}\npage: {:#?}", View::read(&browser)));
    let first = View::read(&browser);
    assert_eq!(first.live, "live");
    assert!(
        browser
            .execute(SAMPLE_COUNT, &[])
            .expect("count")
            .is_number(),
        "the page tells no chart point count (`data-points` on #rate)"
    );

    // Every source, mapping and output the API knows is in the tables, in order.
    let api = browser.execute_async(API_STATUS, &[]).expect("/api/status");
    let shown_sources = View::ids(&first.sources, SOURCE_ID);
    assert_eq!(shown_sources, source_ids, "sources against the demo file");
    assert_eq!(shown_sources, api_ids(&api, "sources", "id"));
    assert_eq!(
        View::ids(&first.mappings, MAPPING_SOURCE),
        api_ids(&api, "mappings", "source")
    );
    let outputs = View::ids(&first.outputs, OUTPUT_NAME);
    assert_eq!(outputs, api_ids(&api, "outputs", "name"));
    assert!(outputs.contains(&"embedded".to_string()), "{first:#?}");
    assert!(
        api["store"].is_object() && first.store.starts_with("depth "),
        "the store line: {:?}",
        first.store
    );

    // The embedded broker's panel: shown, with the listener and every kind of
    // refusal the API reports.
    let panel = browser
        .execute(
            "return [document.getElementById('broker-panel').hidden,\
             document.getElementById('broker-listeners').textContent,\
             [...document.querySelectorAll('#broker-refusals tr[data-key]')].map(r => r.dataset.key)];",
            &[],
        )
        .expect("the broker panel");
    let (hidden, listeners, refusals): (bool, String, Vec<String>) =
        serde_json::from_value(panel).expect("the panel's parts");
    assert!(!hidden, "the embedded broker's panel is hidden");
    let api_listeners: Vec<String> =
        serde_json::from_value(api["broker"]["listeners"].clone()).expect("listeners");
    assert_eq!(listeners, api_listeners.join(", "));
    let mut api_refusals: Vec<String> = api["broker"]["refusals"]
        .as_object()
        .expect("refusals by reason")
        .keys()
        .cloned()
        .collect();
    let mut shown_refusals = refusals.clone();
    api_refusals.sort();
    shown_refusals.sort();
    assert_eq!(shown_refusals, api_refusals, "one row per kind of refusal");

    // The last frames of each source, as text: the GPS source's are NMEA sentences.
    let previews = browser
        .execute(
            "return [...document.querySelectorAll('#frames details')].map(d => \
             [d.dataset.key, (d.querySelector('summary code') || {}).textContent || null]);",
            &[],
        )
        .expect("the last frames");
    let previews: Vec<(String, Option<String>)> =
        serde_json::from_value(previews).expect("pairs of id and text");
    assert_eq!(
        previews.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
        source_ids,
        "one block of last frames per source"
    );
    let gps = previews
        .iter()
        .find(|p| p.0 == "gps")
        .and_then(|p| p.1.clone());
    assert!(
        gps.as_deref().is_some_and(|t| t.starts_with("$GP")),
        "the GPS source's last frame: {gps:?}"
    );

    // What a source's bad frames are: the UBX capture starts with the last two
    // bytes of a frame, so from its first second the page says why under its row.
    let shown = browser
        .wait_for(
            "the UBX source's last bad frame",
            WAIT,
            "const c = document.querySelector('#sources tr[data-key=\"ubx-bad\"] [data-col=\"last_bad_frame\"]');\
             return c ? c.textContent : null;",
        )
        .unwrap_or_else(|e| panic!("{e:#}\npage: {:#?}", View::read(&browser)));
    let shown = shown.as_str().expect("text").to_string();
    let api = browser.execute_async(API_STATUS, &[]).expect("/api/status");
    let ubx = api["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["id"] == "ubx"))
        .unwrap_or_else(|| panic!("no ubx source: {api}"));
    let why = ubx["last_bad_frame"]["why"].as_str().unwrap_or_default();
    assert!(
        shown.starts_with("last bad frame: ") && !why.is_empty() && shown.contains(why),
        "the page says {shown:?}, the API {why:?}"
    );

    // A later snapshot, once the charts have a few points.
    let samples = if updating_docs() {
        DOCS_SAMPLES
    } else {
        SAMPLES
    };
    let later = format!(
        "const n = (() => {{ {SAMPLE_COUNT} }})();\n\
         return n >= {samples} && document.getElementById('uptime').textContent !== {:?} ? n : null;",
        first.uptime
    );
    let points = browser
        .wait_for(
            "a later snapshot and charts with points",
            WAIT + Duration::from_secs(samples),
            &later,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let second = View::read(&browser);
    eprintln!(
        "{points} chart points; uptime {} -> {}; gps frames {} -> {}; messages {} -> {}",
        first.uptime,
        second.uptime,
        first.frames("gps"),
        second.frames("gps"),
        first.messages(),
        second.messages(),
    );
    assert!(
        second.uptime_secs() > first.uptime_secs(),
        "{first:#?}\n{second:#?}"
    );
    assert!(
        second.frames("gps") > first.frames("gps"),
        "{first:#?}\n{second:#?}"
    );
    for id in &source_ids {
        assert!(second.frames(id) >= first.frames(id), "{id} went back");
    }
    assert!(second.messages() > first.messages(), "{second:#?}");
    assert!(
        second.published("embedded") > first.published("embedded"),
        "{second:#?}"
    );

    let charts = browser.execute(CHART_PIXELS, &[]).expect("read the charts");
    for chart in charts.as_array().expect("a list") {
        let painted = chart["painted"]
            .as_u64()
            .unwrap_or_else(|| panic!("no chart canvas: {chart}"));
        assert!(painted > 0, "chart #{} drew no line", chart["id"]);
    }

    // Opened, a source's block lists its last frames in hex and text, and stays
    // open through the next updates.
    let opened_at = browser
        .execute(
            "document.querySelector('#frames details[data-key=\"binary-sensor\"]').open = true;\
             return document.getElementById('uptime').dataset.secs;",
            &[],
        )
        .expect("open a source's last frames");
    let hex = browser
        .wait_for(
            "the opened block after the next update",
            WAIT,
            &format!(
                "const d = document.querySelector('#frames details[data-key=\"binary-sensor\"]');\
                 if (document.getElementById('uptime').dataset.secs === {opened_at}) return null;\
                 const hex = [...d.querySelectorAll('td.hex')].map(c => c.textContent);\
                 return d.open && hex.length > 0 ? hex : null;"
            ),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    for row in hex.as_array().expect("hex rows") {
        let text = row.as_str().unwrap_or_default();
        assert!(
            text.split(' ')
                .all(|b| b == "…" || (b.len() == 2 && u8::from_str_radix(b, 16).is_ok())),
            "hex: {text:?}"
        );
    }

    browser
        .fit_window_to_page()
        .unwrap_or_else(|e| panic!("{e:#}"));
    save_screenshot(&browser.screenshot_png().expect("a screenshot"));

    let problems = browser_problems(&browser);
    assert!(
        problems.is_empty(),
        "the browser reports:\n  {}",
        problems.join("\n  ")
    );

    drop(browser);
    gw.signal(libc::SIGTERM);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(exit.code(), Some(0), "output:\n{}", gw.transcript());
}

/// With the event stream held back (as some proxies and tunnels do), the page still
/// shows the gateway at once, from `/api/status`.
#[test]
fn chromium_shows_the_state_at_once_even_when_the_event_stream_is_held_back() {
    let dir = Scratch::new("browser-no-events");
    let (config, source_ids) = demo_copy(&dir);
    let mut gw = start_mqgate_run(&config);
    let url = status_url(&gw);
    let browser = Browser::start().unwrap_or_else(|e| panic!("{e:#}"));
    browser
        .cdp("Network.enable", serde_json::json!({}))
        .unwrap_or_else(|e| panic!("{e:#}"));
    browser
        .cdp(
            "Network.setBlockedURLs",
            serde_json::json!({ "urls": ["*/events*"] }),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    browser
        .goto(&url)
        .unwrap_or_else(|e| panic!("open {url}: {e:#}"));
    browser
        .wait_for(
            "the sources on the page",
            WAIT,
            "const t = document.getElementById(\"sources\"); return !!t && t.rows.length > 1;",
        )
        .unwrap_or_else(|e| panic!("{e:#}\npage: {:#?}", View::read(&browser)));
    let view = View::read(&browser);
    assert_eq!(View::ids(&view.sources, SOURCE_ID), source_ids);
    assert!(view.uptime.starts_with("up "), "{view:#?}");
    assert_ne!(view.live, "live", "the event stream was blocked: {view:#?}");
    gw.signal(libc::SIGTERM);
    gw.wait_exit(WAIT);
}

/// A disk with less free space than `store.min_free_bytes` (here: more than any
/// disk has) is named on the page as the reason the store counts as full.
#[test]
fn chromium_shows_when_the_stores_disk_is_nearly_full() {
    let dir = Scratch::new("browser-disk-low");
    let (config, _) = demo_copy(&dir);
    let mut text = std::fs::read_to_string(&config).expect("the demo copy");
    assert!(
        !text.contains("\nstore:"),
        "the demo has no store section yet"
    );
    text.push_str("store:\n  min_free_bytes: 1000000000000000000\n");
    std::fs::write(&config, text).expect("write the demo copy");
    let mut gw = start_mqgate_run(&config);
    let browser = open_page(&gw);
    browser
        .wait_for(
            "the disk named on the page",
            WAIT,
            "const d = document.getElementById(\"disk-low\"); \
             return !!d && d.textContent.includes(\"disk nearly full\");",
        )
        .unwrap_or_else(|e| panic!("{e:#}\npage: {:#?}", View::read(&browser)));
    assert_eq!(browser_problems(&browser), Vec::<String>::new());
    gw.signal(libc::SIGTERM);
    gw.wait_exit(WAIT);
}

#[test]
fn chromium_shows_the_demos_commands_with_their_last_result() {
    let dir = Scratch::new("browser-commands");
    let (config, _) = demo_copy(&dir);
    let mut gw = start_mqgate_run(&config);
    let port = mqgate_tests::mqgate::embedded_broker_port(&gw, WAIT);
    gw.wait_for_line(Stream::Stderr, &["taking commands"], WAIT);
    let browser = open_page(&gw);
    test_support::mosquitto::mosquitto_pub(
        port,
        &[
            "-q",
            "1",
            "-t",
            "cmd/json-sensor/led",
            "-m",
            r#"{"led": "on"}"#,
        ],
    );
    test_support::mosquitto::mosquitto_pub(
        port,
        &["-q", "1", "-t", "cmd/json-sensor/led", "-m", "not json"],
    );
    browser
        .wait_for(
            "one command sent and one failed, with why",
            WAIT,
            "const t = document.getElementById(\"commands\"); \
             const get = c => t && t.querySelector('[data-col=\"' + c + '\"]'); \
             return !document.getElementById(\"commands-panel\").hidden && \
               !!get(\"sent\") && get(\"sent\").textContent === \"1\" && \
               get(\"failed\").textContent === \"1\" && \
               get(\"recent\").textContent.includes(\"a command must be a JSON object\");",
        )
        .unwrap_or_else(|e| panic!("{e:#}\npage: {:#?}", View::read(&browser)));
    assert_eq!(browser_problems(&browser), Vec::<String>::new());
    let written = std::fs::read_to_string(
        dir.path()
            .join("target/mqgate-demo/json-sensor-commands.log"),
    )
    .expect("the demo's commands file");
    assert_eq!(written, "{\"led\":\"on\"}\r\n");
    gw.signal(libc::SIGTERM);
    gw.wait_exit(WAIT);
}

#[test]
fn chromium_shows_a_modbus_bus_with_each_device_and_the_one_that_stopped_answering() {
    let slave = mqgate_tests::modbus::Slave::start(&[
        "--tcp",
        "127.0.0.1:0",
        "--units",
        "1,2",
        "--dead",
        "2",
    ]);
    let dir = Scratch::new("browser-modbus");
    dir.write(
        "mappings/bus.yaml",
        "source: bus\ntopic: \"modbus/{device}\"\n",
    );
    let config = dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: mb-page\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             status:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: bus\n    type: modbus_tcp\n    host: 127.0.0.1:{port}\n\
             \x20   timeout_ms: 100\n    retries: 0\n    unavailable_after: 1\n    devices:\n\
             \x20     - {{ name: meter, unit: 1, every: 300ms, fields: [{{ name: voltage, register: input, address: 2, type: f32 }}] }}\n\
             \x20     - {{ name: gone, unit: 2, every: 300ms, fields: [{{ name: voltage, register: input, address: 2, type: f32 }}] }}\n",
            state = dir.path().join("state").display(),
            port = slave.port()
        ),
    );
    let mut gw = start_mqgate_run(&config);
    let browser = open_page(&gw);
    browser
        .wait_for(
            "the bus line with both devices",
            WAIT,
            "const m = document.querySelector('[data-col=\"modbus\"]'); \
             return !!m && m.textContent.includes('% busy') && \
               /meter \\(unit 1\\) [1-9][0-9]* ok/.test(m.textContent) && \
               m.textContent.includes('gone (unit 2) unavailable') && \
               m.textContent.includes('no answer');",
        )
        .unwrap_or_else(|e| panic!("{e:#}\npage: {:#?}", View::read(&browser)));
    assert_eq!(browser_problems(&browser), Vec::<String>::new());
    gw.signal(libc::SIGTERM);
    gw.wait_exit(WAIT);
    drop(slave);
}

#[test]
fn chromium_shows_an_mqtt_sources_messages_and_the_gateways_own_it_skipped() {
    let dir = Scratch::new("browser-mqtt");
    dir.write(
        "mappings/lan.yaml",
        "source: lan\ntopic: \"site/{level1}\"\n",
    );
    let config = dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: mqtt-page\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             status:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: lan\n    type: mqtt\n    broker: embedded\n    topics: [\"esp32/#\"]\n",
            state = dir.path().join("state").display(),
        ),
    );
    let mut gw = start_mqgate_run(&config);
    let port = mqgate_tests::mqgate::embedded_broker_port(&gw, WAIT);
    gw.wait_for_line(Stream::Stderr, &["subscribed on the embedded broker"], WAIT);
    for payload in ["20.5", "20.6"] {
        test_support::mosquitto::mosquitto_pub(
            port,
            &["-q", "1", "-t", "esp32/kitchen", "-m", payload],
        );
    }
    let browser = open_page(&gw);
    browser
        .wait_for(
            "the MQTT line with both messages",
            WAIT,
            "const m = document.querySelector('[data-col=\"mqtt\"]'); \
             return !!m && m.textContent.includes('MQTT: 2 messages');",
        )
        .unwrap_or_else(|e| panic!("{e:#}\npage: {:#?}", View::read(&browser)));
    assert_eq!(browser_problems(&browser), Vec::<String>::new());
    gw.signal(libc::SIGTERM);
    gw.wait_exit(WAIT);
}

#[test]
fn chromium_shows_a_semtech_sources_lorawan_counts_with_the_refusals_by_reason() {
    use base64::Engine as _;
    let dir = Scratch::new("browser-abp");
    let (nwk, app) = (
        "44024241ed4ce9a68c6a8bc055233fd3",
        "ec925802ae430ca77fd3dd73cb2cc588",
    );
    let config = dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: abp-page\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             status:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: lora\n    type: semtech_udp\n    listen: 127.0.0.1:0\n\
             devices:\n  - name: probe-1\n    dev_addr: \"26011BDA\"\n\
             \x20   nwk_s_key: \"{nwk}\"\n    app_s_key: \"{app}\"\n",
            state = dir.path().join("state").display(),
        ),
    );
    let phy = &mqgate_tests::lora_packet::ask(&[serde_json::json!({
        "op": "encode", "confirmed": false, "dev_addr": "26011BDA", "fctrl": 0, "fcnt": 1,
        "fopts_hex": "", "fport": 1, "payload_hex": "0102", "nwk_s_key": nwk, "app_s_key": app
    })])[0]["phy_hex"];
    let phy = phy.as_str().expect("lora-packet encodes");
    let bytes = test_support::mosquitto::from_hex(phy);
    let rxpk = serde_json::json!({ "rxpk": [{ "tmst": 1, "freq": 868.1, "chan": 0, "rfch": 0,
        "stat": 1, "modu": "LORA", "datr": "SF7BW125", "codr": "4/5", "rssi": -50, "lsnr": 8.0,
        "size": bytes.len(), "data": base64::engine::general_purpose::STANDARD.encode(&bytes) }] })
    .to_string();
    let mut gw = start_mqgate_run(&config);
    let udp = mqgate_tests::mqgate::semtech_udp_addr(&gw, WAIT);
    let status = mqgate_tests::http::status_addr(&gw, WAIT);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut fwd =
            test_support::gwmp::Forwarder::new(udp, [0xb8, 0x27, 0xeb, 0xff, 0xfe, 0, 0, 1], 2)
                .await;
        // The uplink; once it is accepted (its dedup window closed), the same
        // again: a replay.
        fwd.push_data(&rxpk, WAIT).await;
        mqgate_tests::http::wait_status(status, "the uplink accepted", WAIT, |s| {
            s["sources"][0]["lorawan"]["accepted"] == 1
        });
        fwd.push_data(&rxpk, WAIT).await;
    });
    let browser = open_page(&gw);
    browser
        .wait_for(
            "the LoRaWAN line with the accepted uplink and the replay",
            WAIT,
            "const m = document.querySelector('[data-col=\"lorawan\"]'); \
             return !!m && m.textContent.includes('1 accepted') && m.textContent.includes('replay 1');",
        )
        .unwrap_or_else(|e| panic!("{e:#}\npage: {:#?}", View::read(&browser)));
    assert_eq!(browser_problems(&browser), Vec::<String>::new());
    gw.signal(libc::SIGTERM);
    gw.wait_exit(WAIT);
}
