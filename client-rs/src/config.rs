//! The agency's settings: `config.yaml` (the course's keys), then `CLI_*`
//! environment variables, which win (the layering and its errors are
//! `lottery_proto::support::settings`, shared with the central's `config.ini`).
//!
//! Every value is checked here, at start-up, so that a bad one is a clear
//! error naming the key, its source and the value (exit code 2 in `main`)
//! rather than a surprise halfway through a run. The course's
//! `loop.period` paces the requests; its `loop.amount` has no meaning for
//! an agency that sends a file, and is ignored. [`Config::describe`] is
//! what the `action: config` log line shows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;
use lottery_proto::support::settings::Setting;
use serde::Deserialize;

use crate::logfmt::clean;

/// `batch.maxAmount` when neither the file nor the environment sets it.
pub const DEFAULT_BATCH_MAX_AMOUNT: usize = 100;
/// Batches in flight when `batch.window` is not set. The central fsyncs
/// once per loop turn before it ACKs, so the window is how many batches share
/// one fsync: on one agency with a million bets, 1 took 26 s, 4 took 9.5 s
/// and 16 took 3-4 s (128 kB in flight at most).
pub const DEFAULT_WINDOW: usize = 16;
/// More batches in flight than this gain nothing and only delay the
/// agency's view of what the central stored.
pub const MAX_WINDOW: usize = 1024;
/// How long the agency keeps trying to reach the central without an answer.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_SERVER_ADDRESS: &str = "127.0.0.1:12345";
/// How many `ERROR STORAGE` in a row (no useful answer between them) one
/// central may give before an agency with several addresses moves on.
pub const DEFAULT_STORAGE_ERRORS: u32 = 3;
/// The most `server.storageErrors` may be: a bound, not a way to stay forever.
pub const MAX_STORAGE_ERRORS: u32 = 1000;
/// How often, off a terminal, the agency logs how far it is (`progreso`).
pub const DEFAULT_PROGRESS_PERIOD: Duration = Duration::from_secs(5);
/// How long the agency waits for a reply before it takes the connection
/// for dead (a half-open TCP connection or a wedged central never says so).
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The central's default `PARK_TIMEOUT_MS`: a parked `GET_WINNERS` is
/// answered within it, so it waits this plus the reply timeout.
pub const DEFAULT_PARK_TIMEOUT: Duration = Duration::from_secs(30);

/// How the agency asks for its winners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WinnersMode {
    /// `GET_WINNERS wait=1`: the central parks the request until the draw.
    Wait,
    /// `GET_WINNERS wait=0` every [`crate::agency::POLL_PERIOD`] until the draw.
    Poll,
}

/// Where the agency's bets come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BetSource {
    /// The CSV file `nombre,apellido,documento,nacimiento,numero`.
    File(PathBuf),
    /// The one bet given by `NOMBRE`, `APELLIDO`, `DOCUMENTO`, `NACIMIENTO`,
    /// `NUMERO`, in that order.
    Single([String; 5]),
}

