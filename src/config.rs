//! The central's settings: `config.ini` (the course's `[DEFAULT]` keys), then
//! environment variables of the same names, which win (layered by
//! [`crate::support::settings`], shared with the agency's `config.yaml`).
//!
//! Every value is checked here, at start-up, so that a bad one is a clear
//! error naming the key and its source (and exit code 2 in `main`) rather
//! than a surprise later. `config.ini` is read by [`crate::support::ini`]:
//! no inline comments (a `#` or `;` in a value is part of it), and a key
//! that is not one of [`KEYS`], a key above `[DEFAULT]` or another section
//! is an error at `config.ini:LINE`, not a setting silently left at its
//! default. [`Config::describe`] is what the `action: config` log line
//! shows, its values percent-encoded by [`crate::support::log_field`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use log::LevelFilter;

use crate::net::accept::Listen;
use crate::net::transport::TlsFiles;
use crate::store::csv::SyncPolicy;
use crate::store::open::StoreSettings;
use crate::support::log_field::escape;
use crate::support::settings::Setting;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `SERVER_IP`: the address (or host name) to listen on.
    pub ip: String,
    /// `SERVER_PORT`.
    pub port: u16,
    /// `SERVER_LISTEN_BACKLOG`: the listen queue length.
    pub listen_backlog: i32,
    /// `LOGGING_LEVEL`: ERROR, WARN, INFO, DEBUG, TRACE or OFF.
    pub logging_level: LevelFilter,
    /// `AGENCIES`: how many agencies must send DONE before the draw.
    pub agencies: u32,
    /// `BETS_FILE`: where the bets are stored, in the course's CSV format.
    pub bets_file: PathBuf,
    /// `JOURNAL_FILE`: where closed agencies are recorded (default: the
    /// bets file's path with `.journal` appended).
    pub journal_file: PathBuf,
    /// `WINNING_NUMBER`: a bet wins when its number is this.
    pub winning_number: u16,
    /// `PARK_TIMEOUT_MS`: how long a GET_WINNERS with wait=1 waits for the
    /// draw before it is answered NOT_READY.
    pub park_timeout: Duration,
    /// `IDLE_TIMEOUT_MS`: a connection that completes no frame and takes no
    /// bytes of its answers for this long is closed (idle or slowloris).
    pub idle_timeout: Duration,
    /// `MAX_CONNECTIONS`: connections beyond this are refused at accept.
    pub max_connections: usize,
    /// `MAX_PARKED_PER_AGENCY`: GET_WINNERS parked at once for one agency;
    /// past it a request is answered NOT_READY at once.
    pub max_parked_per_agency: usize,
    /// `SYNC`: `always` (default) or `never`.
    pub sync: SyncPolicy,
    /// `TLS_CERT`, `TLS_KEY`, `TLS_CLIENT_CA`: all three, and only mutual
    /// TLS is served; none, and plain TCP.
    pub tls: Option<TlsFiles>,
    /// `TLS_HANDSHAKE_TIMEOUT_MS`: a TLS connection whose handshake has not
    /// completed this long after it was accepted is closed.
    pub tls_handshake_timeout: Duration,
    /// `STORAGE`: `csv` (default: `BETS_FILE` and `JOURNAL_FILE`) or a
    /// PostgreSQL connection string (`postgres://` or `postgresql://`).
    pub storage: Storage,
    /// `METRICS_PORT`: the port of `/metrics`, `/status` and the page, on
    /// `SERVER_IP`; none (the default), and nothing is served.
    pub metrics_port: Option<u16>,
}

/// Which backend keeps the bets (`STORAGE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    Csv,
    /// The connection string as given (it may hold a password).
    Postgres(String),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ip: "0.0.0.0".into(),
            port: 12345,
            listen_backlog: 1024,
            logging_level: LevelFilter::Info,
            agencies: 5,
            bets_file: PathBuf::from("./bets.csv"),
            journal_file: PathBuf::from("./bets.csv.journal"),
            winning_number: 7574,
            park_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 20_000,
            max_parked_per_agency: 4,
            sync: SyncPolicy::Always,
            tls: None,
            tls_handshake_timeout: Duration::from_secs(5),
            storage: Storage::Csv,
            metrics_port: None,
        }
    }
}

pub use crate::support::settings::ConfigError;

