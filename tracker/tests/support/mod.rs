//! What the tracker's socket tests share: `tracker::serve` on a loopback
//! port 0, stopped on demand.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tracker::AppState;

/// `tracker::serve` on a real loopback socket, stopped by [`RealServer::stop`].
pub struct RealServer {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RealServer {
    pub async fn start(state: Arc<AppState>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tracker::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        RealServer { addr, stop, task }
    }

    /// Shuts the server down and checks it stops within five seconds.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}
