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