/// The environment variables of the single-bet mode, in row order.
pub const SINGLE_BET_VARS: [&str; 5] = ["NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO"];

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `id` / `CLI_ID`: this agency's number at the central (required).
    pub id: u32,
    /// `server.address` / `CLI_SERVER_ADDRESS`: `host:port[,host:port...]`,
    /// the central's addresses in the order they are tried (see `centrals`).
    pub server_addresses: Vec<String>,
    /// `server.storageErrors` / `CLI_STORAGE_ERRORS`: how many `ERROR
    /// STORAGE` in a row from one central before moving to the next address.
    pub storage_errors: u32,
    /// `batch.maxAmount` / `CLI_BATCH_MAXAMOUNT`: bets per BATCH.
    pub batch_max_amount: usize,
    /// `batch.window` / `CLI_WINDOW`: batches sent before their ACKs arrive.
    pub window: usize,
    /// `server.connectTimeout` / `CLI_CONNECT_TIMEOUT`: how long to keep
    /// reconnecting without a useful answer before giving up.
    pub connect_timeout: Duration,
    /// `server.replyTimeout` / `CLI_REPLY_TIMEOUT`: the longest wait for a
    /// reply; past it the connection is dropped and the agency reconnects.
    pub reply_timeout: Duration,
    /// `server.parkTimeout` / `CLI_PARK_TIMEOUT`: the central's park
    /// timeout; a parked `GET_WINNERS` may wait this plus `reply_timeout`.
    pub park_timeout: Duration,
    /// `winners.mode` / `CLI_WINNERS_MODE`: `wait` or `poll`.
    pub winners_mode: WinnersMode,
    /// `log.level` / `CLI_LOG_LEVEL`.
    pub log_level: LevelFilter,
    /// `log.progressPeriod` / `CLI_PROGRESS_PERIOD`: off a terminal, how
    /// often the `progreso` line is logged while bets are being sent.
    pub progress_period: Duration,
    /// `loop.period` / `CLI_LOOP_PERIOD`: the course's pause between two
    /// steps (batches, DONE, the winners question and their report; see
    /// `pacing`); with one, batches go one at a time. `None`: no pause.
    pub loop_period: Option<Duration>,
    /// `data.file` / `CLI_DATA_FILE`, or the single bet of the environment.
    pub bets: BetSource,
    /// `tls.ca`, `tls.cert`, `tls.key` / `CLI_TLS_CA`, `CLI_TLS_CERT`,
    /// `CLI_TLS_KEY`: all three for mutual TLS, none for plain TCP.
    pub tls: Option<TlsFiles>,
}

/// The PEM files of mutual TLS; read (and checked against the agency's id)
/// by `transport::Tls::load`, not here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA the central's certificate must chain to.
    pub ca: PathBuf,
    /// This agency's certificate (subject CN `agency-{id}`).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// The TLS keys, in the order they are reported.
const TLS_KEYS: [(&str, &str); 3] = [
    ("tls.ca", "CLI_TLS_CA"),
    ("tls.cert", "CLI_TLS_CERT"),
    ("tls.key", "CLI_TLS_KEY"),
];

pub use lottery_proto::support::settings::ConfigError;

/// The YAML keys and the variables that override them.
const KEYS: &[(&str, &str)] = &[
    ("id", "CLI_ID"),
    ("server.address", "CLI_SERVER_ADDRESS"),
    ("server.storageErrors", "CLI_STORAGE_ERRORS"),
    ("batch.maxAmount", "CLI_BATCH_MAXAMOUNT"),
    ("batch.window", "CLI_WINDOW"),
    ("server.connectTimeout", "CLI_CONNECT_TIMEOUT"),
    ("server.replyTimeout", "CLI_REPLY_TIMEOUT"),
    ("server.parkTimeout", "CLI_PARK_TIMEOUT"),
    ("winners.mode", "CLI_WINNERS_MODE"),
    ("log.level", "CLI_LOG_LEVEL"),
    ("log.progressPeriod", "CLI_PROGRESS_PERIOD"),
    ("loop.period", "CLI_LOOP_PERIOD"),
    ("data.file", "CLI_DATA_FILE"),
    ("tls.ca", "CLI_TLS_CA"),
    ("tls.cert", "CLI_TLS_CERT"),
    ("tls.key", "CLI_TLS_KEY"),
];

/// A YAML scalar of any type: every value is read as text so that the
/// file and the environment share one parser and one error message.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s,
        }
    }
}

/// The shape of `config.yaml`; serde skips the keys not named here.
#[derive(Deserialize, Default)]
struct YamlFile {
    id: Option<Scalar>,
    server: Option<YamlServer>,
    batch: Option<YamlBatch>,
    winners: Option<YamlWinners>,
    log: Option<YamlLog>,
    data: Option<YamlData>,
    #[serde(rename = "loop")]
    loop_: Option<YamlLoop>,
    tls: Option<YamlTls>,
}

#[derive(Deserialize)]
struct YamlTls {
    ca: Option<Scalar>,
    cert: Option<Scalar>,
    key: Option<Scalar>,
}

/// The course's `loop` section; `loop.amount` is ignored.
#[derive(Deserialize)]
struct YamlLoop {
    period: Option<Scalar>,
}

#[derive(Deserialize)]
struct YamlServer {
    address: Option<Scalar>,
    #[serde(rename = "connectTimeout")]
    connect_timeout: Option<Scalar>,
    #[serde(rename = "replyTimeout")]
    reply_timeout: Option<Scalar>,
    #[serde(rename = "parkTimeout")]
    park_timeout: Option<Scalar>,
    #[serde(rename = "storageErrors")]
    storage_errors: Option<Scalar>,
}

