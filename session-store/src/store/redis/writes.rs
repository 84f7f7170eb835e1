//! Writes that count once replicas hold them (`WAIT`), and deletes that announce.

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncCommands, RedisResult};

use super::link::Conn;
use super::{RedisStore, StoreError, Use};
use crate::ticket::StoreKey;

impl RedisStore {
    /// Waits until `replicas_to_ack` replicas hold this connection's writes to `keys`
    /// (on a cluster, at each key's master); fails if fewer did within half the timeout.
    pub(super) async fn replicated(&self, conn: &mut Conn, keys: &[&str]) -> RedisResult<Result<(), StoreError>> {
        let wanted = self.inner.replicas_to_ack;
        if wanted == 0 {
            return Ok(Ok(()));
        }
        let ms = (self.inner.timeout / 2).as_millis().max(1) as u64;
        let mut wait = redis::cmd("WAIT");
        wait.arg(wanted).arg(ms);
        let mut acked = u32::MAX;
        match conn {
            Conn::Server(c) => acked = wait.query_async::<u32>(c).await?,
            Conn::Cluster(c) => {
                for key in keys {
                    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                        key,
                        SlotAddr::Master,
                    )));
                    let value = c.route_command(wait.clone(), route).await?;
                    acked = acked.min(redis::from_redis_value(value)?);
                }
            }
        }
        Ok(if acked >= wanted {
            Ok(())
        } else {
            Err(StoreError::NotReplicated { acked, wanted })
        })
    }

    /// Deletes the sessions `keys` (and the index set `index`), announces the deleted ones,
    /// then waits for replicas to hold the deletion.
    pub(super) async fn delete_keys(
        &self,
        keys: Vec<StoreKey>,
        index: Option<String>,
    ) -> Result<Vec<StoreKey>, StoreError> {
        let names: Vec<String> = keys.iter().map(|k| self.session_key(k)).collect();
        let channel = self.channel();
        let deleted = self
            .call(Use::Write, |mut c| async move {
                let mut deleted = Vec::with_capacity(keys.len());
                for (k, name) in keys.iter().zip(&names) {
                    if c.del::<_, i64>(name).await? > 0 {
                        deleted.push(*k);
                    }
                }
                let mut touched: Vec<&str> = names.iter().map(String::as_str).collect();
                if let Some(ik) = &index {
                    c.del::<_, i64>(ik).await?;
                    touched.push(ik);
                }
                // Announced before waiting for replicas: the deletion stands on the
                // master whatever the wait says, so caches must drop the sessions now.
                for k in &deleted {
                    c.publish::<_, _, i64>(&channel, k.to_hex()).await?;
                }
                Ok(self.replicated(&mut c, &touched).await?.map(|()| deleted))
            })
            .await??;
        Ok(deleted)
    }
}