/// The keys read from `config.ini` and the environment, in the order shown.
pub const KEYS: &[&str] = &[
    "SERVER_IP",
    "SERVER_PORT",
    "SERVER_LISTEN_BACKLOG",
    "LOGGING_LEVEL",
    "AGENCIES",
    "BETS_FILE",
    "JOURNAL_FILE",
    "WINNING_NUMBER",
    "PARK_TIMEOUT_MS",
    "IDLE_TIMEOUT_MS",
    "MAX_CONNECTIONS",
    "MAX_PARKED_PER_AGENCY",
    "SYNC",
    "TLS_CERT",
    "TLS_KEY",
    "TLS_CLIENT_CA",
    "TLS_HANDSHAKE_TIMEOUT_MS",
    "STORAGE",
    "METRICS_PORT",
];

impl Config {
    /// Reads `dir/config.ini` if it exists, then the environment.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let ini_path = dir.join("config.ini");
        let ini = if ini_path.exists() {
            let text = std::fs::read_to_string(&ini_path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", ini_path.display())))?;
            Some(text)
        } else {
            None
        };
        Config::from_sources(ini.as_deref(), |key| std::env::var(key).ok())
    }

    /// Builds the config from the text of a `config.ini` (if any) and an
    /// environment lookup; the environment wins over the file.
    pub fn from_sources(
        ini: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = match ini {
            Some(text) => crate::support::ini::read(text, "config.ini", "DEFAULT", KEYS)?,
            None => HashMap::new(),
        };

        let mut config = Config::default();
        let get = |key: &str| {
            // `KEY in config.ini:LINE`, or `KEY in the environment`.
            let name = file
                .get(key)
                .map_or_else(String::new, |e| format!("config.ini:{}", e.line));
            Setting::layered(key, &env, key, &name, || {
                file.get(key).map(|e| e.value.clone())
            })
        };
        if let Some(setting) = get("SERVER_IP") {
            let v = setting.value.trim();
            if v.is_empty() {
                return Err(setting.error("expected an address or host name"));
            }
            config.ip = v.to_string();
        }
        set(&get, "SERVER_PORT", &mut config.port, |p| *p > 0)?;
        set(
            &get,
            "SERVER_LISTEN_BACKLOG",
            &mut config.listen_backlog,
            |b| *b > 0,
        )?;
        if let Some(setting) = get("LOGGING_LEVEL") {
            config.logging_level =
                setting.parse("expected ERROR, WARN, INFO, DEBUG, TRACE or OFF", |_| true)?;
        }
        // 0 is the course's "central alone" deployment: nobody to wait
        // for, so the draw of no bets is done at start.
        set(&get, "AGENCIES", &mut config.agencies, |_| true)?;
        if let Some(setting) = get("BETS_FILE") {
            let v = setting.value.trim();
            if v.is_empty() {
                return Err(setting.error("expected a file path"));
            }
            config.bets_file = PathBuf::from(v);
        }
        config.journal_file = match get("JOURNAL_FILE") {
            Some(setting) if !setting.value.trim().is_empty() => {
                PathBuf::from(setting.value.trim())
            }
            Some(setting) => return Err(setting.error("expected a file path")),
            None => {
                let mut name = config.bets_file.clone().into_os_string();
                name.push(".journal");
                PathBuf::from(name)
            }
        };
        set(&get, "WINNING_NUMBER", &mut config.winning_number, |n| {
            *n <= 9999
        })?;
        let mut ms = config.park_timeout.as_millis() as u64;
        set(&get, "PARK_TIMEOUT_MS", &mut ms, |n| *n > 0)?;
        config.park_timeout = Duration::from_millis(ms);
        let mut ms = config.idle_timeout.as_millis() as u64;
        set(&get, "IDLE_TIMEOUT_MS", &mut ms, |n| *n > 0)?;
        config.idle_timeout = Duration::from_millis(ms);
        set(&get, "MAX_CONNECTIONS", &mut config.max_connections, |n| {
            *n > 0
        })?;
        set(
            &get,
            "MAX_PARKED_PER_AGENCY",
            &mut config.max_parked_per_agency,
            |n| *n > 0,
        )?;
        if let Some(setting) = get("SYNC") {
            config.sync = match setting.value.trim().to_ascii_lowercase().as_str() {
                "always" => SyncPolicy::Always,
                "never" => SyncPolicy::Never,
                _ => return Err(setting.error("expected always or never")),
            };
        }
        let tls: Vec<Option<PathBuf>> = ["TLS_CERT", "TLS_KEY", "TLS_CLIENT_CA"]
            .iter()
            .map(|key| match get(key) {
                Some(setting) if setting.value.trim().is_empty() => {
                    Err(setting.error("expected a PEM file path"))
                }
                Some(setting) => Ok(Some(PathBuf::from(setting.value.trim()))),
                None => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        config.tls = match &tls[..] {
            [Some(cert), Some(key), Some(client_ca)] => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: client_ca.clone(),
            }),
            [None, None, None] => None,
            _ => {
                let missing: Vec<&str> = ["TLS_CERT", "TLS_KEY", "TLS_CLIENT_CA"]
                    .into_iter()
                    .zip(&tls)
                    .filter_map(|(key, v)| v.is_none().then_some(key))
                    .collect();
                return Err(ConfigError(format!(
                    "TLS_CERT, TLS_KEY and TLS_CLIENT_CA go together (all three for mutual TLS, none for plain TCP): {} missing",
                    missing.join(" and ")
                )));
            }
        };
        let mut ms = config.tls_handshake_timeout.as_millis() as u64;
        set(&get, "TLS_HANDSHAKE_TIMEOUT_MS", &mut ms, |n| *n > 0)?;
        config.tls_handshake_timeout = Duration::from_millis(ms);
        if let Some(setting) = get("STORAGE") {
            config.storage = storage(&setting)?;
        }
        if let Some(setting) = get("METRICS_PORT") {
            let port = setting.parse(expectation("METRICS_PORT"), |p: &u16| *p > 0)?;
            config.metrics_port = Some(port);
        }
        Ok(config)
    }

