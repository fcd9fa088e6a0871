//! Pages of a long listing, with opaque cursors.
//!
//! A swarm may hold 100,000 agents: listing them all at once builds tens
//! of megabytes. A page is at most `MAX_PAGE_SIZE` entries, and its cursor
//! names where the next page starts (a join slot, which is never reused,
//! so agents leaving or joining between two pages neither repeat nor skip
//! the ones that stay). Cursors are strings callers hand back unchanged;
//! one that this engine did not make is an invalid argument.

use crate::limits::MAX_PAGE_SIZE;
use crate::{Error, Result};

/// One page: the entries and, when more follow, the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

const PREFIX: &str = "p1";

fn check(position: u64) -> u64 {
    (position.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) & 0xff
}

/// The cursor for a page starting at `position`.
pub fn encode(position: u64) -> String {
    format!("{PREFIX}{position:x}g{:02x}", check(position))
}

/// The position a cursor names; `None` (no cursor) is the first page.
pub fn decode(cursor: Option<&str>) -> Result<u64> {
    let Some(c) = cursor else { return Ok(0) };
    let bad = || {
        Error::invalid(format!(
            "cursor {:?} is not one this server gave out: pass the nextCursor of the previous page, or none for the first page",
            c.chars().take(40).collect::<String>()
        ))
    };
    let body = c.strip_prefix(PREFIX).ok_or_else(bad)?;
    let (pos, sum) = body.split_once('g').ok_or_else(bad)?;
    let pos = u64::from_str_radix(pos, 16).map_err(|_| bad())?;
    let sum = u64::from_str_radix(sum, 16).map_err(|_| bad())?;
    if pos == 0 || sum != check(pos) || c != encode(pos) {
        return Err(bad());
    }
    Ok(pos)
}

/// Checks a page size (1 to `MAX_PAGE_SIZE`).
pub fn size(limit: usize) -> Result<usize> {
    if (1..=MAX_PAGE_SIZE).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::invalid(format!(
            "limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"
        )))
    }
}

/// Takes one page from `entries` (position, item), which start at or after
/// the cursor's position: at most `limit` items, and the next cursor when
/// an entry is left over.
pub fn take<T>(mut entries: impl Iterator<Item = (u64, T)>, limit: usize) -> Page<T> {
    let items: Vec<T> = entries.by_ref().take(limit).map(|(_, t)| t).collect();
    let next = entries.next().map(|(pos, _)| encode(pos));
    Page { items, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_forged_one_is_refused() {
        for pos in [1, 2, 99, 100_000, u64::MAX] {
            assert_eq!(decode(Some(&encode(pos))), Ok(pos));
        }
        assert_eq!(decode(None), Ok(0));
        for bad in ["", "p1", "p10g00", "p1zzg00", "hello", "p164g00", "P164g7a"] {
            let err = decode(Some(bad)).unwrap_err().to_string();
            assert!(
                err.contains("is not one this server gave out"),
                "{bad}: {err}"
            );
        }
        // A cursor with a changed position fails its check.
        let c = encode(100);
        let forged = c.replacen("64", "65", 1);
        assert!(decode(Some(&forged)).is_err());
    }

    #[test]
    fn pages_cover_every_entry_once() {
        let data: Vec<u64> = (1..=25).collect();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let from = decode(cursor.as_deref()).unwrap();
            let page = take(
                data.iter()
                    .enumerate()
                    .map(|(i, &v)| (i as u64, v))
                    .skip_while(|(i, _)| *i < from),
                10,
            );
            seen.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, data);
    }

    #[test]
    fn a_page_size_is_bounded() {
        assert_eq!(size(1), Ok(1));
        assert_eq!(size(MAX_PAGE_SIZE), Ok(MAX_PAGE_SIZE));
        assert!(size(0).is_err());
        assert!(size(MAX_PAGE_SIZE + 1).is_err());
    }
}