#[derive(Deserialize)]
struct YamlBatch {
    #[serde(rename = "maxAmount")]
    max_amount: Option<Scalar>,
    window: Option<Scalar>,
}

#[derive(Deserialize)]
struct YamlWinners {
    mode: Option<Scalar>,
}

#[derive(Deserialize)]
struct YamlLog {
    level: Option<Scalar>,
    #[serde(rename = "progressPeriod")]
    progress_period: Option<Scalar>,
}

#[derive(Deserialize)]
struct YamlData {
    file: Option<Scalar>,
}

impl YamlFile {
    /// The file's value for a key of [`KEYS`], as text.
    fn take(&mut self, key: &str) -> Option<String> {
        let scalar = match key {
            "id" => self.id.take(),
            "server.address" => self.server.as_mut()?.address.take(),
            "server.connectTimeout" => self.server.as_mut()?.connect_timeout.take(),
            "server.replyTimeout" => self.server.as_mut()?.reply_timeout.take(),
            "server.parkTimeout" => self.server.as_mut()?.park_timeout.take(),
            "server.storageErrors" => self.server.as_mut()?.storage_errors.take(),
            "batch.maxAmount" => self.batch.as_mut()?.max_amount.take(),
            "batch.window" => self.batch.as_mut()?.window.take(),
            "winners.mode" => self.winners.as_mut()?.mode.take(),
            "log.level" => self.log.as_mut()?.level.take(),
            "log.progressPeriod" => self.log.as_mut()?.progress_period.take(),
            "data.file" => self.data.as_mut()?.file.take(),
            "loop.period" => self.loop_.as_mut()?.period.take(),
            "tls.ca" => self.tls.as_mut()?.ca.take(),
            "tls.cert" => self.tls.as_mut()?.cert.take(),
            "tls.key" => self.tls.as_mut()?.key.take(),
            _ => None,
        };
        scalar.map(Scalar::into_text)
    }
}

