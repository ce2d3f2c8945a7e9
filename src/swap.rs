//! A value replaced while the gate runs and read where it is used: the
//! listener's certificate, the upstream connector, the Redis clients (each
//! rebuilt by [`crate::reload`] when its files change).

use std::sync::RwLock;

/// Holds one `T`; [`Swap::get`] clones it out, [`Swap::set`] replaces it.
/// Readers never see a half-written value, and a panic elsewhere never
/// poisons it for good (replacing a value cannot leave it inconsistent).
#[derive(Debug, Default)]
pub struct Swap<T>(RwLock<T>);

impl<T: Clone> Swap<T> {
    pub fn new(value: T) -> Self {
        Self(RwLock::new(value))
    }

    /// The current value (keep `T` cheap to clone: an `Arc` or a handle).
    pub fn get(&self) -> T {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replace the value; later [`Swap::get`]s see the new one.
    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

#[cfg(test)]
mod tests {
    use super::Swap;

    #[test]
    fn get_sees_the_latest_set() {
        let swap = Swap::new(1);
        assert_eq!(swap.get(), 1);
        swap.set(2);
        assert_eq!(swap.get(), 2);
    }
}
