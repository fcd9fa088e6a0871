//! Swarm memory: namespaced key/value entries with version, TTL and tags.
//!
//! Versions come from one counter per swarm, so a key's version only ever
//! grows, even across delete and re-create. Expired entries disappear from
//! reads at once and are swept by [`Memory::expire`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::error::{Error, Result};
use crate::limits;
use crate::model::{check_list, check_name, check_payload, Payload};
use crate::quota::{self, Room};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub value: Payload,
    /// Where the value's searchable text starts in `value`, when the value
    /// is text: the text is `value[text_at..]`, kept once, as part of the
    /// encoded value.
    pub text_at: Option<u32>,
    pub version: u64,
    pub tags: Vec<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub expires_at: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }

    /// The value's searchable text, if it is text.
    pub fn text(&self) -> Option<&str> {
        let at = self.text_at? as usize;
        std::str::from_utf8(self.value.get(at..)?).ok()
    }
}

/// `Some(at)` if `value[at..]` is UTF-8 text, else `None`: what a store or
/// restore may keep as an entry's `text_at`.
pub fn text_at(value: &[u8], at: Option<usize>) -> Option<u32> {
    let at = at?;
    let text = value.get(at..)?;
    std::str::from_utf8(text).ok()?;
    u32::try_from(at).ok()
}

/// A search: every given criterion must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub namespace: Option<String>,
    pub prefix: Option<String>,
    /// The entry must carry all of these tags.
    pub tags: Vec<String>,
    /// Case-insensitive substring of the key or the value's text.
    pub text: Option<String>,
    pub limit: usize,
}

type Key = (String, String);

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    entries: BTreeMap<Key, Entry>,
    expiry: BinaryHeap<Reverse<(u64, Key)>>,
    next_version: u64,
    bytes: usize,
}

/// What one store call asks for.
pub struct StoreRequest<'a> {
    pub namespace: &'a str,
    pub key: &'a str,
    pub value: Payload,
    /// Where the value's text starts, when it is text (see [`Entry::text_at`]).
    pub text_at: Option<usize>,
    pub tags: Vec<String>,
    pub ttl_ms: Option<u64>,
    /// Compare-and-set: store only if the current version is this one
    /// (0 = the key must not exist).
    pub if_version: Option<u64>,
}

impl Memory {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held by namespaces, keys, values and tags, plus
    /// [`quota::ENTRY_OVERHEAD`] per entry.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Stores an entry, if what it adds (its bytes less those of the entry
    /// it replaces) fits in `room`; a refused store changes nothing.
    pub fn store(&mut self, req: StoreRequest<'_>, now: u64, room: Room) -> Result<u64> {
        check_entry(req.namespace, req.key, &req.value, &req.tags)?;
        if let Some(ttl) = req.ttl_ms {
            if ttl == 0 || ttl > limits::MAX_TIMEOUT_MS {
                return Err(Error::invalid(format!(
                    "ttl_ms must be between 1 and {}",
                    limits::MAX_TIMEOUT_MS
                )));
            }
        }
        let key = (req.namespace.to_owned(), req.key.to_owned());
        let current = self.entries.get(&key).filter(|e| e.live(now));
        if let Some(expected) = req.if_version {
            let found = current.map_or(0, |e| e.version);
            if found != expected {
                return Err(Error::VersionConflict { expected, found });
            }
        }
        if current.is_none() {
            self.check_room()?;
        }
        let created_at = current.map_or(now, |e| e.created_at);
        let entry = Entry {
            text_at: text_at(&req.value, req.text_at),
            value: req.value,
            version: self.next_version + 1,
            tags: req.tags,
            created_at,
            updated_at: now,
            expires_at: req.ttl_ms.map(|t| now + t),
        };
        // An expired entry not yet swept is still held: replacing it frees it.
        let old = self.entries.get(&key).map_or(0, |e| entry_bytes(&key, e));
        room.admit(entry_bytes(&key, &entry).saturating_sub(old))?;
        self.next_version += 1;
        let version = entry.version;
        self.put(key, entry);
        Ok(version)
    }

    /// Refuses a new key once memory holds its maximum.
    fn check_room(&self) -> Result<()> {
        if self.entries.len() >= limits::MAX_MEMORY_ENTRIES {
            return Err(Error::TooLarge {
                what: "memory",
                size: self.entries.len() + 1,
                limit: limits::MAX_MEMORY_ENTRIES,
            });
        }
        Ok(())
    }

