//! The channels: email over SMTP (lettre; STARTTLS, implicit TLS or plain
//! for a local sink; AUTH; timeouts), SMS through an HTTP gateway
//! (Twilio-style form POST), and webhooks (JSON POST). Each send says
//! whether a failure is worth retrying.

use crate::config::{NotifierConfig, SmtpTls};
use crate::message::Email;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying (server down, timeout, 4xx SMTP, 5xx HTTP, 429).
    #[error("temporary: {0}")]
    Temporary(String),
    /// Not worth retrying (bad address, rejected credentials, 4xx HTTP).
    #[error("permanent: {0}")]
    Permanent(String),
    /// The channel is not configured.
    #[error("channel not configured: {0}")]
    NotConfigured(&'static str),
}

/// Sends email.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer from the configuration (no connection is made yet).
    pub fn from_config(cfg: &NotifierConfig) -> anyhow::Result<Option<Self>> {
        let Some(host) = &cfg.smtp_host else { return Ok(None) };
        let from: Mailbox = cfg.mail_from.parse().map_err(|e| anyhow::anyhow!("--mail-from: {e}"))?;
        let tls_params = || -> anyhow::Result<TlsParameters> {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(ca) = &cfg.smtp_ca_cert {
                let pem = std::fs::read(ca).map_err(|e| anyhow::anyhow!("--smtp-ca-cert {}: {e}", ca.display()))?;
                b = b.add_root_certificate(Certificate::from_pem(&pem)?);
            }
            Ok(b.build_rustls()?)
        };
        let tls = match cfg.smtp_tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_params()?),
            SmtpTls::Tls => Tls::Wrapper(tls_params()?),
        };
        let port = cfg.smtp_port.unwrap_or(match cfg.smtp_tls {
            SmtpTls::Tls => 465,
            SmtpTls::Starttls => 587,
            SmtpTls::None => 25,
        });
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(cfg.smtp_timeout_secs)));
        if let Some(user) = &cfg.smtp_username {
            let password =
                crate::config::secret(&cfg.smtp_password_file, "GLUCOCHAIN_SMTP_PASSWORD")?.ok_or_else(|| {
                    anyhow::anyhow!("--smtp-username needs --smtp-password-file or GLUCOCHAIN_SMTP_PASSWORD")
                })?;
            b = b.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Some(Mailer { transport: b.build(), from }))
    }

    /// Sends `email` to `to`, with `message_id` as its Message-ID (so a
    /// duplicate after a crash is recognisable).
    pub async fn send(&self, to: &str, email: &Email, message_id: &str) -> Result<(), SendError> {
        let to: Mailbox = to.parse().map_err(|e| SendError::Permanent(format!("address: {e}")))?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!("<{message_id}@glucochain>")))
            .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
            .map_err(|e| SendError::Permanent(format!("message: {e}")))?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Temporary(format!("SMTP: {e}"))),
        }
    }

    /// Whether the SMTP server answers (for the `glucochain_notify_smtp_up` gauge).
    pub async fn probe(&self) -> bool {
        self.transport.test_connection().await.unwrap_or(false)
    }
}

/// Sends SMS through an HTTP gateway and calls webhooks.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    webhooks: Webhooks,
    sms_url: Option<String>,
    sms_from: String,
    sms_account: Option<String>,
    sms_token: Option<String>,
}

fn http_error(e: reqwest::Error) -> SendError {
    SendError::Temporary(format!("HTTP: {}", e.without_url()))
}

fn by_status(status: reqwest::StatusCode, what: &str) -> Result<(), SendError> {
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(SendError::Temporary(format!("{what} answered {status}")))
    } else {
        Err(SendError::Permanent(format!("{what} answered {status}")))
    }
}

impl Http {
    /// The HTTP channels from the configuration.
    pub fn from_config(cfg: &NotifierConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.http_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("glucochain-notifier")
            .build()?;
        Ok(Http {
            client,
            webhooks: Webhooks::new(Duration::from_secs(cfg.http_timeout_secs), false)?,
            sms_url: cfg.sms_url.clone(),
            sms_from: cfg.sms_from.clone(),
            sms_account: cfg.sms_account.clone(),
            sms_token: crate::config::secret(&cfg.sms_token_file, "GLUCOCHAIN_SMS_TOKEN")?,
        })
    }

    /// Sends an SMS: form-encoded `To`, `From`, `Body` to the gateway's
    /// Messages endpoint, with HTTP basic auth when an account is set.
    pub async fn sms(&self, to: &str, body: &str) -> Result<(), SendError> {
        let url = self.sms_url.as_ref().ok_or(SendError::NotConfigured("sms"))?;
        let mut req = self.client.post(url).form(&[("To", to), ("From", self.sms_from.as_str()), ("Body", body)]);
        if let Some(account) = &self.sms_account {
            req = req.basic_auth(account, self.sms_token.as_deref());
        }
        let resp = req.send().await.map_err(http_error)?;
        by_status(resp.status(), "SMS gateway")
    }

    /// Posts `body` as JSON to a webhook (see [`Webhooks`]).
    pub async fn webhook(&self, url: &str, body: &serde_json::Value) -> Result<(), SendError> {
        self.webhooks.post(url, body).await
    }
}

