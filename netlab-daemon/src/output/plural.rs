//! Counts in what netlab says: `1 interface`, `2 interfaces`.

use std::fmt;

/// A count and the word for it, written `1 interface` or `3 interfaces`.
pub struct Plural<N> {
    n: N,
    one: &'static str,
    many: &'static str,
}

/// `n` with `one` when it is 1, with `many` otherwise (0 included).
pub fn plural<N>(n: N, one: &'static str, many: &'static str) -> Plural<N> {
    Plural { n, one, many }
}

impl<N: fmt::Display + PartialEq + From<u8>> fmt::Display for Plural<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = if self.n == N::from(1) {
            self.one
        } else {
            self.many
        };
        write!(f, "{} {word}", self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_everything_else_plural() {
        let ifaces = |n: usize| plural(n, "interface", "interfaces").to_string();
        assert_eq!(ifaces(0), "0 interfaces");
        assert_eq!(ifaces(1), "1 interface");
        assert_eq!(ifaces(2), "2 interfaces");
        assert_eq!(plural(1u64, "event", "events").to_string(), "1 event");
        assert_eq!(plural(12u64, "event", "events").to_string(), "12 events");
    }
}
