//! A real SMTP server (mailin-embedded) in the test process. Mails are kept by recipient;
//! tests use unique addresses so that they can share one server. A test can make the server
//! refuse a recipient at `RCPT TO`, for good (`550 5.1.1`) or for now (`451 4.7.1`).

use mail_parser::MessageParser;
use mailin_embedded::{Handler, Response, Server, response};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct CapturedMail {
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

impl CapturedMail {
    fn parsed(&self) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(&self.raw)
            .expect("unparseable mail")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .expect("no text part")
            .into_owned()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .expect("no html part")
            .into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().header_raw(name).map(|v| v.trim().to_owned())
    }

    pub fn message_id(&self) -> String {
        self.parsed().message_id().unwrap_or_default().to_owned()
    }

    /// Every http(s) link in the text part.
    pub fn links(&self) -> Vec<String> {
        self.text()
            .split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(str::to_owned)
            .collect()
    }

    /// The path (and token) of the first link containing `marker`, e.g. "/confirm/".
    pub fn link_path(&self, marker: &str) -> String {
        let link = self
            .links()
            .into_iter()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no {marker} link in mail: {}", self.text()));
        let url = url::Url::parse(&link).unwrap();
        url.path().to_owned()
    }
}

/// How the server answers `RCPT TO` for an address a test chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// `550 5.1.1`: no such mailbox (a permanent failure).
    Permanent,
    /// `451 4.7.1`: try again later (a temporary failure, e.g. greylisting).
    Temporary,
}

type Refusals = Arc<Mutex<HashMap<String, Refusal>>>;

fn normalised(address: &str) -> String {
    address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

#[derive(Clone)]
struct Capture {
    inbox: Arc<Mutex<Vec<CapturedMail>>>,
    refusals: Refusals,
    to: Vec<String>,
    buffer: Vec<u8>,
}

impl Handler for Capture {
    fn rcpt(&mut self, to: &str) -> Response {
        let address = normalised(to);
        // Like real servers, the reply quotes the address: restdose must not log it.
        match self.refusals.lock().unwrap().get(&address) {
            Some(Refusal::Permanent) => Response::custom(
                550,
                format!("5.1.1 <{address}>: Recipient address rejected: User unknown"),
            ),
            Some(Refusal::Temporary) => Response::custom(
                451,
                format!("4.7.1 <{address}>: Recipient address rejected: Greylisted"),
            ),
            None => response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.buffer.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.buffer.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = CapturedMail {
            to: std::mem::take(&mut self.to),
            raw: std::mem::take(&mut self.buffer),
        };
        self.inbox.lock().unwrap().push(mail);
        response::OK
    }
}

pub struct TestSmtp {
    port: u16,
    inbox: Arc<Mutex<Vec<CapturedMail>>>,
    refusals: Refusals,
}

impl TestSmtp {
    /// One server per test binary, started on first use on a detached thread (`serve` never
    /// returns).
    pub fn global() -> &'static TestSmtp {
        static SERVER: OnceLock<TestSmtp> = OnceLock::new();
        SERVER.get_or_init(|| TestSmtp::start(TcpListener::bind("127.0.0.1:0").unwrap()))
    }

    /// A server of its own on `listener` (e.g. one that comes up after an outage).
    pub fn start(listener: TcpListener) -> TestSmtp {
        {
            let port = listener.local_addr().unwrap().port();
            let inbox = Arc::new(Mutex::new(Vec::new()));
            let refusals = Refusals::default();
            let handler = Capture {
                inbox: inbox.clone(),
                refusals: refusals.clone(),
                to: Vec::new(),
                buffer: Vec::new(),
            };
            std::thread::spawn(move || {
                let mut server = Server::new(handler);
                server
                    .with_name("test-smtp")
                    // One thread per session, and lettre keeps its pooled sessions open
                    // (idle up to 60 s): two processes with 4 each took all of 8 threads, and a
                    // third session waited a minute for its greeting (a flaky cluster test).
                    .with_num_threads(64)
                    .with_tcp_listener(listener);
                server.serve().expect("test SMTP server stopped");
            });
            TestSmtp {
                port,
                inbox,
                refusals,
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on `RCPT TO:<address>` is answered `550 5.1.1 <address>: Recipient address
    /// rejected: User unknown` (refused for good).
    pub fn refuse(&self, address: &str) {
        self.refusals
            .lock()
            .unwrap()
            .insert(normalised(address), Refusal::Permanent);
    }

    /// From now on `RCPT TO:<address>` is answered `451 4.7.1 … Greylisted` (try again later).
    pub fn defer(&self, address: &str) {
        self.refusals
            .lock()
            .unwrap()
            .insert(normalised(address), Refusal::Temporary);
    }

    /// `address` is accepted again.
    pub fn accept(&self, address: &str) {
        self.refusals.lock().unwrap().remove(&normalised(address));
    }

    pub fn mails_for(&self, address: &str) -> Vec<CapturedMail> {
        let wanted = address.to_ascii_lowercase();
        self.inbox
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to.iter().any(|t| t.to_ascii_lowercase() == wanted))
            .cloned()
            .collect()
    }

    pub fn count_for(&self, address: &str) -> usize {
        self.mails_for(address).len()
    }

    /// Waits up to 10 s for a mail to `address` that `matches`; returns the newest such mail.
    pub async fn wait_for_matching(
        &self,
        address: &str,
        matches: impl Fn(&CapturedMail) -> bool,
    ) -> CapturedMail {
        for _ in 0..500 {
            if let Some(mail) = self
                .mails_for(address)
                .into_iter()
                .rev()
                .find(|m| matches(m))
            {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no matching mail for a test address (got {})",
            self.count_for(address)
        );
    }

    /// Waits up to 10 s until `address` has at least `count` mails; returns them all.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<CapturedMail> {
        for _ in 0..500 {
            let mails = self.mails_for(address);
            if mails.len() >= count {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "expected {count} mail(s) for a test address, got {}",
            self.count_for(address)
        );
    }
}
