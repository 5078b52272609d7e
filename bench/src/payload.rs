//! Values whose every 4 KiB block carries the op index, so a value read back under the wrong
//! key, or a block from the wrong place, is caught with one memcmp per block.

/// Block size of the stamps.
const BLOCK: usize = 4096;

/// A template value of `size` bytes.
pub fn template(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x243F_6A88_85A3_08D3;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `index` at the start of every block of `buf` (which otherwise holds the template).
pub fn stamp(buf: &mut [u8], index: u64) {
    let tag = index.to_le_bytes();
    for chunk in buf.chunks_mut(BLOCK) {
        let n = chunk.len().min(8);
        chunk[..n].copy_from_slice(&tag[..n]);
    }
}

/// Whether `got` is the template stamped with `index`.
pub fn check(got: &[u8], template: &[u8], index: u64) -> bool {
    if got.len() != template.len() {
        return false;
    }
    let tag = index.to_le_bytes();
    got.chunks(BLOCK).zip(template.chunks(BLOCK)).all(|(g, t)| {
        let n = g.len().min(8);
        g[..n] == tag[..n] && g[n..] == t[n..]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_catch_mixups() {
        let t = template(10_000);
        let mut v = t.clone();
        stamp(&mut v, 5);
        assert!(check(&v, &t, 5));
        assert!(!check(&v, &t, 6));
        v[9000] ^= 1;
        assert!(!check(&v, &t, 5));
    }
}
