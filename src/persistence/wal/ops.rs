//! The payload of a commit-log record: one batch's writes, encoded as the log keeps them and read
//! back at replay — a format byte, the names of the trees written, then each write (kind, tree
//! index, key, value). Every length is checked on the way back: a bad payload is an error,
//! never a panic.

use std::borrow::Cow;

use crate::persistence::codec::CodecError;

/// One write of a batch: `value` into `key` of tree `tree`, or a removal.
pub(crate) struct Op<'b> {
    pub(crate) tree: usize,
    pub(crate) key: Cow<'b, [u8]>,
    pub(crate) value: Option<Cow<'b, [u8]>>,
}

impl<'b> Op<'b> {
    pub(crate) fn put(tree: usize, key: Cow<'b, [u8]>, value: &'b [u8]) -> Self {
        Op { tree, key, value: Some(Cow::Borrowed(value)) }
    }

    pub(crate) fn remove(tree: usize, key: Cow<'b, [u8]>) -> Self {
        Op { tree, key, value: None }
    }
}

pub(crate) const OPS_FORMAT: u8 = 1;

pub(crate) const OP_PUT: u8 = 1;

pub(crate) const OP_REMOVE: u8 = 2;

pub(crate) fn push_len(out: &mut Vec<u8>, len: usize, what: &'static str) -> Result<(), CodecError> {
    let n = u32::try_from(len).map_err(|_| CodecError::TooLarge { what, len, max: u32::MAX as usize })?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// A batch's writes as one log payload, into `out` (cleared first): format, the tree names, then
/// each write (kind, tree, key, value).
pub(crate) fn encode_ops<N: AsRef<[u8]>>(out: &mut Vec<u8>, trees: &[N], ops: &[Op<'_>]) -> Result<(), CodecError> {
    let size: usize = ops.iter().map(|o| 13 + o.key.len() + o.value.as_ref().map_or(0, |v| v.len())).sum();
    out.clear();
    out.reserve(8 + trees.len() * 32 + size);
    out.push(OPS_FORMAT);
    push_len(out, trees.len(), "tree count")?;
    for name in trees {
        let name = name.as_ref();
        push_len(out, name.len(), "tree name")?;
        out.extend_from_slice(name);
    }
    for op in ops {
        out.push(if op.value.is_some() { OP_PUT } else { OP_REMOVE });
        push_len(out, op.tree, "tree index")?;
        push_len(out, op.key.len(), "key")?;
        out.extend_from_slice(&op.key);
        if let Some(v) = &op.value {
            push_len(out, v.len(), "value")?;
            out.extend_from_slice(v);
        }
    }
    Ok(())
}

/// Reads a log payload back (every length checked: a bad payload is an error, not a panic).
pub(crate) fn decode_ops(payload: &[u8]) -> Result<(Vec<Vec<u8>>, Vec<Op<'_>>), &'static str> {
    fn take<'p>(p: &mut &'p [u8], n: usize) -> Result<&'p [u8], &'static str> {
        if p.len() < n {
            return Err("cut short");
        }
        let (a, b) = p.split_at(n);
        *p = b;
        Ok(a)
    }
    fn len(p: &mut &[u8]) -> Result<usize, &'static str> {
        let b: [u8; 4] = take(p, 4)?.try_into().map_err(|_| "cut short")?;
        usize::try_from(u32::from_le_bytes(b)).map_err(|_| "length out of range")
    }
    let mut p = payload;
    if take(&mut p, 1)? != [OPS_FORMAT] {
        return Err("unknown format");
    }
    let n = len(&mut p)?;
    let mut names = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let l = len(&mut p)?;
        names.push(take(&mut p, l)?.to_vec());
    }
    let mut ops = Vec::new();
    while !p.is_empty() {
        let kind = take(&mut p, 1)?[0];
        let tree = len(&mut p)?;
        if tree >= names.len() {
            return Err("tree index out of range");
        }
        let kl = len(&mut p)?;
        let key = Cow::Borrowed(take(&mut p, kl)?);
        let value = match kind {
            OP_PUT => {
                let vl = len(&mut p)?;
                Some(Cow::Borrowed(take(&mut p, vl)?))
            }
            OP_REMOVE => None,
            _ => return Err("unknown write kind"),
        };
        ops.push(Op { tree, key, value });
    }
    Ok((names, ops))
}