impl Config {
    /// Reads `dir/config.yaml` if it exists, then the process environment.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join("config.yaml");
        let yaml = if path.exists() {
            Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?,
            )
        } else {
            None
        };
        Config::from_sources(yaml.as_deref(), |key| std::env::var(key).ok())
    }

    /// Builds the config from the text of a `config.yaml` (if any) and an
    /// environment lookup; the environment wins over the file.
    pub fn from_sources(
        yaml: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut file = match yaml {
            // An empty file is no document at all, which serde would reject.
            Some(text) if !text.trim().is_empty() => serde_saphyr::from_str::<YamlFile>(text)
                .map_err(|e| ConfigError(format!("config.yaml is not valid: {e}")))?,
            _ => YamlFile::default(),
        };
        let mut raw = |key: &str| -> Option<Setting> {
            let (yaml_key, var) = KEYS.iter().find(|(k, _)| *k == key).copied()?;
            Setting::layered(var, &env, yaml_key, "config.yaml", || file.take(yaml_key))
        };

        let id = raw("id")
            .ok_or_else(|| ConfigError("CLI_ID is not set: every agency needs its number".into()))?
            .parse::<u32>("expected the agency number, a whole number from 1", |n| {
                *n > 0
            })?;
        let server_addresses = match raw("server.address") {
            Some(r) => check_addresses(&r)?,
            None => vec![DEFAULT_SERVER_ADDRESS.to_string()],
        };
        let storage_errors = match raw("server.storageErrors") {
            Some(r) => r.parse::<u32>(
                &format!("expected a whole number of answers from 1 to {MAX_STORAGE_ERRORS}"),
                |n| (1..=MAX_STORAGE_ERRORS).contains(n),
            )?,
            None => DEFAULT_STORAGE_ERRORS,
        };
        let batch_max_amount = match raw("batch.maxAmount") {
            Some(r) => r.parse::<usize>("expected a whole number of bets from 1", |n| *n > 0)?,
            None => DEFAULT_BATCH_MAX_AMOUNT,
        };
        let window = match raw("batch.window") {
            Some(r) => r.parse::<usize>(
                &format!("expected a whole number of batches from 1 to {MAX_WINDOW}"),
                |n| (1..=MAX_WINDOW).contains(n),
            )?,
            None => DEFAULT_WINDOW,
        };
        let mut duration = |key: &str, default: Duration| match raw(key) {
            Some(r) => parse_duration(&r.value).ok_or_else(|| {
                r.error("expected a duration such as 60, 60s, 1.5s or 500ms (more than 0)")
            }),
            None => Ok(default),
        };
        let connect_timeout = duration("server.connectTimeout", DEFAULT_CONNECT_TIMEOUT)?;
        let reply_timeout = duration("server.replyTimeout", DEFAULT_REPLY_TIMEOUT)?;
        let park_timeout = duration("server.parkTimeout", DEFAULT_PARK_TIMEOUT)?;
        let progress_period = duration("log.progressPeriod", DEFAULT_PROGRESS_PERIOD)?;
        let winners_mode = match raw("winners.mode") {
            Some(r) => match r.value.trim().to_ascii_lowercase().as_str() {
                "wait" => WinnersMode::Wait,
                "poll" => WinnersMode::Poll,
                _ => return Err(r.error("expected wait or poll")),
            },
            None => WinnersMode::Wait,
        };
        let log_level = match raw("log.level") {
            Some(r) => {
                r.parse::<LevelFilter>("expected error, warn, info, debug, trace or off", |_| true)?
            }
            None => LevelFilter::Info,
        };
        let loop_period = match raw("loop.period") {
            Some(r) => Some(parse_duration(&r.value).ok_or_else(|| {
                r.error("expected a duration such as 150ms, 5s or 1.5 (more than 0)")
            })?),
            None => None,
        };
        let single = single_bet(&env)?;
        let data_file = match raw("data.file") {
            Some(r) if r.value.trim().is_empty() => return Err(r.error("expected a file path")),
            Some(r) => PathBuf::from(r.value),
            None => PathBuf::from(format!(".data/agency-{id}.csv")),
        };
        let tls = tls_files([raw("tls.ca"), raw("tls.cert"), raw("tls.key")])?;
        Ok(Config {
            id,
            server_addresses,
            storage_errors,
            batch_max_amount,
            window,
            connect_timeout,
            reply_timeout,
            park_timeout,
            winners_mode,
            log_level,
            progress_period,
            loop_period,
            bets: match single {
                Some(fields) => BetSource::Single(fields),
                None => BetSource::File(data_file),
            },
            tls,
        })
    }

    /// The effective settings as `key: value` pairs for the `action: config` line.
    pub fn describe(&self) -> String {
        let bets = match &self.bets {
            BetSource::File(path) => format!("data_file: {}", clean(&path.display().to_string())),
            BetSource::Single(_) => "data_file: none (single bet from the environment)".into(),
        };
        let tls = match &self.tls {
            Some(files) => format!(
                "tls: mutual | tls_ca: {} | tls_cert: {} | tls_key: {}",
                clean(&files.ca.display().to_string()),
                clean(&files.cert.display().to_string()),
                clean(&files.key.display().to_string())
            ),
            None => "tls: none".into(),
        };
        format!(
            "id: {} | server_address: {} | storage_errors: {} | batch_max_amount: {} | window: {} | connect_timeout_ms: {} | reply_timeout_ms: {} | park_timeout_ms: {} | loop_period_ms: {} | winners_mode: {} | log_level: {} | progress_period_ms: {} | {} | {}",
            self.id,
            clean(&self.server_addresses.join(",")),
            self.storage_errors,
            self.batch_max_amount,
            self.window,
            self.connect_timeout.as_millis(),
            self.reply_timeout.as_millis(),
            self.park_timeout.as_millis(),
            self.loop_period
                .map_or("none".into(), |p| p.as_millis().to_string()),
            match self.winners_mode {
                WinnersMode::Wait => "wait",
                WinnersMode::Poll => "poll",
            },
            self.log_level,
            self.progress_period.as_millis(),
            tls,
            bets
        )
    }
}

