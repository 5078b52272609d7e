//! Engram embedding tables in the store, as Mooncake's `EngramStore` keeps them: one
//! object per head, `engram:l{layer}:h{head}`, holding that head's `float32` table of
//! `[vocab_h, dim]` rows. A lookup takes precomputed row ids `[tokens, heads]` and reads
//! exactly those rows, as byte ranges of the head tables, into `[tokens, heads, dim]`.
//!
//! Only the storage side: tokenizer compression, n-gram hashing and everything else of
//! the Engram model stays with the caller.

use crate::{Error, ErrorCode, ReplicateConfig, Result, Store};

/// Bytes of one table element (`float32`).
const ELEM_BYTES: usize = 4;

/// The rows to read from one head's table: (table offset, destination) per token.
pub type HeadRows<'b> = Vec<(u64, &'b mut [u8])>;

/// The physical layout of one Engram layer: per-head table sizes and the row width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngramLayer {
    table_vocab_sizes: Vec<i64>,
    embedding_dim: usize,
    keys: Vec<String>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidParams, msg)
}

impl EngramLayer {
    /// Layer `layer_id` with one table of `table_vocab_sizes[h]` rows of `embedding_dim`
    /// floats per head. Refuses no heads, a non-positive size or width.
    pub fn new(layer_id: i64, table_vocab_sizes: Vec<i64>, embedding_dim: i64) -> Result<Self> {
        if table_vocab_sizes.is_empty() {
            return Err(invalid("table_vocab_sizes must not be empty"));
        }
        if let Some(v) = table_vocab_sizes.iter().find(|&&v| v <= 0) {
            return Err(invalid(format!(
                "table_vocab_sizes must contain only positive values, got {v}"
            )));
        }
        let embedding_dim = usize::try_from(embedding_dim)
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| {
                invalid(format!(
                    "embedding_dim must be positive, got {embedding_dim}"
                ))
            })?;
        let keys = (0..table_vocab_sizes.len())
            .map(|h| format!("engram:l{layer_id}:h{h}"))
            .collect();
        Ok(EngramLayer {
            table_vocab_sizes,
            embedding_dim,
            keys,
        })
    }

    /// Rows of each head's table.
    pub fn table_vocab_sizes(&self) -> &[i64] {
        &self.table_vocab_sizes
    }

    /// Floats per row.
    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }

    /// Number of heads (tables).
    pub fn num_heads(&self) -> usize {
        self.table_vocab_sizes.len()
    }

    /// The store key of each head's table.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.embedding_dim * ELEM_BYTES
    }

    /// Bytes of head `h`'s whole table; `None` when it does not fit in memory.
    pub fn table_bytes(&self, h: usize) -> Option<usize> {
        usize::try_from(self.table_vocab_sizes[h])
            .ok()?
            .checked_mul(self.row_bytes())
    }

    /// Writes one table per head (`tables[h]` of exactly `table_bytes(h)` bytes). Create
    /// only: refuses (OBJECT_ALREADY_EXISTS) while any head's key exists. When some heads
    /// fail, the ones written are removed again, so a failed populate leaves nothing.
    pub fn populate(&self, store: &Store, tables: &[&[u8]]) -> Result<()> {
        if tables.len() != self.num_heads() {
            return Err(invalid(format!(
                "{} tables for {} heads",
                tables.len(),
                self.num_heads()
            )));
        }
        for (h, t) in tables.iter().enumerate() {
            if Some(t.len()) != self.table_bytes(h) {
                return Err(invalid(format!(
                    "table {h} has {} bytes, its layout needs {:?}",
                    t.len(),
                    self.table_bytes(h)
                )));
            }
        }
        let keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        for (key, found) in keys.iter().zip(store.batch_exists(&keys)) {
            if found? {
                return Err(Error::new(
                    ErrorCode::ObjectAlreadyExists,
                    format!(
                        "{key} exists: remove the layer (remove_from_store) before populating it again"
                    ),
                ));
            }
        }
        let items: Vec<(&str, &[u8])> = keys.iter().copied().zip(tables.iter().copied()).collect();
        let res = store.put_batch(&items, &ReplicateConfig::default());
        let Some(first) = res.iter().position(Result::is_err) else {
            return Ok(());
        };
        for (key, r) in keys.iter().zip(&res) {
            if r.is_ok()
                && let Err(e) = store.remove(key, true)
                && e.code() != ErrorCode::ObjectNotFound
            {
                tracing::error!("rolling back engram table {key}: {e}");
            }
        }
        Err(res
            .into_iter()
            .nth(first)
            .expect("position found")
            .unwrap_err())
    }

    /// Pairs each requested row with its destination: for head `h`, the (table offset,
    /// slice of `out`) of every token, where `row_ids` is `[tokens, heads]` and `out` is
    /// `[tokens, heads, dim]` floats. Refuses a row id outside its table and sizes that do
    /// not match.
    pub fn plan<'b>(&self, row_ids: &[i64], out: &'b mut [u8]) -> Result<Vec<HeadRows<'b>>> {
        let heads = self.num_heads();
        if row_ids.is_empty() || !row_ids.len().is_multiple_of(heads) {
            return Err(invalid(format!(
                "{} row ids is not a positive multiple of {heads} heads",
                row_ids.len()
            )));
        }
        let row_bytes = self.row_bytes();
        if row_ids.len().checked_mul(row_bytes) != Some(out.len()) {
            return Err(invalid(format!(
                "output of {} bytes for {} rows of {row_bytes} bytes",
                out.len(),
                row_ids.len()
            )));
        }
        let tokens = row_ids.len() / heads;
        let mut per_head: Vec<HeadRows<'b>> =
            (0..heads).map(|_| Vec::with_capacity(tokens)).collect();
        for (i, (&id, dst)) in row_ids
            .iter()
            .zip(out.chunks_exact_mut(row_bytes))
            .enumerate()
        {
            let h = i % heads;
            if id < 0 || id >= self.table_vocab_sizes[h] {
                return Err(invalid(format!(
                    "row id {id} of head {h} is outside its table of {} rows",
                    self.table_vocab_sizes[h]
                )));
            }
            per_head[h].push((id as u64 * row_bytes as u64, dst));
        }
        Ok(per_head)
    }

    /// Reads the rows `row_ids` (`[tokens, heads]`) names into `out` (`[tokens, heads,
    /// dim]` floats): one lookup of all heads, then one batched range read. On error `out`
    /// is zeroed.
    pub fn lookup(&self, store: &Store, row_ids: &[i64], out: &mut [u8]) -> Result<()> {
        let res = self.lookup_inner(store, row_ids, out);
        if res.is_err() {
            out.fill(0);
        }
        res
    }

    fn lookup_inner(&self, store: &Store, row_ids: &[i64], out: &mut [u8]) -> Result<()> {
        let plan = self.plan(row_ids, out)?;
        let keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        let locs = store
            .locate_batch(&keys)
            .into_iter()
            .zip(&keys)
            .map(|(r, k)| r.map_err(|e| Error::new(e.code(), format!("engram table {k}: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        let want: Vec<u64> = plan
            .iter()
            .map(|rows| rows.iter().map(|(_, d)| d.len() as u64).sum())
            .collect();
        let mut items: Vec<_> = locs.iter().zip(plan).collect();
        for ((r, k), want) in store
            .read_ranges_batch(&mut items)
            .into_iter()
            .zip(&keys)
            .zip(want)
        {
            let got = r.map_err(|e| Error::new(e.code(), format!("engram table {k}: {e}")))?;
            if got != want {
                return Err(Error::new(
                    ErrorCode::InternalError,
                    format!("engram table {k}: read {got} of {want} bytes"),
                ));
            }
        }
        Ok(())
    }

    /// Removes every head's table; returns how many existed. Missing tables are skipped;
    /// the first other failure is returned after trying every head.
    pub fn remove(&self, store: &Store, force: bool) -> Result<usize> {
        let mut removed = 0;
        let mut first_err = None;
        for key in &self.keys {
            match store.remove(key, force) {
                Ok(()) => removed += 1,
                Err(e) if e.code() == ErrorCode::ObjectNotFound => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(removed), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> EngramLayer {
        EngramLayer::new(3, vec![4, 2], 2).unwrap()
    }

    #[test]
    fn keys_name_layer_and_head() {
        assert_eq!(layer().keys(), ["engram:l3:h0", "engram:l3:h1"]);
        assert_eq!(layer().row_bytes(), 8);
        assert_eq!(layer().table_bytes(0), Some(32));
    }

    #[test]
    fn bad_layouts_are_refused() {
        for (sizes, dim) in [(vec![], 2), (vec![4, 0], 2), (vec![4, -1], 2), (vec![4], 0)] {
            let e = EngramLayer::new(0, sizes, dim).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidParams);
        }
    }

    #[test]
    fn plan_maps_each_row_to_its_output_slot() {
        let l = layer();
        // Two tokens, two heads: (row 3 of h0, row 1 of h1), (row 0 of h0, row 0 of h1).
        let mut out = vec![0u8; 4 * 8];
        let base = out.as_ptr() as usize;
        let plan = l.plan(&[3, 1, 0, 0], &mut out).unwrap();
        let at = |p: &(u64, &mut [u8])| (p.0, p.1.as_ptr() as usize - base, p.1.len());
        assert_eq!(
            plan[0].iter().map(at).collect::<Vec<_>>(),
            [(24, 0, 8), (0, 16, 8)]
        );
        assert_eq!(
            plan[1].iter().map(at).collect::<Vec<_>>(),
            [(8, 8, 8), (0, 24, 8)]
        );
    }

    #[test]
    fn plan_refuses_bad_ids_and_sizes() {
        let l = layer();
        let mut out = vec![0u8; 16];
        for ids in [&[4, 0][..], &[0, 2], &[-1, 0], &[0, 0, 0], &[]] {
            let e = l.plan(ids, &mut out).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidParams, "{ids:?}");
        }
        assert!(l.plan(&[0, 0], &mut out[..8]).is_err());
        assert!(l.plan(&[3, 1], &mut out).is_ok());
    }
}
