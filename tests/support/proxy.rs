//! A TCP proxy a test can cut and heal. Cut, it closes every connection it
//! carries and closes new ones as soon as they are accepted: to a client
//! that is a peer gone dead (connections reset, reconnects failing), while
//! the peer behind it keeps its state.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port and forwards to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, is_cut) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *is_cut.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(carry(client, target, is_cut.clone()));
            }
        });
        Proxy { port, cut, task }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection, until either side closes it or the proxy is cut.
async fn carry(mut client: TcpStream, target: u16, mut is_cut: watch::Receiver<bool>) {
    let connect = TcpStream::connect(("127.0.0.1", target));
    let Ok(Ok(mut server)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = is_cut.wait_for(|cut| *cut) => {}
    }
}
