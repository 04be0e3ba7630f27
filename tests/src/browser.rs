//! A real browser for the end-to-end suite (tests/tests/integration/browser.rs): Debian's headless Chromium
//! driven through chromedriver (WebDriver, fantoccini), with axe-core injected into every page.
//!
//! What it needs is installed by `scripts/test` (scripts/lib/browser.sh), which exports
//! `RESTDOSE_TEST_CHROMIUM`, `RESTDOSE_TEST_CHROMEDRIVER` and `RESTDOSE_TEST_AXE_JS`. When a
//! piece is missing the test FAILS with a message saying so; only with
//! `RESTDOSE_TEST_BROWSER_OPTIONAL=1` (for a quick `cargo test` outside scripts/test) it is
//! skipped instead.
//!
//! Screenshots of every checked page go to `target/screens/` (360 px and 1280 px wide, full page
//! height); with `RESTDOSE_TEST_UPDATE_SCREENS=1` to `docs/screens/` instead.

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use restdose_domain::Lang;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Narrow phone and desktop widths of every screenshot.
pub const WIDTHS: [u32; 2] = [360, 1280];

/// The tools the suite needs, found from the environment (or Debian's default paths).
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    pub axe_js: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

impl Tools {
    /// The tools, or `None` when one is missing and `RESTDOSE_TEST_BROWSER_OPTIONAL=1` allows
    /// skipping. Panics (fails the test) when one is missing otherwise.
    pub fn find() -> Option<Tools> {
        let path = |var: &str, default: PathBuf| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or(default)
        };
        let tools = Tools {
            chromium: path("RESTDOSE_TEST_CHROMIUM", "/usr/bin/chromium".into()),
            chromedriver: path("RESTDOSE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver".into()),
            axe_js: path(
                "RESTDOSE_TEST_AXE_JS",
                workspace_root().join("tests/browser/node_modules/axe-core/axe.min.js"),
            ),
        };
        let missing: Vec<String> = [
            ("chromium", &tools.chromium),
            ("chromedriver", &tools.chromedriver),
            ("axe-core", &tools.axe_js),
        ]
        .iter()
        .filter(|(_, p)| !p.is_file())
        .map(|(name, p)| format!("{name} ({})", p.display()))
        .collect();
        if missing.is_empty() {
            return Some(tools);
        }
        let message = format!(
            "the browser suite needs {}; run it through scripts/test, which installs them \
             (scripts/lib/browser.sh), or set RESTDOSE_TEST_BROWSER_OPTIONAL=1 to skip it",
            missing.join(", ")
        );
        if std::env::var("RESTDOSE_TEST_BROWSER_OPTIONAL").as_deref() == Ok("1") {
            eprintln!("SKIPPED: {message}");
            None
        } else {
            panic!("{message}");
        }
    }
}

/// A chromedriver process on a free port; killed (with the browsers it started) when dropped,
/// also when the test panics.
pub struct Driver {
    child: Child,
    pub url: String,
    tools: Tools,
    profiles: Vec<tempfile::TempDir>,
}

