//! A reader for one-section INI files such as the course's `config.ini`,
//! with every line accounted for: a line is blank, a comment, the section
//! header, or `KEY = value` with a known key; anything else is an error
//! naming `FILE:LINE` (pure: text in, keys out).
//!
//! The format is what Python's `configparser` reads by default, which the
//! course's files are written for:
//!
//! - a line whose first non-blank character is `#` or `;` is a comment;
//!   there are no inline comments, so `BETS_FILE = /srv/bets#2.csv` is the
//!   whole path (the `configparser` crate's defaults would cut it at the `#`);
//! - `KEY = value` or `KEY: value` splits at the first `=` or `:`; the key
//!   and the value are trimmed, and the value may be empty;
//! - keys are case-sensitive, as the environment variables of the same
//!   names are;
//! - a leading byte-order mark and `\r\n` line ends are accepted.
//!
//! Errors rather than silence, because a misspelt key would leave its
//! default in force unnoticed (a `WINING_NUMBER` draws with the default
//! winning number): a key above the section header, a section other than
//! the expected one, a key not in the list, a key given twice.

use std::collections::HashMap;

use crate::support::settings::ConfigError;

/// A key's value and the line it is on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub line: usize,
}

/// Reads `text`, the file `file`: its one section `[section]` and the
/// `keys` allowed in it.
pub fn read(
    text: &str,
    file: &str,
    section: &str,
    keys: &[&str],
) -> Result<HashMap<String, Entry>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut in_section = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let error = |why: String| ConfigError(format!("{file}:{line}: {why}"));
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(name) if name == section => in_section = true,
                Some(name) => {
                    return Err(error(format!(
                        "unknown section [{name}]: the settings go under [{section}]"
                    )));
                }
                None => {
                    return Err(error(format!(
                        "{trimmed:?} is not a section header: expected [{section}] alone on its line"
                    )));
                }
            }
            continue;
        }
        let Some(at) = trimmed.find(['=', ':']) else {
            return Err(error(format!(
                "{trimmed:?} is neither KEY = value, a [{section}] header nor a comment (# or ; first)"
            )));
        };
        let key = trimmed[..at].trim_end();
        let value = trimmed[at + 1..].trim_start();
        if key.is_empty() {
            // The value is not repeated: it may be a connection string
            // with a password.
            return Err(error(format!(
                "no key before the {}: expected KEY = value",
                &trimmed[at..=at]
            )));
        }
        if !in_section {
            return Err(error(format!(
                "{key} is above the [{section}] header: keys go under it"
            )));
        }
        if !keys.contains(&key) {
            return Err(error(unknown_key(key, keys)));
        }
        if let Some(first) = entries.get(key) {
            return Err(error(format!(
                "{key} is given again (first on line {})",
                first.line
            )));
        }
        entries.insert(
            key.to_string(),
            Entry {
                value: value.to_string(),
                line,
            },
        );
    }
    Ok(entries)
}

