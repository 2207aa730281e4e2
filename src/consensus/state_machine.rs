//! Adapter between openraft's `RaftStateMachine` and our `StateStore`: entries are
//! applied in one atomic fjall batch together with the last applied log id.

use std::io::{self, Cursor};
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

/// Builds a snapshot: every state row, copied out of fjall.
pub struct SnapshotBuilder {
    store: Arc<StateStore>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotFile {
    rows: Vec<(String, Vec<u8>, Vec<u8>)>,
}

fn applied(store: &StateStore) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
    let last = match store.meta_get("applied")? {
        Some(v) => wire::decode(&v)?,
        None => None,
    };
    let membership = match store.meta_get("membership")? {
        Some(v) => wire::decode(&v)?,
        None => StoredMembershipOf::<C>::default(),
    };
    Ok((last, membership))
}

impl RaftSnapshotBuilder<C> for SnapshotBuilder {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Self::SnapshotData>, io::Error> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let rows = store.export_rows()?;
            // The applied log id and membership as of the same snapshot as the rows.
            let meta = |key: &str| {
                rows.iter()
                    .find(|(ks, k, _)| ks == "sm_meta" && k.as_slice() == key.as_bytes())
                    .map(|(_, _, v)| v.clone())
            };
            let last_log_id: Option<LogIdOf<C>> = match meta("applied") {
                Some(v) => wire::decode(&v)?,
                None => None,
            };
            let last_membership: StoredMembershipOf<C> = match meta("membership") {
                Some(v) => wire::decode(&v)?,
                None => StoredMembershipOf::<C>::default(),
            };
            let bytes = wire::encode(&SnapshotFile { rows })?;
            Ok(openraft::Snapshot {
                meta: SnapshotMetaOf::<C> {
                    last_log_id,
                    last_membership,
                },
                snapshot: Cursor::new(bytes),
            })
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl RaftStateMachine<C> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        applied(&self.store)
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
        let file: SnapshotFile = wire::decode(snapshot.get_ref())?;
        let meta_rows = vec![
            ("applied", wire::encode(&meta.last_log_id)?),
            ("membership", wire::encode(&meta.last_membership)?),
        ];
        self.store.import_rows(file.rows, &meta_rows)?;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<C, Self::SnapshotData>>, io::Error> {
        // Snapshots are built on demand from the live rows.
        let mut b = self.get_snapshot_builder().await;
        Ok(Some(b.build_snapshot().await?))
    }
}
