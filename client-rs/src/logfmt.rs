//! The shape of the agency's log lines.
//!
//! Every line that reports an action reads
//! `action: NAME | result: success|fail|in_progress | key: value | ...`, and
//! log readers split on `|`. Values that come from outside (file paths,
//! reasons, the central's messages) go through [`clean`] so that they can
//! never add a separator or a line of their own.

use std::borrow::Cow;

/// `text` with `|` turned into `/` and control characters into spaces.
pub fn clean(text: &str) -> Cow<'_, str> {
    if text.chars().any(|c| c == '|' || c.is_control()) {
        Cow::Owned(
            text.chars()
                .map(|c| match c {
                    '|' => '/',
                    c if c.is_control() => ' ',
                    c => c,
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_never_carry_a_separator_or_a_line_break() {
        assert_eq!(clean("plain text"), "plain text");
        assert_eq!(clean("a|b\nc"), "a/b c");
    }
}
