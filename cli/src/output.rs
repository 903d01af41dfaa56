//! What the command line prints for people, on stdout (logs go to stderr).

use std::fmt;
use std::io::Write as _;

/// Prints one line on stdout. A closed stdout (a pipe whose reader left)
/// is ignored: printing must never stop the gateway.
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// `n` and a noun, the noun in the plural unless `n` is 1: "1 tenant",
/// "3 tenants". Nouns here all take an "s".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_number() {
        assert_eq!(count(1, "tenant"), "1 tenant");
        assert_eq!(count(0, "event"), "0 events");
        assert_eq!(
            count(2, "active signing secret"),
            "2 active signing secrets"
        );
    }
}
