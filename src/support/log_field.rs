//! A value made safe for a `key: value` field of a log line (pure).
//!
//! Log lines read `action: NAME | result: ... | key: value | ...`, one per
//! line, and `|` appears nowhere but between fields. A value from outside
//! (a path, a host name) may hold a `|`, a line break or another control
//! character; it is percent-encoded, byte by byte of its UTF-8: `|` is
//! `%7C`, a line feed `%0A`, a tab `%09`, and `%` itself `%25`, so that the
//! logged text reads back to the value unambiguously.

use std::borrow::Cow;
use std::fmt::Write;

/// `value` with `%`, `|` and control characters percent-encoded.
pub fn escape(value: &str) -> Cow<'_, str> {
    let needs = |c: char| c == '%' || c == '|' || c.is_control();
    if !value.contains(needs) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    let mut utf8 = [0; 4];
    for c in value.chars() {
        if needs(c) {
            for byte in c.encode_utf8(&mut utf8).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_value_is_kept_as_it_is() {
        assert!(matches!(escape("/srv/bets #2;ñ.csv"), Cow::Borrowed(_)));
        assert_eq!(escape(""), "");
    }

    #[test]
    fn bars_percents_and_control_characters_are_percent_encoded() {
        assert_eq!(escape("a|b"), "a%7Cb");
        assert_eq!(escape("50%"), "50%25");
        assert_eq!(escape("x\ny\r\tz\u{1b}\u{7f}"), "x%0Ay%0D%09z%1B%7F");
        // A C1 control character: both bytes of its UTF-8.
        assert_eq!(escape("a\u{85}b"), "a%C2%85b");
    }
}
