//! Shared copies of names (containers, interfaces, drop reasons), so that a sighting of
//! names already known allocates nothing.

use std::sync::Arc;

use super::Set;

/// Interned names are pruned when the table grows past this size (or twice its live size).
const INTERNER_MIN_LIMIT: usize = 1024;

/// Shared copies of names, so that sightings of known names allocate nothing.
#[derive(Debug, Default)]
pub(super) struct Interner {
    names: Set<Arc<str>>,
    limit: usize,
}

impl Interner {
    pub(super) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return Arc::clone(a);
        }
        if self.names.len() >= self.limit.max(INTERNER_MIN_LIMIT) {
            // Forget names nothing pending refers to any more.
            self.names.retain(|a| Arc::strong_count(a) > 1);
            self.limit = self.names.len().saturating_mul(2);
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(Arc::clone(&a));
        a
    }

    pub(super) fn get_opt(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        s.map(|s| self.get(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_forgets_unused_names() {
        let mut n = Interner::default();
        let keep = n.get("keep");
        for i in 0..(INTERNER_MIN_LIMIT * 3) {
            let _ = n.get(&format!("if{i}"));
        }
        assert!(n.names.len() <= INTERNER_MIN_LIMIT + 1);
        assert!(Arc::ptr_eq(&keep, &n.get("keep")));
    }
}