    /// Where and how the listener listens.
    pub fn listen(&self) -> Listen {
        Listen {
            ip: self.ip.clone(),
            port: self.port,
            backlog: self.listen_backlog,
            max_connections: self.max_connections,
        }
    }

    /// Where the bets are kept.
    pub fn store(&self) -> StoreSettings {
        match &self.storage {
            Storage::Csv => StoreSettings::Csv {
                bets_file: self.bets_file.clone(),
                journal_file: self.journal_file.clone(),
                sync: self.sync,
            },
            Storage::Postgres(url) => StoreSettings::Postgres { url: url.clone() },
        }
    }

    /// `STORAGE` as the `config` line shows it: no password, no `|`.
    fn storage_shown(&self) -> String {
        match &self.storage {
            Storage::Csv => "csv".into(),
            Storage::Postgres(url) => crate::store::postgres::parse_settings(url)
                .map(|c| crate::store::postgres::location_of(&c))
                .unwrap_or_else(|_| "postgres".into()),
        }
    }

    /// What the listener serves: `mutual` (TLS, client certificates
    /// required) or `off` (plain TCP), for the `config` and `escuchar` lines.
    pub fn tls_mode(&self) -> &'static str {
        if self.tls.is_some() { "mutual" } else { "off" }
    }

    /// The effective settings as `key: value` pairs for the `action: config`
    /// line; the values from outside (addresses, paths) percent-encoded
    /// where they hold a `|`, a `%` or a control character.
    pub fn describe(&self) -> String {
        let path = |p: Option<&PathBuf>| {
            p.map_or("-".to_string(), |p| {
                escape(&p.display().to_string()).into_owned()
            })
        };
        let tls = self.tls.as_ref();
        format!(
            "server_ip: {} | server_port: {} | listen_backlog: {} | logging_level: {} | agencies: {} | bets_file: {} | journal_file: {} | winning_number: {} | park_timeout_ms: {} | idle_timeout_ms: {} | max_connections: {} | max_parked_per_agency: {} | sync: {} | tls: {} | tls_cert: {} | tls_key: {} | tls_client_ca: {} | tls_handshake_timeout_ms: {} | storage: {} | metrics_port: {}",
            escape(&self.ip),
            self.port,
            self.listen_backlog,
            self.logging_level,
            self.agencies,
            path(Some(&self.bets_file)),
            path(Some(&self.journal_file)),
            self.winning_number,
            self.park_timeout.as_millis(),
            self.idle_timeout.as_millis(),
            self.max_connections,
            self.max_parked_per_agency,
            match self.sync {
                SyncPolicy::Always => "always",
                SyncPolicy::Never => "never",
            },
            self.tls_mode(),
            path(tls.map(|t| &t.cert)),
            path(tls.map(|t| &t.key)),
            path(tls.map(|t| &t.client_ca)),
            self.tls_handshake_timeout.as_millis(),
            escape(&self.storage_shown()),
            self.metrics_port
                .map_or_else(|| "-".to_string(), |p| p.to_string()),
        )
    }
}