/// `host:port[,host:port...]`, each with a port from 1; the hosts are
/// resolved only when connecting, because in a compose network a central's
/// name may not exist yet when the agency starts.
fn check_addresses(raw: &Setting) -> Result<Vec<String>, ConfigError> {
    let addresses: Vec<String> = raw
        .value
        .split(',')
        .map(|address| address.trim().to_string())
        .collect();
    let ok = addresses.iter().all(|address| {
        address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        })
    });
    if ok {
        Ok(addresses)
    } else {
        Err(raw.error(
            "expected host:port, such as server:12345, or several separated by commas, such as central-a:12345,central-b:12345",
        ))
    }
}

/// The three TLS files, or none of them. Some but not all is a deployment
/// mistake (an agency that would silently talk plain TCP, or fail later
/// with a less clear error), so it is refused here, naming what is set and
/// what is missing.
fn tls_files(settings: [Option<Setting>; 3]) -> Result<Option<TlsFiles>, ConfigError> {
    for s in settings.iter().flatten() {
        if s.value.trim().is_empty() {
            return Err(s.error("expected the path of a PEM file"));
        }
    }
    let set = settings.iter().filter(|s| s.is_some()).count();
    match settings {
        [Some(ca), Some(cert), Some(key)] => Ok(Some(TlsFiles {
            ca: PathBuf::from(ca.value.trim()),
            cert: PathBuf::from(cert.value.trim()),
            key: PathBuf::from(key.value.trim()),
        })),
        _ if set == 0 => Ok(None),
        settings => {
            let name = |(yaml, var): (&str, &str)| format!("{yaml} ({var})");
            let (given, missing): (Vec<_>, Vec<_>) = TLS_KEYS
                .into_iter()
                .zip(&settings)
                .partition(|(_, s)| s.is_some());
            let given: Vec<String> = given
                .into_iter()
                .map(|(_, s)| {
                    let s = s.as_ref().expect("partitioned on is_some");
                    format!("{} = {:?}", s.from, s.value)
                })
                .collect();
            let missing: Vec<String> = missing.into_iter().map(|(k, _)| name(k)).collect();
            Err(ConfigError(format!(
                "mutual TLS needs all of tls.ca, tls.cert and tls.key (CLI_TLS_CA, CLI_TLS_CERT, CLI_TLS_KEY), or none for plain TCP: {} set, {} missing",
                given.join(", "),
                missing.join(", ")
            )))
        }
    }
}

/// `60`, `60s`, `1.5s` or `500ms`; a bare number is seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let seconds = number.trim().parse::<f64>().ok()? * scale;
    (seconds.is_finite() && seconds > 0.0 && seconds < 1e9)
        .then(|| Duration::from_secs_f64(seconds))
}

