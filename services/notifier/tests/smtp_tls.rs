//! Email over STARTTLS to a real SMTP server (aiosmtpd with a certificate
//! from a private CA that only the notifier's `--smtp-ca-cert` trusts), and
//! the refusal to send in the clear when the server offers no STARTTLS.

use clap::Parser;
use glucochain_notifier::NotifierConfig;
use glucochain_notifier::channels::{Mailer, SendError};
use glucochain_notifier::message::Email;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: NotifierConfig,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn smtp_server(port: u16, maildir: &std::path::Path, tls: Option<(&std::path::Path, &std::path::Path)>) -> Server {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"]);
    if let Some((cert, key)) = tls {
        cmd.args(["--tlscert", cert.to_str().unwrap(), "--tlskey", key.to_str().unwrap()]);
    }
    cmd.arg(maildir).stdout(Stdio::null()).stderr(Stdio::null());
    let server = Server(cmd.spawn().expect("python3 -m aiosmtpd (scripts/setup.sh installs it)"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "SMTP server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn mailer(port: u16, tls: &str, ca: &std::path::Path) -> Mailer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = port.to_string();
    let cli = Cli::parse_from([
        "notifier",
        "--genesis",
        "unused.json",
        "--key",
        "unused.pem",
        "--kek-file",
        "unused.kek",
        "--smtp-host",
        "localhost",
        "--smtp-port",
        &port,
        "--smtp-tls",
        tls,
        "--smtp-ca-cert",
        ca.to_str().unwrap(),
        "--smtp-timeout-secs",
        "5",
    ]);
    Mailer::from_config(&cli.config).unwrap().unwrap()
}

fn email() -> Email {
    Email {
        subject: "Low glucose - Sam".into(),
        text: "Glucose: 62 mg/dL".into(),
        html: "<p>Glucose: 62 mg/dL</p>".into(),
    }
}

#[tokio::test]
async fn email_goes_over_starttls_to_a_server_the_configured_ca_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let ca = glucochain_testkit::tls::TestCa::new("Mail test CA").unwrap();
    let files = ca.issue(dir.path(), "smtp", &["localhost"]).unwrap();
    let (cert, key, ca_path) = (files.cert, files.key, files.ca);

    let port = glucochain_testkit::free_port();
    let maildir = dir.path().join("mail");
    let _server = smtp_server(port, &maildir, Some((&cert, &key)));
    mailer(port, "starttls", &ca_path).send("parent@example.org", &email(), "d-tls-1").await.unwrap();
    let stored: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].contains("Subject: Low glucose - Sam"), "{}", stored[0]);
    assert!(stored[0].contains("<d-tls-1@glucochain>"));

    // A server without STARTTLS: the mailer refuses to send in the clear.
    let plain_port = glucochain_testkit::free_port();
    let plain_dir = dir.path().join("plain");
    let _plain = smtp_server(plain_port, &plain_dir, None);
    let refused = mailer(plain_port, "starttls", &ca_path).send("parent@example.org", &email(), "d-tls-2").await;
    assert!(matches!(refused, Err(SendError::Temporary(_) | SendError::Permanent(_))), "{refused:?}");
    let none = std::fs::read_dir(plain_dir.join("new")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(none, 0, "nothing sent without TLS");
}
