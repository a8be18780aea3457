//! Settings layered from a configuration file and the environment, which
//! wins; shared by the central's `config.ini` and the agency's
//! `config.yaml` readers.
//!
//! Every value keeps where it came from, so that a bad one is an error
//! naming the key, its source and the value: `SERVER_PORT in the
//! environment is "http": expected ...`, `batch.maxAmount in config.yaml
//! is "0": expected ...`.

use std::fmt;
use std::str::FromStr;

/// A setting that could not be used, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// One setting's text as read, and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    /// `VAR in the environment` or `key in FILE`.
    pub from: String,
}

impl Setting {
    /// The environment's `var` if it is set, else `file_key` of the file
    /// named `file_name` (looked up only then).
    pub fn layered(
        var: &str,
        env: &impl Fn(&str) -> Option<String>,
        file_key: &str,
        file_name: &str,
        file: impl FnOnce() -> Option<String>,
    ) -> Option<Setting> {
        match env(var) {
            Some(value) => Some(Setting {
                value,
                from: format!("{var} in the environment"),
            }),
            None => file().map(|value| Setting {
                value,
                from: format!("{file_key} in {file_name}"),
            }),
        }
    }

    /// The error for this value: what was `expected` instead.
    pub fn error(&self, expected: &str) -> ConfigError {
        ConfigError(format!("{} is {:?}: {expected}", self.from, self.value))
    }

    /// The value (trimmed) parsed as `T` and accepted by `ok`.
    pub fn parse<T: FromStr>(
        &self,
        expected: &str,
        ok: impl Fn(&T) -> bool,
    ) -> Result<T, ConfigError> {
        match self.value.trim().parse::<T>() {
            Ok(v) if ok(&v) => Ok(v),
            _ => Err(self.error(expected)),
        }
    }
}

/// An environment made of `pairs`, for tests of the readers.
pub fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |key| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_and_the_file_is_asked_only_without_it() {
        let env = env_of(&[("CLI_ID", "7")]);
        let from_env = Setting::layered("CLI_ID", &env, "id", "config.yaml", || {
            panic!("the file is not asked")
        });
        assert_eq!(from_env.unwrap().from, "CLI_ID in the environment");
        let from_file = Setting::layered("CLI_X", &env, "x", "config.yaml", || Some("1".into()));
        assert_eq!(from_file.unwrap().from, "x in config.yaml");
        assert_eq!(
            Setting::layered("CLI_X", &env, "x", "config.yaml", || None),
            None
        );
    }

    #[test]
    fn a_bad_value_names_its_key_source_and_value() {
        let s = Setting {
            value: " 0 ".into(),
            from: "SERVER_PORT in the environment".into(),
        };
        let err = s.parse::<u16>("expected a port", |p| *p > 0).unwrap_err();
        assert_eq!(
            err.0,
            "SERVER_PORT in the environment is \" 0 \": expected a port"
        );
        assert_eq!(s.parse::<u16>("", |_| true), Ok(0));
    }
}
