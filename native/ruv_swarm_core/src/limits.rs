//! Documented limits on what callers may hand the engine.

/// Agents one swarm may hold (`max_agents` upper bound).
pub const MAX_AGENTS_PER_SWARM: u32 = 100_000;
/// Default `max_agents` when a swarm is created without one.
pub const DEFAULT_MAX_AGENTS: u32 = 100;
/// Swarm names, agent names and types, capability names, memory keys,
/// namespaces, tags, discovery types (bytes).
pub const MAX_NAME_BYTES: usize = 256;
/// Capabilities per agent or per task, tags per entry.
pub const MAX_LIST_ITEMS: usize = 64;
/// Task input, memory value, result, discovery content (bytes, encoded).
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Task descriptions and failure reasons (bytes).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Subtasks in one task.
pub const MAX_SUBTASKS: usize = 1_000;
/// Fan-out of one task.
pub const MAX_TASK_AGENTS: u32 = 1_000;
/// Attempts per unit of work (1 = no retry).
pub const MAX_ATTEMPTS: u32 = 20;
/// Finished tasks kept per swarm for status and results.
pub const DEFAULT_TASK_HISTORY: usize = 10_000;
/// Discoveries kept per swarm.
pub const DEFAULT_DISCOVERY_LOG: usize = 1_000;
/// Memory entries per swarm.
pub const MAX_MEMORY_ENTRIES: usize = 1_000_000;
/// Entries in one page of a listing (`agents_page`); 100 when not given.
pub const MAX_PAGE_SIZE: usize = 1_000;
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Results returned by one memory search.
pub const MAX_SEARCH_RESULTS: usize = 1_000;
/// Longest timeout or lease accepted (one day, ms).
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// Default memory quota of one swarm (bytes held for memory entries, task
/// inputs, results and discoveries; see `quota`): 1 GiB.
pub const DEFAULT_SWARM_MEMORY_BYTES: u64 = 1 << 30;
/// Default memory quota of the whole node, over all its swarms: 8 GiB.
pub const DEFAULT_NODE_MEMORY_BYTES: u64 = 8 << 30;
/// Smallest memory quota accepted (bytes).
pub const MIN_MEMORY_QUOTA_BYTES: u64 = 4096;
/// A progress report's message (assistant text, a tool call's name),
/// in bytes; longer ones are cut at a character boundary.
pub const MAX_PROGRESS_MESSAGE_BYTES: usize = 1_000;
/// An executor's session id (bytes), kept with the attempt and the agent.
pub const MAX_SESSION_ID_BYTES: usize = 256;
/// Largest token count, turn count or duration one report may carry, and
/// largest cost (micro-dollars) or budget: sums of them never overflow.
pub const MAX_USAGE_VALUE: u64 = 1 << 50;
