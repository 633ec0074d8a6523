//! A small WebDriver client for headless Chromium, so that tests can look at the
//! status page in a real browser. It speaks the W3C WebDriver protocol (JSON over
//! HTTP/1.1 on a loopback socket) to `chromedriver`, which it starts on a free port
//! and stops again when the `Browser` is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use test_support::free_port;
use test_support::process::Proc;

/// Where Debian's `chromium-driver` package installs the driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Debian's `chromium` package installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Longest wait for chromedriver to say it is ready.
const DRIVER_READY: Duration = Duration::from_secs(15);
/// Longest wait for one WebDriver command (starting the browser is the slowest).
const COMMAND: Duration = Duration::from_secs(60);
/// Page loads and scripts that take longer than this fail the command.
const PAGE_LOAD_MS: u64 = 20_000;
const SCRIPT_MS: u64 = 10_000;

/// One line of the browser's console (or network log), as chromedriver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO`, `DEBUG`.
    pub level: String,
    /// `console-api`, `javascript`, `network`, ...
    pub source: String,
    pub message: String,
}

/// A headless Chromium session; the session is deleted and chromedriver stopped
/// on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Proc,
    port: u16,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a 1280×1600 window
    /// that keeps every console message, from Debian's packages. Fails with an
    /// install hint when Chromium or chromedriver is missing.
    pub fn start() -> anyhow::Result<Browser> {
        Browser::start_with(Path::new(CHROMEDRIVER), Path::new(CHROMIUM))
    }

    /// `start` with the driver and the browser at other places.
    pub fn start_with(chromedriver: &Path, chromium: &Path) -> anyhow::Result<Browser> {
        for (path, package) in [(chromedriver, "chromium-driver"), (chromium, "chromium")] {
            if !path.is_file() {
                bail!(
                    "{} is missing (Debian package {package}): install the Debian \
                     packages `chromium chromium-driver` to run the browser tests",
                    path.display()
                );
            }
        }
        let port = free_port();
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}"));
        let driver = Proc::spawn("chromedriver", cmd);
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        browser.wait_ready()?;
        let created = browser.command(
            "POST",
            "/session",
            &json!({ "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "timeouts": { "pageLoad": PAGE_LOAD_MS, "script": SCRIPT_MS },
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            // Small /dev/shm in containers would crash the renderer.
                            "--disable-dev-shm-usage",
                            "--window-size=1280,1600",
                        ],
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }}),
        )?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("new session: no sessionId in {created}"))?
            .to_string();
        Ok(browser)
    }

    /// Polls chromedriver's `/status` until it reports `ready`.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + DRIVER_READY;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Some(status) = self.driver.try_exited() {
                bail!(
                    "chromedriver exited ({status}) before it was ready:\n{}",
                    self.driver.transcript()
                );
            }
            match http(self.port, "GET", "/status", None, Duration::from_secs(2)) {
                Ok((200, body)) if body["value"]["ready"] == json!(true) => return Ok(()),
                Ok((code, body)) => last = format!("HTTP {code}: {body}"),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "chromedriver on port {} not ready within {DRIVER_READY:?} (last: {last}):\n{}",
            self.port,
            self.driver.transcript()
        )
    }

    /// A Chrome DevTools Protocol command (chromedriver's `goog/cdp/execute`), e.g.
    /// `Network.setBlockedURLs`.
    pub fn cdp(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        self.session_command(
            "POST",
            "/goog/cdp/execute",
            &json!({ "cmd": cmd, "params": params }),
        )
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.session_command("POST", "/url", &json!({ "url": url }))
            .map(drop)
    }

    /// Runs `script` as the body of a function in the page with `args` as
    /// `arguments`; returns what it returns.
    pub fn execute(&self, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        self.session_command(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": args }),
        )
    }

    /// Runs `script` as the body of an async function in the page: it ends by
    /// calling its last argument (`arguments[arguments.length - 1]`) with the result.
    pub fn execute_async(&self, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        self.session_command(
            "POST",
            "/execute/async",
            &json!({ "script": script, "args": args }),
        )
    }

    /// Runs `script` every 100 ms until it returns something other than `null` or
    /// `false`, which it returns; fails after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self
                .execute(script, &[])
                .with_context(|| format!("waiting for {what}"))?;
            if !value.is_null() && value != json!(false) {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The browser's console messages since the last call (chromedriver hands each
    /// entry out once).
    pub fn console_logs(&self) -> anyhow::Result<Vec<LogEntry>> {
        let body = json!({ "type": "browser" });
        // `/se/log` is what current chromedriver serves; older ones only `/log`.
        let value = match self.session_command("POST", "/se/log", &body) {
            Ok(v) => v,
            Err(e) if format!("{e:#}").contains("unknown command") => {
                self.session_command("POST", "/log", &body)?
            }
            Err(e) => return Err(e),
        };
        let entries = value
            .as_array()
            .ok_or_else(|| anyhow!("browser log: not a list: {value}"))?;
        Ok(entries
            .iter()
            .map(|e| LogEntry {
                level: e["level"].as_str().unwrap_or("").to_string(),
                source: e["source"].as_str().unwrap_or("").to_string(),
                message: e["message"].as_str().unwrap_or("").to_string(),
            })
            .collect())
    }

    /// A PNG of the window's viewport.
    pub fn screenshot_png(&self) -> anyhow::Result<Vec<u8>> {
        let value = self.session_command("GET", "/screenshot", &Value::Null)?;
        let text = value
            .as_str()
            .ok_or_else(|| anyhow!("screenshot: not a string: {value}"))?;
        let png = base64_decode(text).context("screenshot")?;
        if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
            bail!("screenshot: not a PNG ({} bytes)", png.len());
        }
        Ok(png)
    }

    /// Makes the window as tall as the page (keeping its width), so that a
    /// screenshot shows all of it and nothing below.
    pub fn fit_window_to_page(&self) -> anyhow::Result<()> {
        let size = self.execute(
            "return [window.outerWidth, window.outerHeight - window.innerHeight \
             + Math.ceil(document.body.getBoundingClientRect().bottom + window.scrollY)];",
            &[],
        )?;
        let (width, height) = (size[0].as_u64(), size[1].as_u64());
        let (Some(width), Some(height)) = (width, height) else {
            bail!("window size: not two numbers: {size}");
        };
        self.session_command(
            "POST",
            "/window/rect",
            &json!({ "width": width, "height": height }),
        )
        .map(drop)
    }

    fn session_command(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.command(method, &format!("/session/{}{path}", self.session), body)
    }

    /// One WebDriver command; returns its `value`, or an error that names the
    /// command, the HTTP status and WebDriver's error and message.
    fn command(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        let body = (!body.is_null()).then_some(body);
        let (code, mut reply) = http(self.port, method, path, body, COMMAND)
            .with_context(|| format!("WebDriver {method} {path}"))?;
        let value = reply["value"].take();
        if code != 200 || value.get("error").is_some() {
            bail!(
                "WebDriver {method} {path}: HTTP {code}: {}: {}",
                value["error"].as_str().unwrap_or("no error code"),
                value["message"].as_str().unwrap_or("no message"),
            );
        }
        Ok(value)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Deleting the session ends Chromium; killing chromedriver alone would
        // leave it running.
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = http(self.port, "DELETE", &path, None, Duration::from_secs(10));
        }
        // `self.driver` is killed when it is dropped, right after this.
    }
}