/// Parses `key` if present and checks it with `ok`; the error names the
/// key, its source and the value.
fn set<T: FromStr>(
    get: &impl Fn(&str) -> Option<Setting>,
    key: &str,
    slot: &mut T,
    ok: impl Fn(&T) -> bool,
) -> Result<(), ConfigError> {
    if let Some(setting) = get(key) {
        *slot = setting.parse(expectation(key), ok)?;
    }
    Ok(())
}

/// `STORAGE`: `csv` or a PostgreSQL connection string. The errors never
/// repeat a connection string (it may hold a password).
fn storage(setting: &Setting) -> Result<Storage, ConfigError> {
    let v = setting.value.trim();
    if v.eq_ignore_ascii_case("csv") {
        return Ok(Storage::Csv);
    }
    if !(v.starts_with("postgres://") || v.starts_with("postgresql://")) {
        return Err(ConfigError(format!(
            "{} is not csv nor a PostgreSQL connection string: expected csv (the default, BETS_FILE) \
             or postgres://user@host:port/db (several hosts: postgres://user@h1:5432,h2:5432/db?target_session_attrs=read-write)",
            setting.from
        )));
    }
    crate::store::postgres::parse_settings(v)
        .map_err(|e| ConfigError(format!("{}: {e}", setting.from)))?;
    Ok(Storage::Postgres(v.to_string()))
}

