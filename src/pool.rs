//! A bounded pool of Argon2 block memory, shared by the threads of a server.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

use crate::verifier::Argon2Memory;

/// One buffer per available core: more concurrent verifications than cores
/// would only share the cores and multiply the memory.
pub(crate) fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// At most `capacity` buffers exist at once; a verification that finds none
/// free waits for one, so peak memory is about `capacity × m` KiB. A buffer
/// that grew past `keep_kib` (a stored verifier with a larger `m` than the
/// policy's) is released after its use instead of being kept.
#[derive(Debug)]
pub(crate) struct MemoryPool {
    state: Mutex<PoolState>,
    freed: Condvar,
    capacity: usize,
    keep_kib: usize,
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
    pub(crate) fn new(capacity: usize, keep_kib: usize) -> Self {
        Self {
            state: Mutex::new(PoolState {
                free: Vec::new(),
                created: 0,
            }),
            freed: Condvar::new(),
            capacity: capacity.max(1),
            keep_kib,
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
        let mut state = self.pool.lock();
        if memory.kib() > self.pool.keep_kib {
            // Too large to keep: free it, and let a new buffer be made in its place.
            state.created = state.created.saturating_sub(1);
            drop(state);
            drop(memory);
        } else {
            state.free.push(memory);
            drop(state);
        }
        self.pool.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::{Cost, HashPolicy, Verifier};

    /// Grows `memory` by verifying against an Argon2id verifier of `m` KiB.
    fn grow(memory: &mut Argon2Memory, m: u32) {
        let phc = std::format!("$argon2id$v=19$m={m},t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA");
        let verifier: Verifier = phc.parse().unwrap();
        let secret = crate::Secret::imported("0123456789abcdef").unwrap();
        let policy = HashPolicy::default()
            .with_params(Cost::new(8, 1, 1))
            .and_then(|p| p.with_bounds(Cost::new(m, 1, 1)))
            .unwrap();
        let _ = verifier.verify_with_memory(&secret, &policy, memory);
    }

    #[test]
    fn buffers_larger_than_the_policy_are_released() {
        let pool = MemoryPool::new(1, 64);
        {
            let mut memory = pool.acquire();
            grow(&mut memory, 64);
            assert_eq!(memory.kib(), 64);
        }
        // Kept: the next acquire gets the same buffer back.
        assert_eq!(pool.acquire().kib(), 64);
        {
            let mut memory = pool.acquire();
            grow(&mut memory, 256);
            assert_eq!(memory.kib(), 256);
        }
        // Released: a fresh, empty buffer takes its place, and the pool's one
        // slot is free again (this would block forever otherwise).
        assert_eq!(pool.acquire().kib(), 0);
        assert_eq!(pool.lock().created, 1);
    }
}