/// One HTTP/1.1 request with a JSON body to `127.0.0.1:port`; returns the status
/// code and the JSON reply.
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> anyhow::Result<(u16, Value)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("send {method} {path} to {addr}"))?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .with_context(|| format!("read the reply to {method} {path}"))?;
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("{method} {path}: bad status line {status_line:?}"))?;
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut bytes = Vec::new();
    match length {
        Some(n) => {
            bytes.resize(n, 0);
            reader.read_exact(&mut bytes)?;
        }
        None => {
            reader.read_to_end(&mut bytes)?;
        }
    }
    let reply = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{method} {path}: HTTP {code} with a body that is not JSON: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        )
    })?;
    Ok((code, reply))
}

/// Standard base64 (with padding) to bytes: how WebDriver sends screenshots.
fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in text.bytes().enumerate() {
        let six = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' => continue,
            _ => bail!("byte {i} is not base64: {:?}", c as char),
        };
        acc = (acc << 6) | u32::from(six);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{base64_decode, Browser, CHROMIUM};
    use std::path::Path;

    #[test]
    fn a_missing_chromedriver_fails_with_the_packages_to_install() {
        let missing = Path::new("no-such-folder/chromedriver");
        let err = Browser::start_with(missing, Path::new(CHROMIUM))
            .expect_err("no browser without a driver");
        let text = format!("{err:#}");
        assert!(
            text.contains("no-such-folder/chromedriver")
                && text.contains("`chromium chromium-driver`"),
            "{text}"
        );
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("/+8=").unwrap(), [0xff, 0xef]);
        assert!(base64_decode("TW*u").is_err());
    }
}
