//! A certificate authority of the test's own, for servers that must speak
//! TLS in tests (SMTP with STARTTLS, NATS): a self-signed CA and leaf
//! certificates it issues, written as PEM files.

use std::path::{Path, PathBuf};

/// A CA made for one test.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate and its key, as files, with the CA's certificate.
pub struct TlsFiles {
    /// The CA certificate (what clients trust).
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA called `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        Ok(TestCa { issuer: rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate()?)? })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues a certificate for `names` (DNS names or IP addresses) and
    /// writes it, its key and the CA certificate into `dir` as
    /// `<stem>.crt`, `<stem>.key` and `<stem>-ca.crt`.
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> anyhow::Result<TlsFiles> {
        let key = rcgen::KeyPair::generate()?;
        let cert = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?
            .signed_by(&key, &self.issuer)?;
        let files = TlsFiles {
            ca: dir.join(format!("{stem}-ca.crt")),
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.ca, self.pem())?;
        std::fs::write(&files.cert, cert.pem())?;
        std::fs::write(&files.key, key.serialize_pem())?;
        Ok(files)
    }
}