fn expectation(key: &str) -> &'static str {
    match key {
        "SERVER_PORT" | "METRICS_PORT" => "expected a port number from 1 to 65535",
        "WINNING_NUMBER" => "expected a number from 0 to 9999",
        _ => "expected a whole number greater than 0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::support::settings::env_of as env;

    const COURSE_INI: &str = "[DEFAULT]\nSERVER_PORT = 12345\nSERVER_IP = server\nSERVER_LISTEN_BACKLOG = 5\nLOGGING_LEVEL = INFO\n";

    #[test]
    fn the_course_config_ini_is_read() {
        let c = Config::from_sources(Some(COURSE_INI), env(&[])).unwrap();
        assert_eq!(c.ip, "server");
        assert_eq!(c.port, 12345);
        assert_eq!(c.listen_backlog, 5);
        assert_eq!(c.logging_level, LevelFilter::Info);
        assert_eq!(c.agencies, 5);
        assert_eq!(c.winning_number, 7574);
        assert_eq!(c.journal_file, PathBuf::from("./bets.csv.journal"));
    }

    #[test]
    fn zero_agencies_is_the_central_alone() {
        let c = Config::from_sources(None, env(&[("AGENCIES", "0")])).unwrap();
        assert_eq!(c.agencies, 0);
    }

    #[test]
    fn environment_variables_override_the_file() {
        let c = Config::from_sources(
            Some(COURSE_INI),
            env(&[
                ("SERVER_PORT", "9000"),
                ("LOGGING_LEVEL", "debug"),
                ("AGENCIES", "20"),
                ("BETS_FILE", "/tmp/x.csv"),
                ("WINNING_NUMBER", "0"),
                ("SYNC", "never"),
            ]),
        )
        .unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.logging_level, LevelFilter::Debug);
        assert_eq!(c.agencies, 20);
        assert_eq!(c.bets_file, PathBuf::from("/tmp/x.csv"));
        assert_eq!(c.journal_file, PathBuf::from("/tmp/x.csv.journal"));
        assert_eq!(c.winning_number, 0);
        assert_eq!(c.sync, SyncPolicy::Never);
    }

    #[test]
    fn bad_values_are_errors_that_name_the_key_and_source() {
        for (key, value) in [
            ("SERVER_PORT", "http"),
            ("SERVER_PORT", "70000"),
            ("SERVER_PORT", "0"),
            ("AGENCIES", "-3"),
            ("WINNING_NUMBER", "10000"),
            ("LOGGING_LEVEL", "LOUD"),
            ("PARK_TIMEOUT_MS", "soon"),
            ("MAX_PARKED_PER_AGENCY", "0"),
            ("SYNC", "sometimes"),
        ] {
            let pairs = [(key, value)];
            let err = Config::from_sources(None, env(&pairs)).unwrap_err();
            assert!(
                err.0.contains(key) && err.0.contains("environment"),
                "{err}"
            );
        }
        let err = Config::from_sources(Some("[DEFAULT]\nSERVER_PORT = x\n"), env(&[])).unwrap_err();
        assert!(err.0.contains("config.ini"), "{err}");
    }

    #[test]
    fn the_described_settings_hold_no_bar_but_the_separators() {
        // One pair per key, and `tls:` (the mode) besides.
        let d = Config::default().describe();
        assert_eq!(d.matches('|').count(), KEYS.len());
        assert!(d.contains("| tls: off |"), "{d}");
    }

    #[test]
    fn a_hash_or_semicolon_inside_a_value_is_part_of_the_value() {
        let ini = "# the central\n[DEFAULT]\n; full-line comments stay comments\n  # indented too\nBETS_FILE = /srv/bets#2.csv\nJOURNAL_FILE = /srv/closed;1 # not a comment\n";
        let c = Config::from_sources(Some(ini), env(&[])).unwrap();
        assert_eq!(c.bets_file, PathBuf::from("/srv/bets#2.csv"));
        assert_eq!(
            c.journal_file,
            PathBuf::from("/srv/closed;1 # not a comment")
        );
        // The environment's value was always taken whole.
        let c = Config::from_sources(Some(ini), env(&[("BETS_FILE", "/srv/b;#.csv")])).unwrap();
        assert_eq!(c.bets_file, PathBuf::from("/srv/b;#.csv"));
    }

    #[test]
    fn a_key_above_the_default_section_is_an_error_naming_its_line() {
        let err = Config::from_sources(
            Some("; settings\nSERVER_PORT = 9000\n[DEFAULT]\nSERVER_IP = 127.0.0.1\n"),
            env(&[]),
        )
        .unwrap_err();
        assert!(
            err.0.starts_with("config.ini:2: ")
                && err.0.contains("SERVER_PORT")
                && err.0.contains("[DEFAULT]"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_or_section_is_an_error_naming_the_file_and_line() {
        let err = Config::from_sources(
            Some("[DEFAULT]\nSERVER_PORT = 12345\nWINING_NUMBER = 1234\n"),
            env(&[]),
        )
        .unwrap_err();
        assert!(
            err.0.starts_with("config.ini:3: unknown key WINING_NUMBER"),
            "{err}"
        );
        let err =
            Config::from_sources(Some("[DEFAULT]\nserver_port = 9000\n"), env(&[])).unwrap_err();
        assert!(
            err.0.starts_with("config.ini:2: unknown key server_port")
                && err.0.contains("SERVER_PORT"),
            "{err}"
        );
        let err = Config::from_sources(
            Some("[DEFAULT]\nSERVER_PORT = 12345\n\n[server]\nSERVER_IP = 1.2.3.4\n"),
            env(&[]),
        )
        .unwrap_err();
        assert!(
            err.0.starts_with("config.ini:4: unknown section [server]"),
            "{err}"
        );
        let err = Config::from_sources(
            Some("[DEFAULT]\nSERVER_PORT = 1\nSERVER_PORT = 2\n"),
            env(&[]),
        )
        .unwrap_err();
        assert!(
            err.0.starts_with("config.ini:3: ") && err.0.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn the_repository_config_ini_is_read_without_error() {
        let text = include_str!("../compose/server/config.ini");
        let c = Config::from_sources(Some(text), env(&[])).unwrap();
        assert_eq!(c.port, 12345);
        assert_eq!(c.listen_backlog, 128);
    }

    #[test]
    fn the_described_settings_escape_bars_and_control_characters() {
        let c = Config::from_sources(
            Some("[DEFAULT]\nBETS_FILE = /srv/a|b%.csv\n"),
            env(&[("JOURNAL_FILE", "/srv/j\nx\t|"), ("SERVER_IP", "host|name")]),
        )
        .unwrap();
        assert_eq!(c.bets_file, PathBuf::from("/srv/a|b%.csv"));
        let d = c.describe();
        assert_eq!(d.matches('|').count(), KEYS.len(), "{d}");
        assert!(!d.contains('\n') && !d.contains('\t'), "{d}");
        assert!(d.starts_with("server_ip: host%7Cname |"), "{d}");
        assert!(d.contains("| bets_file: /srv/a%7Cb%25.csv |"), "{d}");
        assert!(d.contains("| journal_file: /srv/j%0Ax%09%7C |"), "{d}");
    }

    #[test]
    fn the_three_tls_files_together_turn_on_mutual_tls() {
        let c = Config::from_sources(
            Some("[DEFAULT]\nTLS_CERT = server.pem\nTLS_KEY = server.key\n"),
            env(&[
                ("TLS_CLIENT_CA", "/certs/ca.pem"),
                ("TLS_HANDSHAKE_TIMEOUT_MS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "server.pem".into(),
                key: "server.key".into(),
                client_ca: "/certs/ca.pem".into(),
            })
        );
        assert_eq!(c.tls_handshake_timeout, Duration::from_millis(250));
        assert_eq!(c.tls_mode(), "mutual");
        assert!(
            c.describe()
                .contains("| tls: mutual | tls_cert: server.pem | tls_key: server.key | tls_client_ca: /certs/ca.pem | tls_handshake_timeout_ms: 250"),
            "{}",
            c.describe()
        );
        assert_eq!(Config::default().tls, None);
    }

    #[test]
    fn storage_is_csv_unless_a_postgres_connection_string_is_given() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(c.storage, Storage::Csv);
        assert!(matches!(c.store(), StoreSettings::Csv { .. }));
        let c = Config::from_sources(Some("[DEFAULT]\nSTORAGE = csv\n"), env(&[])).unwrap();
        assert_eq!(c.storage, Storage::Csv);
        let url =
            "postgresql://lot:pw@10.0.0.1:5432,10.0.0.2:5432/bets?target_session_attrs=read-write";
        let c = Config::from_sources(Some("[DEFAULT]\nSTORAGE = csv\n"), env(&[("STORAGE", url)]))
            .unwrap();
        assert_eq!(c.store(), StoreSettings::Postgres { url: url.into() });
        let d = c.describe();
        assert!(
            d.contains(
                "| storage: postgresql://lot@10.0.0.1:5432,10.0.0.2:5432/bets | metrics_port: -"
            ),
            "{d}"
        );
        assert!(!d.contains("pw"), "{d}");
        let c = Config::from_sources(Some("[DEFAULT]\nSTORAGE = postgres://u@h/db\n"), env(&[]))
            .unwrap();
        assert_eq!(c.storage, Storage::Postgres("postgres://u@h/db".into()));
        for bad in [
            "mysql://u:pw@h/db",
            "",
            "postgres://u:pw@h/db?sslmode=maybe",
        ] {
            let err = Config::from_sources(None, env(&[("STORAGE", bad)])).unwrap_err();
            assert!(
                err.0.contains("STORAGE") && err.0.contains("environment"),
                "{err}"
            );
            assert!(!err.0.contains("pw"), "{err}");
        }
    }

    #[test]
    fn metrics_are_off_unless_a_metrics_port_is_given() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(c.metrics_port, None);
        assert!(
            c.describe().ends_with("| metrics_port: -"),
            "{}",
            c.describe()
        );
        let c = Config::from_sources(Some("[DEFAULT]\nMETRICS_PORT = 9100\n"), env(&[])).unwrap();
        assert_eq!(c.metrics_port, Some(9100));
        assert!(c.describe().ends_with("| metrics_port: 9100"));
        let c = Config::from_sources(
            Some("[DEFAULT]\nMETRICS_PORT = 9100\n"),
            env(&[("METRICS_PORT", "9200")]),
        )
        .unwrap();
        assert_eq!(c.metrics_port, Some(9200));
        for bad in ["0", "http", "70000"] {
            let err = Config::from_sources(None, env(&[("METRICS_PORT", bad)])).unwrap_err();
            assert!(err.0.contains("METRICS_PORT"), "{err}");
        }
    }

    #[test]
    fn a_partial_set_of_tls_files_is_an_error_naming_what_is_missing() {
        let err = Config::from_sources(
            None,
            env(&[("TLS_CERT", "server.pem"), ("TLS_CLIENT_CA", "ca.pem")]),
        )
        .unwrap_err();
        assert!(err.0.contains("TLS_KEY missing"), "{err}");
        let err = Config::from_sources(None, env(&[("TLS_KEY", "server.key")])).unwrap_err();
        assert!(
            err.0.contains("TLS_CERT and TLS_CLIENT_CA missing"),
            "{err}"
        );
        let err = Config::from_sources(
            None,
            env(&[("TLS_CERT", " "), ("TLS_KEY", "k"), ("TLS_CLIENT_CA", "c")]),
        )
        .unwrap_err();
        assert!(
            err.0
                .contains("TLS_CERT in the environment is \" \": expected a PEM file path"),
            "{err}"
        );
        let err =
            Config::from_sources(None, env(&[("TLS_HANDSHAKE_TIMEOUT_MS", "0")])).unwrap_err();
        assert!(err.0.contains("TLS_HANDSHAKE_TIMEOUT_MS"), "{err}");
    }
}