/// The error for a key not in `keys`: the key it was probably meant to be
/// when only its case differs, else the list.
fn unknown_key(key: &str, keys: &[&str]) -> String {
    match keys.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        Some(known) => format!("unknown key {key}: keys are case-sensitive, did you mean {known}?"),
        None => format!("unknown key {key}: expected one of {}", keys.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["SERVER_PORT", "BETS_FILE", "LOGGING_LEVEL"];

    fn read_ini(text: &str) -> Result<HashMap<String, Entry>, ConfigError> {
        read(text, "config.ini", "DEFAULT", KEYS)
    }

    fn value(entries: &HashMap<String, Entry>, key: &str) -> String {
        entries[key].value.clone()
    }

    #[test]
    fn a_hash_or_semicolon_inside_a_value_is_part_of_it() {
        let e =
            read_ini("[DEFAULT]\nBETS_FILE = /srv/bets#2.csv ; kept\nLOGGING_LEVEL=INFO;DEBUG#x\n")
                .unwrap();
        assert_eq!(value(&e, "BETS_FILE"), "/srv/bets#2.csv ; kept");
        assert_eq!(value(&e, "LOGGING_LEVEL"), "INFO;DEBUG#x");
    }

    #[test]
    fn full_line_comments_and_blank_lines_are_skipped_with_their_numbers_counted() {
        let e = read_ini(
            "\u{feff}# a comment\r\n; another\r\n\r\n[DEFAULT]\r\n   # indented\r\n\tSERVER_PORT: 12345 \r\nBETS_FILE =\r\n",
        )
        .unwrap();
        assert_eq!(
            e["SERVER_PORT"],
            Entry {
                value: "12345".into(),
                line: 6
            }
        );
        assert_eq!(value(&e, "BETS_FILE"), "");
        assert_eq!(e.len(), 2);
        assert!(read_ini("").unwrap().is_empty());
        assert!(read_ini("; nothing\n[DEFAULT]\n").unwrap().is_empty());
    }

    #[test]
    fn the_first_equals_or_colon_splits_the_key_from_the_value() {
        let e = read_ini("[DEFAULT]\nBETS_FILE = C:/x=y.csv\nSERVER_PORT: 1=2\n").unwrap();
        assert_eq!(value(&e, "BETS_FILE"), "C:/x=y.csv");
        assert_eq!(value(&e, "SERVER_PORT"), "1=2");
    }

    #[test]
    fn a_key_above_the_section_header_is_an_error_naming_its_line() {
        let err = read_ini("# settings\nSERVER_PORT = 1\n[DEFAULT]\n").unwrap_err();
        assert_eq!(
            err.0,
            "config.ini:2: SERVER_PORT is above the [DEFAULT] header: keys go under it"
        );
        let err = read_ini("SERVER_PORT = 1\n").unwrap_err();
        assert!(
            err.0.starts_with("config.ini:1: SERVER_PORT is above"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_file_and_line() {
        let err = read_ini("[DEFAULT]\nSERVER_PORT = 1\n\nSERVR_PORT = 2\n").unwrap_err();
        assert_eq!(
            err.0,
            "config.ini:4: unknown key SERVR_PORT: expected one of SERVER_PORT, BETS_FILE, LOGGING_LEVEL"
        );
        let err = read(
            "[DEFAULT]\nlogging_level = INFO\n",
            "./config.ini",
            "DEFAULT",
            KEYS,
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            "./config.ini:2: unknown key logging_level: keys are case-sensitive, did you mean LOGGING_LEVEL?"
        );
    }

    #[test]
    fn an_unknown_section_or_a_stray_line_is_an_error_naming_its_line() {
        let err = read_ini("[DEFAULT]\nSERVER_PORT = 1\n[server]\n").unwrap_err();
        assert_eq!(
            err.0,
            "config.ini:3: unknown section [server]: the settings go under [DEFAULT]"
        );
        let err = read_ini("[DEFAULT] # central\n").unwrap_err();
        assert!(
            err.0
                .starts_with("config.ini:1: \"[DEFAULT] # central\" is not a section header"),
            "{err}"
        );
        let err = read_ini("[DEFAULT]\nSERVER_PORT 1\n").unwrap_err();
        assert!(
            err.0
                .starts_with("config.ini:2: \"SERVER_PORT 1\" is neither"),
            "{err}"
        );
        let err = read_ini("[DEFAULT]\n= 1\n").unwrap_err();
        assert_eq!(
            err.0,
            "config.ini:2: no key before the =: expected KEY = value"
        );
    }

    #[test]
    fn a_key_given_twice_is_an_error_naming_both_lines() {
        let err =
            read_ini("[DEFAULT]\nSERVER_PORT = 1\nBETS_FILE = b\nSERVER_PORT = 2\n").unwrap_err();
        assert_eq!(
            err.0,
            "config.ini:4: SERVER_PORT is given again (first on line 2)"
        );
    }

    #[test]
    fn the_section_header_may_repeat() {
        let e = read_ini("[DEFAULT]\nSERVER_PORT = 1\n[DEFAULT]\nBETS_FILE = b\n").unwrap();
        assert_eq!(e.len(), 2);
    }
}