    /// Inserts or replaces an entry, keeping its expiry and the byte count.
    fn put(&mut self, key: Key, entry: Entry) {
        if let Some(at) = entry.expires_at {
            self.expiry.push(Reverse((at, key.clone())));
        }
        let added = entry_bytes(&key, &entry);
        if let Some(old) = self.entries.insert(key.clone(), entry) {
            self.bytes -= entry_bytes(&key, &old);
        }
        self.bytes += added;
    }

    pub fn get(&self, namespace: &str, key: &str, now: u64) -> Option<&Entry> {
        self.entries
            .get(&(namespace.to_owned(), key.to_owned()))
            .filter(|e| e.live(now))
    }

    pub fn delete(&mut self, namespace: &str, key: &str, now: u64) -> bool {
        let k = (namespace.to_owned(), key.to_owned());
        match self.entries.remove(&k) {
            Some(e) => {
                self.bytes -= entry_bytes(&k, &e);
                e.live(now)
            }
            None => false,
        }
    }

    /// Entries matching `query`, in (namespace, key) order.
    pub fn search(&self, query: &Query, now: u64) -> Vec<(&str, &str, &Entry)> {
        let limit = query.limit.clamp(1, limits::MAX_SEARCH_RESULTS);
        let needle = query.text.as_ref().map(|t| t.to_lowercase());
        let matches = |(ns, key): &Key, e: &Entry| {
            e.live(now)
                && query.namespace.as_ref().is_none_or(|n| n == ns)
                && query
                    .prefix
                    .as_ref()
                    .is_none_or(|p| key.starts_with(p.as_str()))
                && query.tags.iter().all(|t| e.tags.contains(t))
                && needle.as_ref().is_none_or(|n| {
                    key.to_lowercase().contains(n)
                        || e.text().is_some_and(|t| t.to_lowercase().contains(n))
                })
        };
        let iter: Box<dyn Iterator<Item = (&Key, &Entry)>> = match (&query.namespace, &query.prefix)
        {
            // Namespace and prefix known: walk only the matching key range.
            (Some(ns), Some(prefix)) => Box::new(
                self.entries
                    .range((ns.clone(), prefix.clone())..)
                    .take_while(move |((n, k), _)| n == ns && k.starts_with(prefix.as_str())),
            ),
            (Some(ns), None) => Box::new(
                self.entries
                    .range((ns.clone(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns),
            ),
            _ => Box::new(self.entries.iter()),
        };
        iter.filter(|(k, e)| matches(k, e))
            .take(limit)
            .map(|((ns, key), e)| (ns.as_str(), key.as_str(), e))
            .collect()
    }

    /// Removes entries whose TTL ran out, at most `budget` of them, and
    /// returns their (namespace, key).
    pub fn expire(&mut self, now: u64, budget: usize) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        while gone.len() < budget {
            match self.expiry.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            let Reverse((at, key)) = self.expiry.pop().expect("peeked");
            // Only remove if the entry still carries this expiry (it may
            // have been rewritten or deleted since).
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.expires_at == Some(at))
            {
                let e = self.entries.remove(&key).expect("present");
                self.bytes -= entry_bytes(&key, &e);
                gone.push(key);
            }
        }
        gone
    }

    pub fn next_expiry(&self) -> Option<u64> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// Every live entry, in (namespace, key) order.
    pub fn live_entries(&self, now: u64) -> impl Iterator<Item = (&str, &str, &Entry)> {
        self.entries
            .iter()
            .filter(move |(_, e)| e.live(now))
            .map(|((ns, key), e)| (ns.as_str(), key.as_str(), e))
    }

    /// The version the next store will get.
    pub fn next_version(&self) -> u64 {
        self.next_version + 1
    }

    /// Makes the next store get at least version `next`.
    pub fn reserve_versions(&mut self, next: u64) {
        self.next_version = self.next_version.max(next.saturating_sub(1));
    }

