//! Revocations from Redis pub/sub, followed across reconnects, failovers and nodes.

use std::time::Duration;

use futures::StreamExt;
use redis::Client;
use tokio::sync::{broadcast, oneshot};

use super::link::Subscribe;
use super::Revocation;
use crate::ticket::StoreKey;

/// Pause between subscription attempts while Redis is away.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(250);

/// Where the next attempt goes, and whether the master moved meanwhile.
struct Target {
    source: Subscribe,
    next: usize,
}

impl Target {
    fn client(&mut self) -> Option<Client> {
        match &mut self.source {
            Subscribe::Master(rx) => rx.borrow_and_update().clone(),
            Subscribe::AnyOf(nodes) => {
                let c = nodes.get(self.next % nodes.len().max(1)).cloned();
                self.next = self.next.wrapping_add(1);
                c
            }
        }
    }

    /// Resolves when the subscription must move (the master changed); never otherwise.
    async fn moved(&mut self) {
        match &mut self.source {
            Subscribe::Master(rx) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            Subscribe::AnyOf(_) => std::future::pending::<()>().await,
        }
    }
}

/// Forwards revocations published on `channel`, resubscribing after any loss (and when
/// the master moves); after a gap it sends [`Revocation::All`] since messages published
/// meanwhile are lost. `first` is told when the first subscription stands.
pub(super) async fn follow(
    source: Subscribe,
    channel: String,
    tx: broadcast::Sender<Revocation>,
    timeout: Duration,
    first: oneshot::Sender<()>,
) {
    let mut first = Some(first);
    let mut target = Target { source, next: 0 };
    loop {
        let Some(client) = target.client() else {
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
            continue;
        };
        // Bounded: a connection made while Redis restarts can otherwise hang forever.
        match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
            Ok(Ok(mut pubsub)) => match tokio::time::timeout(timeout, pubsub.subscribe(&channel)).await {
                Ok(Ok(())) => {
                    match first.take() {
                        // `connect` waits for this, so nothing is published unheard before it returns.
                        Some(ready) => {
                            let _ = ready.send(());
                        }
                        None => {
                            tracing::info!("revocation subscription restored; dropping cached sessions");
                            let _ = tx.send(Revocation::All);
                        }
                    }
                    let mut messages = pubsub.on_message();
                    let moved = loop {
                        tokio::select! {
                            msg = messages.next() => {
                                let Some(msg) = msg else {
                                    tracing::warn!("revocation subscription lost; reconnecting");
                                    break false;
                                };
                                let Ok(text) = msg.get_payload::<String>() else { continue };
                                if let Some(key) = StoreKey::from_hex(&text) {
                                    let _ = tx.send(Revocation::Session(key));
                                }
                            }
                            () = target.moved() => {
                                tracing::info!("redis master moved; moving the revocation subscription");
                                break true;
                            }
                        }
                    };
                    if moved {
                        continue;
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "revocation subscribe failed"),
                Err(_) => tracing::warn!("revocation subscribe timed out"),
            },
            Ok(Err(e)) => tracing::debug!(error = %e, "revocation subscription: redis unreachable"),
            Err(_) => tracing::debug!("revocation subscription: connect timed out"),
        }
        tokio::time::sleep(RESUBSCRIBE_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::watch;

    #[test]
    fn cluster_subscriptions_go_round_the_nodes() {
        let a = Client::open("redis://127.0.0.1:1/").expect("client");
        let b = Client::open("redis://127.0.0.1:2/").expect("client");
        let mut t = Target {
            source: Subscribe::AnyOf(vec![a, b]),
            next: 0,
        };
        let ports: Vec<String> = (0..3)
            .filter_map(|_| t.client())
            .map(|c| c.get_connection_info().addr().to_string())
            .collect();
        assert_eq!(ports, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"]);
        let (tx, rx) = watch::channel(None);
        let mut t = Target {
            source: Subscribe::Master(rx),
            next: 0,
        };
        assert!(t.client().is_none(), "no master yet");
        tx.send_replace(Some(Client::open("redis://127.0.0.1:3/").expect("client")));
        assert!(t.client().is_some());
    }
}