/// The single-bet mode is on when all five variables are set. Some but not
/// all of them is almost certainly a mistake in the deployment, so it is an
/// error rather than a silent fall-back to the file.
fn single_bet(env: &impl Fn(&str) -> Option<String>) -> Result<Option<[String; 5]>, ConfigError> {
    let values = SINGLE_BET_VARS.map(env);
    let set = values.iter().filter(|v| v.is_some()).count();
    match set {
        0 => Ok(None),
        5 => Ok(Some(values.map(Option::unwrap_or_default))),
        _ => {
            let missing: Vec<&str> = SINGLE_BET_VARS
                .iter()
                .zip(&values)
                .filter(|(_, v)| v.is_none())
                .map(|(name, _)| *name)
                .collect();
            Err(ConfigError(format!(
                "the single-bet mode needs all of {}: {} not set",
                SINGLE_BET_VARS.join(", "),
                missing.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use lottery_proto::support::settings::env_of as env;

    const COURSE_YAML: &str = "server:\n  address: \"server:12345\"\nloop:\n  amount: 5\n  period: \"5s\"\nlog:\n  level: \"info\"\nbatch:\n  maxAmount: 120\n";

    #[test]
    fn the_course_config_yaml_is_read_and_unknown_keys_are_ignored() {
        let c = Config::from_sources(Some(COURSE_YAML), env(&[("CLI_ID", "3")])).unwrap();
        assert_eq!(c.id, 3);
        assert_eq!(c.server_addresses, ["server:12345"]);
        assert_eq!(c.batch_max_amount, 120);
        assert_eq!(c.window, DEFAULT_WINDOW);
        assert_eq!(c.log_level, LevelFilter::Info);
        assert_eq!(c.winners_mode, WinnersMode::Wait);
        assert_eq!(c.bets, BetSource::File(PathBuf::from(".data/agency-3.csv")));
        assert_eq!(c.loop_period, Some(Duration::from_secs(5)));
    }

    #[test]
    fn loop_period_is_the_pause_between_batches_and_unset_means_none() {
        let period = |yaml: Option<&str>, pairs: &[(&str, &str)]| {
            let mut pairs = pairs.to_vec();
            pairs.push(("CLI_ID", "1"));
            Config::from_sources(yaml, env(&pairs)).map(|c| c.loop_period)
        };
        assert_eq!(period(None, &[]), Ok(None));
        assert_eq!(period(Some("loop:\n  amount: 500\n"), &[]), Ok(None));
        assert_eq!(
            period(Some("loop:\n  amount: 500\n  period: \"150ms\"\n"), &[]),
            Ok(Some(Duration::from_millis(150)))
        );
        assert_eq!(
            period(
                Some("loop:\n  period: 5s\n"),
                &[("CLI_LOOP_PERIOD", "20ms")]
            ),
            Ok(Some(Duration::from_millis(20)))
        );
        assert_eq!(
            period(None, &[("CLI_LOOP_PERIOD", "2")]),
            Ok(Some(Duration::from_secs(2)))
        );
        for bad in ["soon", "0", "-5ms", ""] {
            let err = period(None, &[("CLI_LOOP_PERIOD", bad)]).unwrap_err();
            assert!(err.0.contains("CLI_LOOP_PERIOD"), "{bad:?}: {err}");
        }
        let err = period(Some("loop:\n  period: often\n"), &[]).unwrap_err();
        assert!(err.0.contains("loop.period in config.yaml"), "{err}");
    }

    #[test]
    fn environment_variables_override_the_file() {
        let c = Config::from_sources(
            Some(COURSE_YAML),
            env(&[
                ("CLI_ID", "2"),
                ("CLI_SERVER_ADDRESS", "127.0.0.1:9000"),
                ("CLI_BATCH_MAXAMOUNT", "7"),
                ("CLI_WINDOW", "1"),
                ("CLI_CONNECT_TIMEOUT", "250ms"),
                ("CLI_WINNERS_MODE", "POLL"),
                ("CLI_LOG_LEVEL", "debug"),
                ("CLI_DATA_FILE", "/tmp/bets.csv"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server_addresses, ["127.0.0.1:9000"]);
        assert_eq!(c.batch_max_amount, 7);
        assert_eq!(c.window, 1);
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.winners_mode, WinnersMode::Poll);
        assert_eq!(c.log_level, LevelFilter::Debug);
        assert_eq!(c.bets, BetSource::File(PathBuf::from("/tmp/bets.csv")));
    }

    #[test]
    fn several_central_addresses_are_read_in_order_and_each_is_checked() {
        let c = Config::from_sources(
            Some("server:\n  address: \"central-a:12345, central-b:12346\"\n  storageErrors: 5\n"),
            env(&[("CLI_ID", "1")]),
        )
        .unwrap();
        assert_eq!(c.server_addresses, ["central-a:12345", "central-b:12346"]);
        assert_eq!(c.storage_errors, 5);
        assert!(
            c.describe().contains(
                "| server_address: central-a:12345,central-b:12346 | storage_errors: 5 |"
            ),
            "{}",
            c.describe()
        );
        let c = Config::from_sources(
            None,
            env(&[
                ("CLI_ID", "1"),
                ("CLI_SERVER_ADDRESS", "[::1]:1,127.0.0.1:2"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server_addresses, ["[::1]:1", "127.0.0.1:2"]);
        assert_eq!(c.storage_errors, DEFAULT_STORAGE_ERRORS);
        for bad in ["a:1,", "a:1,b", ",a:1", "a:1,,b:2", "a:1,b:0"] {
            let err =
                Config::from_sources(None, env(&[("CLI_ID", "1"), ("CLI_SERVER_ADDRESS", bad)]))
                    .unwrap_err();
            assert!(err.0.contains("CLI_SERVER_ADDRESS"), "{bad}: {err}");
            assert!(err.0.contains("separated by commas"), "{bad}: {err}");
        }
        for bad in ["0", "1001", "many"] {
            let err =
                Config::from_sources(None, env(&[("CLI_ID", "1"), ("CLI_STORAGE_ERRORS", bad)]))
                    .unwrap_err();
            assert!(err.0.contains("CLI_STORAGE_ERRORS"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_progress_period_comes_from_the_file_or_the_environment() {
        let c = Config::from_sources(None, env(&[("CLI_ID", "1")])).unwrap();
        assert_eq!(c.progress_period, DEFAULT_PROGRESS_PERIOD);
        let yaml = "log:\n  level: info\n  progressPeriod: 10s\n";
        let c = Config::from_sources(Some(yaml), env(&[("CLI_ID", "1")])).unwrap();
        assert_eq!(c.progress_period, Duration::from_secs(10));
        assert!(c.describe().contains("| progress_period_ms: 10000 |"));
        let c = Config::from_sources(
            Some(yaml),
            env(&[("CLI_ID", "1"), ("CLI_PROGRESS_PERIOD", "200ms")]),
        )
        .unwrap();
        assert_eq!(c.progress_period, Duration::from_millis(200));
        let err = Config::from_sources(None, env(&[("CLI_ID", "1"), ("CLI_PROGRESS_PERIOD", "0")]))
            .unwrap_err();
        assert!(err.0.contains("CLI_PROGRESS_PERIOD"), "{err}");
    }

    #[test]
    fn missing_settings_take_their_defaults() {
        let c = Config::from_sources(None, env(&[("CLI_ID", "1")])).unwrap();
        assert_eq!(c.server_addresses, [DEFAULT_SERVER_ADDRESS]);
        assert_eq!(c.batch_max_amount, DEFAULT_BATCH_MAX_AMOUNT);
        assert_eq!(c.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        let c = Config::from_sources(Some("  \n"), env(&[("CLI_ID", "1")])).unwrap();
        assert_eq!(c.batch_max_amount, DEFAULT_BATCH_MAX_AMOUNT);
    }

    #[test]
    fn bad_values_are_errors_that_name_the_key_and_source() {
        for (key, value) in [
            ("CLI_ID", "0"),
            ("CLI_ID", "-1"),
            ("CLI_ID", "one"),
            ("CLI_SERVER_ADDRESS", "server"),
            ("CLI_SERVER_ADDRESS", "server:http"),
            ("CLI_SERVER_ADDRESS", ":12345"),
            ("CLI_BATCH_MAXAMOUNT", "0"),
            ("CLI_BATCH_MAXAMOUNT", "ten"),
            ("CLI_WINDOW", "0"),
            ("CLI_WINDOW", "5000"),
            ("CLI_CONNECT_TIMEOUT", "soon"),
            ("CLI_CONNECT_TIMEOUT", "0"),
            ("CLI_WINNERS_MODE", "push"),
            ("CLI_LOG_LEVEL", "loud"),
            ("CLI_DATA_FILE", ""),
        ] {
            let mut pairs = vec![("CLI_ID", "1")];
            pairs.retain(|(k, _)| *k != key);
            pairs.push((key, value));
            let err = Config::from_sources(None, env(&pairs)).unwrap_err();
            assert!(err.0.contains(key), "{key}={value}: {err}");
        }
        let err =
            Config::from_sources(Some("batch:\n  maxAmount: lots\n"), env(&[("CLI_ID", "1")]))
                .unwrap_err();
        assert!(err.0.contains("batch.maxAmount in config.yaml"), "{err}");
    }

    #[test]
    fn a_missing_agency_id_is_an_error() {
        let err = Config::from_sources(Some(COURSE_YAML), env(&[])).unwrap_err();
        assert!(err.0.contains("CLI_ID"), "{err}");
    }

    #[test]
    fn yaml_that_does_not_parse_is_an_error() {
        let err =
            Config::from_sources(Some("server: [unclosed\n"), env(&[("CLI_ID", "1")])).unwrap_err();
        assert!(err.0.contains("config.yaml"), "{err}");
    }

    #[test]
    fn all_five_bet_variables_select_the_single_bet_mode() {
        let mut pairs = vec![
            ("CLI_ID", "1"),
            ("NOMBRE", "Ana"),
            ("APELLIDO", "Lorca"),
            ("DOCUMENTO", "30904465"),
            ("NACIMIENTO", "1999-03-17"),
            ("NUMERO", "7574"),
        ];
        let c = Config::from_sources(None, env(&pairs)).unwrap();
        assert!(matches!(&c.bets, BetSource::Single(f) if f[2] == "30904465"));
        pairs.remove(3);
        let err = Config::from_sources(None, env(&pairs)).unwrap_err();
        assert!(err.0.contains("DOCUMENTO"), "{err}");
    }

    #[test]
    fn durations_take_seconds_or_milliseconds() {
        assert_eq!(parse_duration("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("ms"), None);
    }

    #[test]
    fn the_described_settings_hold_no_bar_but_the_separators() {
        let c = Config::from_sources(None, env(&[("CLI_ID", "1")])).unwrap();
        assert_eq!(c.describe().matches('|').count(), 13);
        assert!(c.describe().contains("| tls: none |"), "{}", c.describe());
    }

    fn tls_env<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut pairs = pairs.to_vec();
        pairs.push(("CLI_ID", "1"));
        pairs
    }

    #[test]
    fn the_three_tls_files_come_from_the_file_or_the_environment() {
        let yaml = "tls:\n  ca: /tls/ca.pem\n  cert: /tls/agency-1.pem\n  key: /tls/agency-1.key\n";
        let pairs = tls_env(&[("CLI_TLS_KEY", "/other/agency-1.key")]);
        let c = Config::from_sources(Some(yaml), env(&pairs)).unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                ca: "/tls/ca.pem".into(),
                cert: "/tls/agency-1.pem".into(),
                key: "/other/agency-1.key".into(),
            })
        );
        assert!(
            c.describe().contains(
                "| tls: mutual | tls_ca: /tls/ca.pem | tls_cert: /tls/agency-1.pem | tls_key: /other/agency-1.key |"
            ),
            "{}",
            c.describe()
        );
        let c = Config::from_sources(None, env(&tls_env(&[]))).unwrap();
        assert_eq!(c.tls, None);
    }

    #[test]
    fn some_but_not_all_tls_files_is_an_error_naming_what_is_missing() {
        let err = Config::from_sources(
            Some("tls:\n  cert: agency-1.pem\n"),
            env(&tls_env(&[("CLI_TLS_CA", "ca.pem")])),
        )
        .unwrap_err();
        assert!(
            err.0.contains("CLI_TLS_CA in the environment = \"ca.pem\", tls.cert in config.yaml = \"agency-1.pem\" set, tls.key (CLI_TLS_KEY) missing"),
            "{err}"
        );
        let err =
            Config::from_sources(None, env(&tls_env(&[("CLI_TLS_KEY", "k.pem")]))).unwrap_err();
        assert!(
            err.0
                .contains("tls.ca (CLI_TLS_CA), tls.cert (CLI_TLS_CERT) missing"),
            "{err}"
        );
        let err = Config::from_sources(
            None,
            env(&tls_env(&[
                ("CLI_TLS_CA", "ca.pem"),
                ("CLI_TLS_CERT", " "),
                ("CLI_TLS_KEY", "k.pem"),
            ])),
        )
        .unwrap_err();
        assert!(err.0.contains("CLI_TLS_CERT in the environment"), "{err}");
    }

    #[test]
    fn the_reply_and_park_timeouts_come_from_the_file_or_the_environment() {
        let c = Config::from_sources(None, env(&[("CLI_ID", "1")])).unwrap();
        assert_eq!(c.reply_timeout, DEFAULT_REPLY_TIMEOUT);
        assert_eq!(c.park_timeout, DEFAULT_PARK_TIMEOUT);
        let yaml = "server:\n  replyTimeout: 5s\n  parkTimeout: 90\n";
        let c = Config::from_sources(
            Some(yaml),
            env(&[("CLI_ID", "1"), ("CLI_REPLY_TIMEOUT", "250ms")]),
        )
        .unwrap();
        assert_eq!(c.reply_timeout, Duration::from_millis(250));
        assert_eq!(c.park_timeout, Duration::from_secs(90));
        let err = Config::from_sources(
            Some(yaml),
            env(&[("CLI_ID", "1"), ("CLI_PARK_TIMEOUT", "0")]),
        )
        .unwrap_err();
        assert!(
            err.0
                .contains("CLI_PARK_TIMEOUT in the environment is \"0\""),
            "{err}"
        );
    }
}
