//! A TCP proxy that can cut the network: a validator reaches NATS through it,
//! and a partition is the proxy dropping every connection and refusing new
//! ones until healed. From the validator's side this is what a real network
//! partition looks like (connections reset, reconnects failing).

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy to one upstream address.
pub struct Proxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free local port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (cut, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watching.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, upstream, watching.clone()));
            }
        });
        Ok(Proxy { port, cut, task })
    }

    /// The partition: every connection dropped, new ones refused.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    /// The partition heals: new connections are forwarded again.
    pub fn heal(&self) {
        let _ = self.cut.send(false);
    }

    /// Whether the proxy is cutting the network now.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|c| *c) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream) -> Option<Vec<u8>> {
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        match tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Some(buf.to_vec()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn forwards_then_cuts_live_and_new_connections_then_heals() {
        let proxy = Proxy::start(echo_server().await).await.unwrap();
        let mut live = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        assert_eq!(round_trip(&mut live).await.as_deref(), Some(&b"ping"[..]));
        proxy.cut();
        assert!(proxy.is_cut());
        assert_eq!(round_trip(&mut live).await, None, "a live connection is dropped");
        let mut fresh = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        assert_eq!(round_trip(&mut fresh).await, None, "a new connection is refused");
        proxy.heal();
        let mut healed = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        assert_eq!(round_trip(&mut healed).await.as_deref(), Some(&b"ping"[..]));
    }
}
