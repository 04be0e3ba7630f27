use restdose_crypto::SecretToken;
use url::Url;

/// Builds the absolute URLs that go into mails, from the configured public URL.
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
    host: String,
}

impl Links {
    pub fn new(public_url: &Url) -> Links {
        Links {
            base: public_url.as_str().trim_end_matches('/').to_owned(),
            host: public_url.host_str().unwrap_or("localhost").to_owned(),
        }
    }

    pub fn confirm(&self, token: &SecretToken) -> String {
        format!("{}/confirm/{}", self.base, token.expose())
    }

    pub fn manage(&self, token: &SecretToken) -> String {
        format!("{}/manage/{}", self.base, token.expose())
    }

    pub fn unsubscribe(&self, token: &SecretToken) -> String {
        format!("{}/unsubscribe/{}", self.base, token.expose())
    }

    /// An absolute URL for a path of the portal (`path` starts with `/`).
    pub fn portal(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The public host name (for Message-IDs and calendar UIDs).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A globally unique Message-ID under our own host name.
    pub fn message_id(&self, id: uuid::Uuid) -> String {
        format!("<{}@{}>", id.simple(), self.host)
    }
}
