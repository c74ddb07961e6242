//! Accounts created offline (`bazaar user add` on a node's data directory, while the node is
//! stopped) are written by a one-node store that knows no peers, so only that node's copy of the
//! accounts has them. The tool notes each such account in the data directory; the node, once it
//! runs, says each one again to every node's copy (through the outbox: a peer that is down gets
//! it when it is back) and forgets the note. Repeating an announcement is harmless (the newest
//! version of an account wins), so a crash in between only repeats it.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::shop::Shop;
use crate::domain::CustomerId;

/// The note's file in a data directory.
fn note(data_dir: &Path) -> PathBuf {
    data_dir.join("accounts-to-announce")
}

/// Notes that `id` was created offline in `data_dir`.
pub fn remember(data_dir: &Path, id: &CustomerId) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(note(data_dir))?;
    writeln!(f, "{id}")?;
    f.sync_all()
}

/// Announces every noted account and rewrites the note with those that could not be (their
/// owner unreachable now); returns how many are left.
///
/// An account made offline sits in this node's store, whichever node owns it under the
/// configuration. Where this node owns it, the account says itself again to every node's copy;
/// where another node does, it is created there from this node's record (the owner's change
/// then reaches every copy; an owner that has it already is done).
pub async fn announce_noted(shop: &Shop, data_dir: &Path) -> usize {
    let text = match std::fs::read_to_string(note(data_dir)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the accounts created offline; they stay on this node's copy");
            return 0;
        }
    };
    let mut left = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Ok(id) = CustomerId::parse(line) else {
            tracing::warn!(line, "an unreadable line in the accounts created offline: skipped");
            continue;
        };
        match shop.announce_user(&id).await {
            Ok(()) => tracing::info!(account = %id, "an account created offline was announced to every node"),
            Err(e) => {
                tracing::warn!(account = %id, error = %e, "an account created offline is not announced yet; will retry");
                left.push(id.to_string());
            }
        }
    }
    let written = if left.is_empty() {
        std::fs::remove_file(note(data_dir))
    } else {
        std::fs::write(note(data_dir), left.join("\n") + "\n")
    };
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot rewrite the note of accounts created offline (they will be announced again)");
    }
    left.len()
}

/// Announces the noted accounts, again every `every` while some owner is unreachable.
pub async fn announce_until_done(shop: Shop, data_dir: PathBuf, every: std::time::Duration) {
    loop {
        if announce_noted(&shop, &data_dir).await == 0 {
            return;
        }
        tokio::time::sleep(every).await;
    }
}