    /// Puts back an entry exactly as it was exported (same version and
    /// timestamps). An entry already expired at `now` is dropped
    /// (`Ok(false)`); a key already present is an error. No quota is
    /// checked: the entry was acknowledged when it was stored.
    pub fn restore(
        &mut self,
        namespace: String,
        key: String,
        entry: Entry,
        now: u64,
    ) -> Result<bool> {
        check_entry(&namespace, &key, &entry.value, &entry.tags)?;
        if entry.version == 0 {
            return Err(Error::invalid("version must be at least 1"));
        }
        let entry = Entry {
            text_at: text_at(&entry.value, entry.text_at.map(|a| a as usize)),
            ..entry
        };
        let k = (namespace, key);
        if self.entries.contains_key(&k) {
            return Err(Error::invalid("the entry appears twice"));
        }
        // Versions only grow, even past entries that expired meanwhile.
        self.next_version = self.next_version.max(entry.version);
        if !entry.live(now) {
            return Ok(false);
        }
        self.check_room()?;
        self.put(k, entry);
        Ok(true)
    }
}

/// What every entry must satisfy, stored or restored.
fn check_entry(namespace: &str, key: &str, value: &[u8], tags: &[String]) -> Result<()> {
    check_name("namespace", namespace)?;
    check_name("key", key)?;
    check_payload("value", value)?;
    check_list("tag", tags)
}

