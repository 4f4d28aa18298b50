//! A bounded pool of Argon2 block memory, shared by the threads of a server.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

use crate::verifier::Argon2Memory;

/// One buffer per available core: more concurrent verifications than cores
/// would only share the cores and multiply the memory.
pub(crate) fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// At most `capacity` buffers ever exist; a verification that finds none free
/// waits for one, so peak memory is about `capacity × m` KiB.
#[derive(Debug)]
pub(crate) struct MemoryPool {
    state: Mutex<PoolState>,
    freed: Condvar,
    capacity: usize,
}

#[derive(Debug)]
struct PoolState {
    free: Vec<Argon2Memory>,
    created: usize,
}

pub(crate) struct PooledMemory<'a> {
    pool: &'a MemoryPool,
    memory: Argon2Memory,
}

impl MemoryPool {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(PoolState {
                free: Vec::new(),
                created: 0,
            }),
            freed: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Nothing panics while holding the lock; recover the state if it ever did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn acquire(&self) -> PooledMemory<'_> {
        let mut state = self.lock();
        loop {
            if let Some(memory) = state.free.pop() {
                return PooledMemory { pool: self, memory };
            }
            if state.created < self.capacity {
                state.created += 1;
                return PooledMemory {
                    pool: self,
                    memory: Argon2Memory::new(),
                };
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl core::ops::Deref for PooledMemory<'_> {
    type Target = Argon2Memory;
    fn deref(&self) -> &Argon2Memory {
        &self.memory
    }
}

impl core::ops::DerefMut for PooledMemory<'_> {
    fn deref_mut(&mut self) -> &mut Argon2Memory {
        &mut self.memory
    }
}

impl Drop for PooledMemory<'_> {
    fn drop(&mut self) {
        let memory = core::mem::take(&mut self.memory);
        self.pool.lock().free.push(memory);
        self.pool.freed.notify_one();
    }
}
