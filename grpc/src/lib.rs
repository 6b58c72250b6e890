//! Group RPC and replicated objects for Thoth (a later piece of work; nothing here yet).
//!
//! What will live here: remote method calls to a group (sync, async, promise-based) with
//! response modes (first, all, majority, none) and per-method ordering (abcast, cbcast,
//! ubcast); replicated objects whose replication strategy is chosen per object (a semantics
//! object apart from its replication object, as in E1); object groups; a location trader;
//! liveness probes; and state transfer by dump / undump (Electra).
#![forbid(unsafe_code)]
