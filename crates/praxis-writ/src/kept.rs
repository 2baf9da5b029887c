//! What a process works out once and keeps: compiled path globs, checked tokens.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{LazyLock, Mutex};

/// A process-wide map from a key to what was worked out for it, holding the first `max`
/// keys (later ones are worked out on every call). A failure is never kept.
pub(crate) struct Kept<K, V> {
    map: LazyLock<Mutex<HashMap<K, V>>>,
    max: usize,
}

impl<K: Eq + Hash, V: Clone> Kept<K, V> {
    pub(crate) const fn new(max: usize) -> Self {
        Kept {
            map: LazyLock::new(Mutex::default),
            max,
        }
    }

    /// The value kept for `key`, else `make()`'s, kept if it succeeded and there is room.
    pub(crate) fn get_or_try<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(value) = self.map.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(value);
        }
        let value = make()?;
        if let Ok(mut map) = self.map.lock()
            && map.len() < self.max
        {
            map.insert(key, value.clone());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_successes_up_to_its_bound_and_never_a_failure() {
        static KEPT: Kept<u32, u32> = Kept::new(2);
        let calls = std::cell::Cell::new(0);
        let make = |v: u32| {
            calls.set(calls.get() + 1);
            if v == 0 { Err("zero") } else { Ok(v * 10) }
        };
        assert_eq!(KEPT.get_or_try(1, || make(1)), Ok(10));
        assert_eq!(KEPT.get_or_try(1, || make(1)), Ok(10));
        assert_eq!(calls.get(), 1, "kept after the first call");
        assert_eq!(KEPT.get_or_try(0, || make(0)), Err("zero"));
        assert_eq!(KEPT.get_or_try(0, || make(0)), Err("zero"));
        assert_eq!(calls.get(), 3, "a failure is worked out again");
        assert_eq!(KEPT.get_or_try(2, || make(2)), Ok(20));
        assert_eq!(KEPT.get_or_try(3, || make(3)), Ok(30));
        assert_eq!(KEPT.get_or_try(3, || make(3)), Ok(30));
        assert_eq!(calls.get(), 6, "past the bound, worked out on every call");
    }
}
