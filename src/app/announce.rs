//! Accounts created offline (`bazaar user add` on a node's data directory, while the node is
//! stopped) are written by a one-node store that knows no peers, so only that node's copy of the
//! accounts has them. The tool notes each such account in the data directory; the node, once it
//! runs, says each one again to every node's copy (through the outbox: a peer that is down gets
//! it when it is back) and forgets the note. Repeating an announcement is harmless (the newest
//! version of an account wins), so a crash in between only repeats it.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::shop::{Shop, ShopError};
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

/// Announces every noted account and forgets the note; returns how many were announced.
pub async fn announce_noted(shop: &Shop, data_dir: &Path) -> Result<usize, ShopError> {
    let text = match std::fs::read_to_string(note(data_dir)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the accounts created offline; they stay on this node's copy");
            return Ok(0);
        }
    };
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match CustomerId::parse(line.trim()) {
            Ok(id) => {
                shop.announce_user(&id).await?;
                n += 1;
            }
            Err(_) => tracing::warn!(line, "an unreadable line in the accounts created offline: skipped"),
        }
    }
    if let Err(e) = std::fs::remove_file(note(data_dir)) {
        tracing::warn!(error = %e, "cannot remove the note of accounts created offline (they will be announced again)");
    }
    Ok(n)
}
