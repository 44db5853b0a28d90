//! Writing results to stdout the way Unix tools do: a reader that goes away (`| head`) ends
//! the run quietly; any other write failure (a closed or full stdout) is an error, never a
//! silent exit 0.

use netvantage_runtime::{Shutdown, StopReason};
use std::io;

/// What became of a write of results.
#[derive(Debug)]
pub enum Written {
    Ok,
    /// The reader left (EPIPE): the run stops quietly.
    ReaderGone,
}

/// Maps a write's result: EPIPE stops the run (quietly), other errors are returned.
pub fn check(result: io::Result<()>, shutdown: &Shutdown) -> anyhow::Result<Written> {
    match result {
        Ok(()) => Ok(Written::Ok),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
            shutdown.stop(StopReason::OutputClosed);
            Ok(Written::ReaderGone)
        }
        Err(err) => Err(anyhow::anyhow!("cannot write results to stdout: {err}")),
    }
}

/// True when a write failed only because the reader of stdout left.
pub fn reader_gone(err: &anyhow::Error) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Makes text safe to print on a terminal or append to a log: every control character (C0
/// such as newline and ESC, DEL, C1) and the Unicode line separators and bidirectional
/// overrides are written as escapes (`\n`, `\x1b`, `\u{9b}`), so a stored target or a server's
/// words can neither start a forged line ("… reporting ok") nor move the cursor or recolour
/// the screen. Every text line netvantage prints goes through here; JSON is escaped by
/// serde_json.
pub fn escape_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if (c as u32) < 0x80 && needs_escape(c) => {
                escaped.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if needs_escape(c) => escaped.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => escaped.push(c),
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// [`escape_line`] for a block of several lines (findings, diagnosis tables): its own line
/// breaks stay, anything else is escaped.
pub fn escape_text(text: &str) -> String {
    text.split('\n')
        .map(escape_line)
        .collect::<Vec<_>>()
        .join("\n")
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_untouched() {
        assert!(matches!(
            escape_line("db1:5432 is down"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_line("evil:1\nweb:443 reporting ok"),
            "evil:1\\nweb:443 reporting ok"
        );
        assert_eq!(escape_line("a\x1b[2Jb\rc\td"), "a\\x1b[2Jb\\rc\\td");
        assert_eq!(escape_line("del\x7f nul\0"), "del\\x7f nul\\x00");
        assert_eq!(escape_line("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(escape_line("rtl\u{202e}txt"), "rtl\\u{202e}txt");
        assert_eq!(escape_line("ünïcødé ok"), "ünïcødé ok");
    }

    #[test]
    fn a_block_keeps_its_own_line_breaks() {
        assert_eq!(escape_text("one\x1b\ntwo\n"), "one\\x1b\ntwo\n");
    }

    proptest::proptest! {
        /// Whatever the input, the output is one line with no control character.
        #[test]
        fn escaped_lines_hold_no_control_character(text in ".*") {
            let escaped = escape_line(&text);
            proptest::prop_assert!(!escaped.chars().any(needs_escape), "{escaped:?}");
        }
    }
}
