//! Shared memory and discoveries: the swarm-level commands over the
//! memory store and the discovery log.

use super::*;

impl Swarm {
    // ---- memory ----------------------------------------------------------------

    pub fn memory_store(&mut self, req: memory::StoreRequest<'_>, now: u64) -> Result<u64> {
        let (namespace, key) = (req.namespace.to_owned(), req.key.to_owned());
        let room = self.room();
        let version = self.memory.store(req, now, room)?;
        self.counters.memory_writes += 1;
        self.emit(now, || Event::MemoryStored {
            namespace,
            key,
            version,
        });
        Ok(version)
    }

    pub fn memory_get(&self, namespace: &str, key: &str, now: u64) -> Result<&Entry> {
        self.memory
            .get(namespace, key, now)
            .ok_or(Error::KeyNotFound)
    }

    pub fn memory_delete(&mut self, namespace: &str, key: &str, now: u64) -> Result<()> {
        if !self.memory.delete(namespace, key, now) {
            return Err(Error::KeyNotFound);
        }
        self.counters.memory_writes += 1;
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.emit(now, || Event::MemoryDeleted { namespace, key });
        Ok(())
    }

    pub fn memory_search(&self, query: &Query, now: u64) -> Vec<(&str, &str, &Entry)> {
        self.memory.search(query, now)
    }

    // ---- discoveries -------------------------------------------------------

    pub fn share_discovery(
        &mut self,
        agent_id: Option<&str>,
        kind: &str,
        content: Payload,
        confidence: f64,
        tags: Vec<String>,
        now: u64,
    ) -> Result<Discovery> {
        check_discovery(kind, &content, &tags, confidence)?;
        let agent_id = match agent_id {
            Some(a) => Some(self.agent(a)?.id.clone()),
            None => None,
        };
        let seq = self.next_discovery;
        let d = Discovery {
            id: ids::child_id(&self.id, Kind::Discovery, seq),
            agent_id,
            kind: kind.to_owned(),
            content,
            confidence,
            tags,
            at: now,
        };
        self.discoveries.push(d.clone(), self.room())?;
        self.next_discovery += 1;
        self.counters.discoveries_shared += 1;
        let (discovery_id, agent_id, kind) = (d.id.clone(), d.agent_id.clone(), d.kind.clone());
        self.emit(now, || Event::DiscoveryShared {
            discovery_id,
            agent_id,
            kind,
        });
        Ok(d)
    }

    pub fn recent_discoveries(&self, filter: &discovery::Filter, limit: usize) -> Vec<&Discovery> {
        self.discoveries.recent(filter, limit)
    }
}