/// A send error as it may be stored and shown (the delivery's `last_error`,
/// which the alert page and `GET /v1/alerts/{id}` show to the care team):
/// the delivery's own address masked, and any other email address, phone
/// number or URL path a server put into its message masked too.
pub fn redact(error: &str, kind: glucochain_types::tx::ChannelKind, address: &str) -> String {
    use glucochain_types::tx::ChannelKind;
    let text = if address.is_empty() { error.to_string() } else { error.replace(address, &kind.mask(address)) };
    text.split(' ')
        .map(|w| {
            let core = w.trim_matches(|c: char| "<>()[]\"',;:".contains(c));
            let digits = core.chars().filter(char::is_ascii_digit).count();
            if core.contains('@') && !core.contains("***@") {
                w.replace(core, &ChannelKind::Email.mask(core))
            } else if digits >= 7 && core.trim_start_matches('+').chars().all(|c| c.is_ascii_digit()) {
                w.replace(core, &ChannelKind::Sms.mask(core))
            } else if core.starts_with("http://") || core.starts_with("https://") {
                w.replace(core, &ChannelKind::Webhook.mask(core))
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `ip` is an address on the public internet: not loopback,
/// private (RFC 1918, unique-local), link-local (cloud metadata lives at
/// 169.254.169.254), shared (100.64/10), unspecified, multicast, broadcast,
/// documentation or IPv4-mapped to any of those.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)
                || (seg[0] == 0x0064 && seg[1] == 0xff9b))
        }
    }
}

/// Resolves names for webhooks, keeping only public addresses: a care plan
/// cannot point a webhook at the notifier's own network (its database, NATS,
/// a cloud metadata service). The check is on the addresses connected to,
/// so a name that resolves to a private address is refused however it is
/// spelled.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| is_public(a.ip())).collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Calls webhooks: HTTPS only, no redirects followed, public addresses only.
#[derive(Clone)]
pub struct Webhooks {
    client: reqwest::Client,
    /// Tests only: loopback targets and plain HTTP allowed.
    local: bool,
}

impl Webhooks {
    /// A webhook client; `local` (tests only) lets it call loopback over HTTP.
    pub fn new(timeout: Duration, local: bool) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("glucochain-notifier");
        if !local {
            b = b.dns_resolver(std::sync::Arc::new(PublicOnly));
        }
        Ok(Webhooks { client: b.build()?, local })
    }

    /// Posts `body` as JSON to `url`. A redirect is a failure (never
    /// followed); a private or loopback target, or plain HTTP, is refused
    /// before anything is sent.
    pub async fn post(&self, url: &str, body: &serde_json::Value) -> Result<(), SendError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| SendError::Permanent(format!("webhook URL: {e}")))?;
        if parsed.scheme() != "https" && !self.local {
            return Err(SendError::Permanent("webhooks are HTTPS only".into()));
        }
        let host = parsed.host_str().ok_or_else(|| SendError::Permanent("webhook URL has no host".into()))?;
        let literal: Option<std::net::IpAddr> = host.trim_start_matches('[').trim_end_matches(']').parse().ok();
        if let Some(ip) = literal
            && !is_public(ip)
            && !self.local
        {
            return Err(SendError::Permanent("webhook target is not a public address".into()));
        }
        let resp = self.client.post(parsed).json(body).send().await.map_err(|e| {
            // The resolver's refusal comes wrapped in the connect error.
            let mut cause: Option<&dyn std::error::Error> = Some(&e);
            while let Some(c) = cause {
                if c.to_string().contains("has no public address") {
                    return SendError::Permanent("webhook target is not a public address".into());
                }
                cause = c.source();
            }
            http_error(e)
        })?;
        if resp.status().is_redirection() {
            return Err(SendError::Permanent(format!(
                "webhook answered {} (redirects are not followed)",
                resp.status()
            )));
        }
        by_status(resp.status(), "webhook")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_stored_errors_carry_no_full_address() {
        use glucochain_types::tx::ChannelKind;
        let e = "permanent: SMTP: 550 5.1.1 <sam.mother@example.org>: Recipient address rejected (cc bob@else.org)";
        let r = redact(e, ChannelKind::Email, "sam.mother@example.org");
        assert!(!r.contains("sam.mother@") && !r.contains("bob@"), "{r}");
        assert!(r.contains("s***@example.org") && r.contains("550 5.1.1"), "{r}");
        let r = redact("gateway: +447700900123 is not reachable", ChannelKind::Sms, "+447700900123");
        assert!(!r.contains("447700900123"), "{r}");
        let r = redact(
            "webhook answered 500 for https://hooks.example.org/secret/path",
            ChannelKind::Webhook,
            "https://hooks.example.org/secret/path",
        );
        assert!(!r.contains("secret"), "{r}");
        assert_eq!(redact("temporary: SMTP: timed out", ChannelKind::Email, "a@b.org"), "temporary: SMTP: timed out");
    }

    #[test]
    fn h4_only_public_addresses_are_webhook_targets() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn h4_webhooks_refuse_private_targets_and_plain_http_before_sending() {
        let w = Webhooks::new(Duration::from_secs(2), false).unwrap();
        let body = serde_json::json!({});
        for url in [
            "http://93.184.216.34/hook",
            "https://127.0.0.1:9/hook",
            "https://[::1]:9/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost:9/hook",
        ] {
            match w.post(url, &body).await {
                Err(SendError::Permanent(e)) => assert!(e.contains("HTTPS only") || e.contains("public"), "{url}: {e}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn h4_a_webhook_redirect_is_not_followed() {
        // A local server (allowed only in this test) that redirects to a second one.
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target_port = target.local_addr().unwrap().port();
        let hit = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h = hit.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = target.accept().await {
                h.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = hook.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = hook.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let r = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{target_port}/steal\r\ncontent-length: 0\r\n\r\n"
                );
                let _ = s.write_all(r.as_bytes()).await;
            }
        });
        let w = Webhooks::new(Duration::from_secs(5), true).unwrap();
        let e = w.post(&format!("http://127.0.0.1:{port}/hook"), &serde_json::json!({})).await.unwrap_err();
        assert!(matches!(&e, SendError::Permanent(m) if m.contains("307")), "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!hit.load(std::sync::atomic::Ordering::SeqCst), "the redirect was followed");
    }
}
