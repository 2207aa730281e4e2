//! Adapter between openraft's `RaftStateMachine` and our `StateStore`: entries are
//! applied in one atomic fjall batch together with the last applied log id.

use std::io;
use std::sync::Arc;

use futures::TryStreamExt;
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};

use super::TypeConfig;
use crate::state::{Outcome, Proposal, StateStore};
use crate::wire;

type C = TypeConfig;

/// The state machine handed to openraft.
pub struct StateMachine {
    pub store: Arc<StateStore>,
}

/// Builds a snapshot: a read view of the live rows and the log id they were applied up to.
pub struct SnapshotBuilder {
    store: Arc<StateStore>,
}

/// A Raft snapshot's data. The state machine is durable on its own (the rows and the
/// applied log id are written in one batch, in the same journal as the log), so a snapshot
/// built for log compaction needs no copy of the rows: it is a read view, and the rows are
/// read out of it, chunk by chunk, only when a lagging peer is sent the snapshot
/// (`network.rs`). A snapshot received from the leader is already on disk, staged
/// (`state::snapshot`), when openraft is asked to install it.
pub enum SnapshotData {
    /// The local rows as of one moment (a fjall snapshot).
    Live {
        store: Arc<StateStore>,
        view: fjall::Snapshot,
    },
    /// A transfer received completely into the staging keyspace.
    Staged { transfer: u64, chunks: u32 },
}

/// The applied log id and membership as of `view` (one moment, even while entries are
/// being applied).
fn applied_at(
    store: &StateStore,
    view: &fjall::Snapshot,
) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
    let last = match store.meta_get_at(view, "applied")? {
        Some(v) => wire::decode(&v)?,
        None => None,
    };
    let membership = match store.meta_get_at(view, "membership")? {
        Some(v) => wire::decode(&v)?,
        None => StoredMembershipOf::<C>::default(),
    };
    Ok((last, membership))
}

/// A snapshot of the live rows: the view, and the applied log id and membership read from
/// the same view. O(1): nothing is copied.
fn live_snapshot(store: &Arc<StateStore>) -> Result<SnapshotOf<C, SnapshotData>, io::Error> {
    let view = store.view();
    let (last_log_id, last_membership) = applied_at(store, &view)?;
    Ok(openraft::Snapshot {
        meta: SnapshotMetaOf::<C> {
            last_log_id,
            last_membership,
        },
        snapshot: SnapshotData::Live {
            store: store.clone(),
            view,
        },
    })
}

impl RaftSnapshotBuilder<C> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Self::SnapshotData>, io::Error> {
        live_snapshot(&self.store)
    }
}

impl RaftStateMachine<C> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        applied_at(&self.store, &self.store.view())
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures::Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut collected = Vec::new();
        let mut last = None;
        let mut membership = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            last = Some(log_id);
            match entry.payload {
                EntryPayload::Normal(p) => collected.push((Some(p), responder)),
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembershipOf::<C>::new(Some(log_id), m));
                    collected.push((None, responder));
                }
                _ => collected.push((None, responder)),
            }
        }
        let mut meta = vec![("applied", wire::encode(&last)?)];
        if let Some(m) = &membership {
            meta.push(("membership", wire::encode(m)?));
        }
        let proposals: Vec<&Proposal> = collected.iter().filter_map(|(p, _)| p.as_ref()).collect();
        let mut outcomes = self.store.apply(&proposals, &meta)?.into_iter();
        for (p, responder) in collected {
            let out = if p.is_some() {
                outcomes.next().unwrap_or_default()
            } else {
                Outcome::default()
            };
            if let Some(r) = responder {
                r.send(out);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let SnapshotData::Staged { transfer, chunks } = snapshot else {
            return Err(io::Error::other(
                "only a snapshot received from the leader can be installed",
            ));
        };
        let meta_rows = vec![
            ("applied".to_string(), wire::encode(&meta.last_log_id)?),
            (
                "membership".to_string(),
                wire::encode(&meta.last_membership)?,
            ),
        ];
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.install_staged(transfer, chunks, meta_rows))
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<C, Self::SnapshotData>>, io::Error> {
        // The live rows are the current snapshot; they are read out only when sent.
        Ok(Some(live_snapshot(&self.store)?))
    }
}
