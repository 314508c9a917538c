//! Real headless Chromium driven through chromedriver.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A chromedriver process and a browser session on it; both end when dropped. chromedriver
/// leads its own process group, which the Chromium it starts joins, so dropping (also in a
/// panicking test) kills the whole group.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile_dir: crate::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Browser {
    pub async fn start() -> Browser {
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {chromedriver} ({e}); ./scripts/test installs it")
            });
        let profile_dir = crate::TempDir::new();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1366,900", "--disable-crash-reporter", "--disable-breakpad",
                         format!("--user-data-dir={}", profile_dir.0.display())]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..150 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        profile_dir,
                    };
                }
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("chromedriver did not start a session: {last_error:?}");
    }

    /// Waits for an element matching the CSS selector.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Waits until the page's text contains `text`.
    pub async fn wait_for_text(&self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            // While the browser moves to another page there may be no body for a moment.
            let body = match self.client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if body.contains(text) {
                return body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("page never showed {text:?}; it shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into an input, replacing what it held.
    pub async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.expect("clear");
        input.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Runs JavaScript in the page and answers its result.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits (up to 20 s) until `script` answers `true`.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.js(script).await != serde_json::Value::Bool(true) {
            if tokio::time::Instant::now() > deadline {
                panic!("never happened: {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs axe-core (the file `AXE_JS` names; `./scripts/test` installs it from npm) on the
    /// page and answers its serious and critical violations, one line each.
    pub async fn accessibility_problems(&self) -> Vec<String> {
        let path = std::env::var("AXE_JS").unwrap_or_else(|_| {
            format!(
                "{}/.cache/cinelog-node/node_modules/axe-core/axe.min.js",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let axe = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("cannot read axe-core at {path} ({e}); ./scripts/test installs it")
        });
        self.client
            .execute(&format!("{axe}\nreturn true;"), vec![])
            .await
            .expect("load axe-core");
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => v.id + ': ' + v.help + ' (' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', ') + ')')))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("run axe-core");
        serde_json::from_value(found).unwrap_or_default()
    }

    /// Saves a screenshot as `name` in the folder `CINELOG_SCREENSHOTS` names, if it names one.
    pub async fn shot(&self, name: &str) {
        let Ok(dir) = std::env::var("CINELOG_SCREENSHOTS") else {
            return;
        };
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(std::path::Path::new(&dir).join(name), png);
        }
    }

    /// Opens the app at `url` and signs in from its sign-in form.
    pub async fn sign_in(&self, url: &str, email: &str, password: &str) {
        self.client.goto(url).await.expect("open page");
        self.wait_for_text("Sign in").await;
        self.type_into("#email", email).await;
        self.type_into("#password", password).await;
        self.click("#submit-btn").await;
    }

    /// Picks `profile` in the picker and waits for its home (its search field).
    pub async fn pick_profile(&self, profile: &str) {
        self.click(&format!("[data-profile='{profile}']")).await;
        self.find("#search").await;
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Ends chromedriver and every Chromium process it started, even when a test fails
    /// half-way: the process group, then anything still naming this browser's profile folder.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.profile_dir.0.display().to_string()])
            .status();
    }
}