impl Driver {
    pub async fn start(tools: Tools) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        use std::os::unix::process::CommandExt;
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can end chromedriver and every Chromium it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.chromedriver.display()));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver {
            child,
            url,
            tools,
            profiles: Vec::new(),
        }
    }

    /// A new browser session with a fresh profile; `javascript: false` disables scripts for
    /// every page (Chromium content setting).
    pub async fn session(&mut self, javascript: bool) -> Client {
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            // Without these Chromium phones home, which this closed network refuses.
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            "--lang=de-DE".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".to_owned());
        }
        let mut prefs = json!({ "intl": { "accept_languages": "de-DE,de" } });
        if !javascript {
            prefs["profile"] = json!({ "managed_default_content_settings": { "javascript": 2 } });
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": self.tools.chromium.display().to_string(),
                "args": args,
                "prefs": prefs,
            }),
        );
        self.profiles.push(profile);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("no Chromium session through chromedriver: {e}"))
    }

    pub fn axe_source(&self) -> String {
        std::fs::read_to_string(&self.tools.axe_js).unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go on this run.
pub fn screens_dir() -> PathBuf {
    let dir = if std::env::var("RESTDOSE_TEST_UPDATE_SCREENS").as_deref() == Ok("1") {
        workspace_root().join("docs/screens")
    } else {
        workspace_root().join("target/screens")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// With `RESTDOSE_TEST_UPDATE_SCREENS=1`: writes docs/screens.md, one line per checked page (its
/// screenshot name and title) with both screenshots. Without it, nothing.
pub fn write_screens_index(pages: &[(String, String, String)]) {
    if std::env::var("RESTDOSE_TEST_UPDATE_SCREENS").as_deref() != Ok("1") {
        return;
    }
    let mut out = String::from(
        "# Screens\n\n\
         Every page the browser suite (`tests/tests/integration/browser.rs`) visits, as Chromium shows it at\n\
         360 px (a small phone) and 1280 px, full page height. Written by the suite itself:\n\
         `RESTDOSE_TEST_UPDATE_SCREENS=1 scripts/test browser` (without the variable the\n\
         screenshots go to `target/screens/`). Every page here passed axe-core (WCAG 2.1 AA),\n\
         the 18 px and 200 % zoom checks; see [accessibility.md](accessibility.md).\n\n\
         | page | title | 360 px | 1280 px |\n|---|---|---|---|\n",
    );
    for (name, _, title) in pages {
        let title = title.replace('|', "\\|");
        out.push_str(&format!(
            "| `{name}` | {title} | [![{name} at 360 px](screens/{name}-360.png)](screens/{name}-360.png) | [![{name} at 1280 px](screens/{name}-1280.png)](screens/{name}-1280.png) |\n"
        ));
    }
    std::fs::write(workspace_root().join("docs/screens.md"), out).unwrap();
}

/// One browser tab with the checks every page goes through.
pub struct Tab {
    pub client: Client,
    pub base: String,
    axe: Option<String>,
    /// Every page checked so far: (screenshot name, path, title).
    pub visited: Vec<(String, String, String)>,
}

impl Tab {
    pub fn new(client: Client, base: &str, axe: Option<String>) -> Tab {
        Tab {
            client,
            base: base.to_owned(),
            axe,
            visited: Vec::new(),
        }
    }

    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") || path.starts_with("data:") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.goto(&url).await.unwrap();
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// The `lang` of the page's `<html>`.
    pub async fn html_lang(&self) -> String {
        self.client
            .find(Locator::Css("html"))
            .await
            .unwrap()
            .attr("lang")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub async fn text_of(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.base))
            .text()
            .await
            .unwrap()
    }

    /// The form control labelled `label` (exact visible text of a `<label for>`): proves the
    /// label exists and points at the field.
    pub async fn field(&self, label: &str) -> fantoccini::elements::Element {
        let xpath = format!("//label[normalize-space()={}]", xpath_literal(label));
        let label_el = self
            .client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no label {label:?} on this page: {e}"));
        let id = label_el
            .attr("for")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("label {label:?} has no `for`"));
        self.client
            .find(Locator::Id(&id))
            .await
            .unwrap_or_else(|e| panic!("label {label:?} points at missing #{id}: {e}"))
    }

    /// Replaces the value of the field labelled `label` by typing `value`.
    pub async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks the button whose visible text is `text` (the first one).
    pub async fn click_button(&self, text: &str) {
        let xpath = format!("//button[normalize-space()={}]", xpath_literal(text));
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {text:?} on this page: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Follows the link whose visible text is `text`.
    pub async fn click_link(&self, text: &str) {
        self.client
            .find(Locator::XPath(&format!(
                "//a[normalize-space()={}]",
                xpath_literal(text)
            )))
            .await
            .unwrap_or_else(|e| panic!("no link {text:?} on this page: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Presses keys through WebDriver key actions (no element targeted: they go wherever the
    /// focus is, as a person's keyboard would).
    pub async fn keys(&self, keys: &[char]) {
        let mut actions = KeyActions::new("keyboard".to_owned());
        for &k in keys {
            actions = actions
                .then(KeyAction::Down { value: k })
                .then(KeyAction::Up { value: k });
        }
        self.client.perform_actions(actions).await.unwrap();
    }

    pub async fn press(&self, key: Key) {
        self.keys(&[key.into()]).await;
    }

    pub async fn type_text(&self, text: &str) {
        let chars: Vec<char> = text.chars().collect();
        self.keys(&chars).await;
    }

    /// The `id` (or, without one, the text) of the focused element.
    pub async fn focused(&self) -> String {
        let value = self
            .client
            .execute(
                "const e = document.activeElement; return e ? (e.id || e.textContent.trim()) : '';",
                vec![],
            )
            .await
            .unwrap();
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Presses Tab until the element with id or text `target` has the focus (at most 30 times).
    pub async fn tab_to(&self, target: &str) {
        for _ in 0..30 {
            self.press(Key::Tab).await;
            if self.focused().await == target {
                return;
            }
        }
        panic!("Tab never reached {target:?}");
    }

    /// Every check a page must pass, then its screenshots: no script, axe-core without serious
    /// or critical violations, body text ≥ 18 px, every field error tied to its field, no
    /// horizontal scrolling at 360 px even at 200 % zoom.
    pub async fn check(&mut self, name: &str) {
        let path = self.path().await;
        let source = self.source().await;
        assert!(
            !source.contains("<script"),
            "{name}: pages must work without JavaScript and carry none"
        );
        let lang = self.html_lang().await;
        assert!(
            lang == "de" || lang == "en",
            "{name}: <html lang> is {lang:?}"
        );
        let title = self.client.title().await.unwrap();
        assert!(!title.trim().is_empty(), "{name}: no <title>");
        self.check_errors_tied(name).await;
        let font = self
            .client
            .execute(
                "return parseFloat(getComputedStyle(document.body).fontSize);",
                vec![],
            )
            .await
            .unwrap()
            .as_f64()
            .unwrap();
        assert!(font >= 18.0, "{name}: body font is {font} px, below 18 px");
        if let Some(axe) = &self.axe {
            run_axe(&self.client, axe, name).await;
        }
        for width in WIDTHS {
            self.resize(width, 900).await;
            self.screenshot(&format!("{name}-{width}")).await;
        }
        // 200 % zoom on a 360 px phone = a 180 CSS px wide viewport (zooming divides the CSS
        // width): nothing may scroll sideways.
        self.resize(180, 900).await;
        let overflow = self
            .client
            .execute(
                "const d = document.documentElement;
                 const wide = [...document.body.querySelectorAll('*')]
                   .filter(e => e.getBoundingClientRect().right > d.clientWidth + 1 || e.scrollWidth > e.clientWidth + 1)
                   .map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''));
                 return [d.scrollWidth, d.clientWidth, window.innerWidth, wide.slice(0, 10)];",
                vec![],
            )
            .await
            .unwrap();
        let (scroll, client, inner) = (
            overflow[0].as_f64().unwrap(),
            overflow[1].as_f64().unwrap(),
            overflow[2].as_f64().unwrap(),
        );
        assert!(
            inner <= 181.0,
            "{name}: the browser would not make the viewport 180 px wide ({inner})"
        );
        assert!(
            scroll <= client + 1.0,
            "{name}: at 360 px and 200 % zoom the page scrolls sideways ({scroll} > {client}): {}",
            overflow[3]
        );
        self.resize(1280, 900).await;
        self.visited.push((name.to_owned(), path, title));
    }

    /// Every `aria-invalid` field names an existing, non-empty error message in
    /// `aria-describedby`, and every `.error` message is referenced by a field.
    async fn check_errors_tied(&self, name: &str) {
        let result = self
            .client
            .execute(
                "const problems = [];
                 for (const f of document.querySelectorAll('[aria-invalid=true]')) {
                   const ids = (f.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean);
                   const errs = ids.map(i => document.getElementById(i)).filter(e => e && e.classList.contains('error') && e.textContent.trim());
                   if (!errs.length) problems.push('field #' + f.id + ' is invalid without a described error');
                 }
                 for (const e of document.querySelectorAll('.error')) {
                   if (!e.id || !document.querySelector('[aria-describedby~=\"' + e.id + '\"]')) problems.push('error ' + (e.id || e.textContent) + ' is tied to no field');
                 }
                 return problems;",
                vec![],
            )
            .await
            .unwrap();
        let problems = result.as_array().unwrap();
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }

    async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// A full-height screenshot at the current width.
    async fn screenshot(&self, file: &str) {
        let (width, _) = self.client.get_window_size().await.unwrap();
        let height = self
            .client
            .execute(
                "return Math.ceil(Math.max(document.documentElement.scrollHeight, document.body.scrollHeight));",
                vec![],
            )
            .await
            .unwrap()
            .as_f64()
            .unwrap() as u32;
        // The window's outer height includes no browser chrome in headless mode, but be exact.
        let chrome = self
            .client
            .execute("return window.outerHeight - window.innerHeight;", vec![])
            .await
            .unwrap()
            .as_f64()
            .unwrap_or(0.0)
            .max(0.0) as u32;
        self.resize(width as u32, (height + chrome).clamp(400, 8000))
            .await;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(screens_dir().join(format!("{file}.png")), png).unwrap();
    }

    /// Runs JavaScript; `Err` when the browser refuses (e.g. scripts disabled).
    pub async fn try_execute(&self, script: &str) -> Result<Value, String> {
        self.client
            .execute(script, vec![])
            .await
            .map_err(|e| e.to_string())
    }
}

/// axe-core with the WCAG 2.0/2.1 A and AA rules (colour contrast included); fails listing every
/// serious or critical violation with its nodes.
async fn run_axe(client: &Client, axe: &str, name: &str) {
    client.execute(axe, vec![]).await.unwrap();
    let result = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] })
               .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')) }))))
               .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));",
            vec![],
        )
        .await
        .unwrap();
    let serious: Vec<&Value> = result
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(
        serious.is_empty(),
        "{name}: axe-core found serious/critical violations: {}",
        serde_json::to_string_pretty(&serious).unwrap()
    );
}

/// The message of `key` in `lang`, as the page shows it.
pub fn msg(lang: Lang, key: &str) -> &'static str {
    restdose_web::i18n::lookup(lang, key).unwrap_or_else(|| panic!("no message {key}"))
}

fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// Waits until `check` holds for the page (after a click the next page may still be loading).
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
