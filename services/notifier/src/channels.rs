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
            .user_agent("glucochain-notifier")
            .build()?;
        Ok(Http {
            client,
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

    /// Posts `body` as JSON to a webhook.
    pub async fn webhook(&self, url: &str, body: &serde_json::Value) -> Result<(), SendError> {
        let resp = self.client.post(url).json(body).send().await.map_err(http_error)?;
        by_status(resp.status(), "webhook")
    }
}
