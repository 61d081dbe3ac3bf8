//! The two hosts Python gets: [`asyncio::AsyncManager`] (`titan_pm.ProcessManager`,
//! results handed to the asyncio loop) and [`blocking::SyncManager`]
//! (`titan_pm.sync.ProcessManager`, the engine on the caller's thread).

pub mod asyncio;
pub mod blocking;