/// What an entry holds: its bytes and the bookkeeping around it. The text
/// is part of the value, so it adds nothing.
fn entry_bytes((ns, key): &Key, e: &Entry) -> usize {
    quota::ENTRY_OVERHEAD
        + ns.len()
        + key.len()
        + e.value.len()
        + e.tags.iter().map(|t| t.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req<'a>(ns: &'a str, key: &'a str, text: &str) -> StoreRequest<'a> {
        StoreRequest {
            namespace: ns,
            key,
            value: text.as_bytes().to_vec(),
            text_at: Some(0),
            tags: vec![],
            ttl_ms: None,
            if_version: None,
        }
    }

    #[test]
    fn versions_grow_and_cas_is_checked() {
        let mut m = Memory::default();
        let v1 = m.store(req("ns", "k", "a"), 0, Room::UNLIMITED).unwrap();
        let v2 = m.store(req("ns", "k", "b"), 1, Room::UNLIMITED).unwrap();
        assert!(v2 > v1);
        let mut stale = req("ns", "k", "c");
        stale.if_version = Some(v1);
        assert_eq!(
            m.store(stale, 2, Room::UNLIMITED),
            Err(Error::VersionConflict {
                expected: v1,
                found: v2
            })
        );
        assert_eq!(m.get("ns", "k", 2).unwrap().value, b"b");
        assert_eq!(m.get("ns", "k", 2).unwrap().created_at, 0);
        assert!(m.delete("ns", "k", 3));
        assert!(m.get("ns", "k", 3).is_none());
        assert_eq!(m.bytes(), 0);
    }

    #[test]
    fn ttl_hides_then_sweeps() {
        let mut m = Memory::default();
        let mut r = req("ns", "k", "v");
        r.ttl_ms = Some(10);
        m.store(r, 100, Room::UNLIMITED).unwrap();
        assert!(m.get("ns", "k", 109).is_some());
        assert!(m.get("ns", "k", 110).is_none());
        assert_eq!(m.expire(110, 10), vec![("ns".into(), "k".into())]);
        assert!(m.is_empty());
    }

    #[test]
    fn rewrite_without_ttl_survives_old_expiry() {
        let mut m = Memory::default();
        let mut r = req("ns", "k", "v");
        r.ttl_ms = Some(10);
        m.store(r, 0, Room::UNLIMITED).unwrap();
        m.store(req("ns", "k", "w"), 5, Room::UNLIMITED).unwrap();
        assert!(m.expire(20, 10).is_empty());
        assert!(m.get("ns", "k", 20).is_some());
    }

    #[test]
    fn search_by_prefix_tags_and_text() {
        let mut m = Memory::default();
        m.store(req("a", "user/1", "Alice likes Rust"), 0, Room::UNLIMITED)
            .unwrap();
        m.store(req("a", "user/2", "Bob likes Elixir"), 0, Room::UNLIMITED)
            .unwrap();
        let mut tagged = req("a", "note", "misc");
        tagged.tags = vec!["x".into(), "y".into()];
        m.store(tagged, 0, Room::UNLIMITED).unwrap();
        m.store(req("b", "user/3", "Carol"), 0, Room::UNLIMITED)
            .unwrap();
        let q = |ns: Option<&str>, prefix: Option<&str>, tags: &[&str], text: Option<&str>| Query {
            namespace: ns.map(Into::into),
            prefix: prefix.map(Into::into),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            text: text.map(Into::into),
            limit: 100,
        };
        let keys = |r: Vec<(&str, &str, &Entry)>| {
            r.into_iter()
                .map(|(_, k, _)| k.to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(m.search(&q(Some("a"), Some("user/"), &[], None), 0)),
            ["user/1", "user/2"]
        );
        assert_eq!(
            keys(m.search(&q(None, Some("user/"), &[], None), 0)).len(),
            3
        );
        assert_eq!(keys(m.search(&q(None, None, &["x"], None), 0)), ["note"]);
        assert_eq!(
            keys(m.search(&q(None, None, &[], Some("ELIXIR")), 0)),
            ["user/2"]
        );
    }

    /// A value as the NIF encodes a binary: a 6-byte header, then the text.
    fn encoded(text: &str) -> StoreRequest<'static> {
        let mut value = vec![131, 109];
        value.extend((text.len() as u32).to_be_bytes());
        value.extend(text.as_bytes());
        StoreRequest {
            namespace: "ns",
            key: "big",
            value,
            text_at: Some(6),
            tags: vec![],
            ttl_ms: None,
            if_version: None,
        }
    }

    #[test]
    fn a_text_value_is_held_once_and_still_searchable() {
        let mut m = Memory::default();
        let text = "x".repeat((1 << 20) - 100) + " Needle";
        m.store(encoded(&text), 0, Room::UNLIMITED).unwrap();
        assert_eq!(
            m.bytes(),
            quota::ENTRY_OVERHEAD + "ns".len() + "big".len() + 6 + text.len()
        );
        let e = m.get("ns", "big", 0).unwrap();
        assert_eq!(e.text(), Some(text.as_str()));
        let q = Query {
            text: Some("NEEDLE".into()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(m.search(&q, 0).len(), 1);
        // Not text: never searched by content.
        let mut bin = encoded("needle");
        bin.key = "bin";
        bin.value.push(0xff);
        m.store(bin, 0, Room::UNLIMITED).unwrap();
        assert!(m.get("ns", "bin", 0).unwrap().text().is_none());
        assert_eq!(m.search(&q, 0).len(), 1);
    }

    #[test]
    fn a_store_past_the_room_changes_nothing() {
        let mut m = Memory::default();
        let quota = crate::quota::Quota::new(1000);
        m.store(req("ns", "a", &"a".repeat(300)), 0, quota.room(m.bytes()))
            .unwrap();
        let held = m.bytes();
        let big = req("ns", "b", &"b".repeat(700));
        assert_eq!(
            m.store(big, 1, quota.room(m.bytes())),
            Err(Error::QuotaExceeded {
                what: quota::SWARM,
                limit: 1000
            })
        );
        assert_eq!(m.bytes(), held);
        assert!(m.get("ns", "b", 1).is_none());
        assert_eq!(
            m.get("ns", "a", 1).unwrap().value,
            "a".repeat(300).as_bytes()
        );
        // The version counter did not move either.
        assert_eq!(m.next_version(), 2);
        // Shrinking an entry is always allowed, even with no room at all.
        let no_room = quota.room(usize::MAX);
        m.store(req("ns", "a", "short"), 2, no_room).unwrap();
        // Deleting frees room for the big one.
        m.delete("ns", "a", 3);
        m.store(req("ns", "b", &"b".repeat(700)), 3, quota.room(m.bytes()))
            .unwrap();
    }

    proptest! {
        #[test]
        fn bytes_accounting_returns_to_zero(ops in proptest::collection::vec((0u8..3, 0u8..8, ".{0,20}"), 1..60)) {
            let mut m = Memory::default();
            for (op, k, v) in ops {
                let key = format!("k{k}");
                match op {
                    0 | 1 => { m.store(req("ns", &key, &v), 0, Room::UNLIMITED).unwrap(); }
                    _ => { m.delete("ns", &key, 0); }
                }
            }
            for k in 0..8 { m.delete("ns", &format!("k{k}"), 0); }
            prop_assert_eq!(m.bytes(), 0);
            prop_assert!(m.is_empty());
        }
    }
}
