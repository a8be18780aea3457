//! A pg_auto_failover formation on loopback for the integration tests: a
//! monitor and two PostgreSQL nodes, each a `pg_autoctl run` child of the
//! test running as user `postgres`, data under a temporary directory. The
//! monitor promotes the secondary by itself when the primary's machine dies;
//! the test only kills processes and watches.
//!
//! The monitor's health checks are tuned for one LAN ([`MONITOR_SETTINGS`]),
//! the nodes' keepers give up on a lost monitor and standby sooner
//! ([`KEEPER_SETTINGS`]). A killed node is a machine that dies: its
//! `pg_autoctl` processes and its PostgreSQL server are frozen, then
//! SIGKILLed, so none of them reports anything on the way out.
//!
//! Without `pg_autoctl`, PostgreSQL's binaries or the `pgautofailover`
//! extension, [`Formation::start`] says why and returns `None`, unless
//! `REQUIRE_POSTGRES=1`.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};
use rustix::process::{Pid, Signal, kill_process};

use super::{free_port, report};

/// The monitor's health checks, in milliseconds (`postgresql.conf` of the
/// monitor, before it starts). The defaults (5 s between checks, 20 s
/// without a keeper's report, 30 s for a dead primary to drain) add up to
/// about half a minute before writes resume.
pub const MONITOR_SETTINGS: &[(&str, &str)] = &[
    ("pgautofailover.health_check_period", "1000"),
    ("pgautofailover.health_check_timeout", "1000"),
    ("pgautofailover.health_check_max_retries", "2"),
    ("pgautofailover.health_check_retry_delay", "500"),
    // A primary is unhealthy when its keeper has not reported (every
    // second) for this long and the health checks failed.
    ("pgautofailover.node_considered_unhealthy_timeout", "3000"),
    // After the promotion, how long the monitor waits for a primary that
    // does not answer to have stopped itself before it lets the new one
    // take writes. Together with the unhealthy timeout it must exceed the
    // keeper's network_partition_timeout, after which a primary cut off
    // from the monitor and the standby stops its PostgreSQL.
    ("pgautofailover.primary_demote_timeout", "3000"),
];

/// The nodes' keepers (`pg_autoctl config set`, whole seconds).
pub const KEEPER_SETTINGS: &[(&str, &str)] = &[("timeout.network_partition_timeout", "2")];

/// Every server of the formation: small (pg_autoctl sizes shared_buffers
/// for a dedicated machine), and no fsync: the cuts are SIGKILLs, which
/// leave the kernel's page cache intact, so what the tests check is the
/// replication and the failover, not the disks.
const SERVER_SETTINGS: &[(&str, &str)] = &[("shared_buffers", "'32MB'"), ("fsync", "off")];

/// Where the formation's servers put their Unix sockets (Debian's default,
/// which pg_autoctl keeps).
const SOCKET_DIR: &str = "/var/run/postgresql";

/// How long starting the formation may take (each `initdb` syncs its files).
const START_WITHIN: Duration = Duration::from_secs(180);

/// A node as the monitor knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    pub port: u16,
    pub reported: String,
    pub goal: String,
}

impl NodeState {
    /// Takes writes (alone or with a standby) and the monitor agrees.
    fn is_primary(&self) -> bool {
        ["primary", "wait_primary", "single"].contains(&self.reported.as_str())
            && self.reported == self.goal
    }

    fn is_secondary(&self) -> bool {
        self.reported == "secondary" && self.goal == "secondary"
    }
}

/// The programs a formation needs.
struct Tools {
    pg_autoctl: PathBuf,
    /// `initdb`, `pg_ctl`, `postgres` of the PostgreSQL version whose
    /// `pgautofailover` extension is installed.
    pg_bin: PathBuf,
}

impl Tools {
    /// The programs, or `None` with the reason reported (a failure instead
    /// with `REQUIRE_POSTGRES=1`).
    fn find(test: &str) -> Option<Tools> {
        let pg_autoctl = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|dir| dir.join("pg_autoctl"))
            .find(|p| p.exists());
        // The newest PostgreSQL with both its binaries and the monitor's
        // extension.
        let pg_bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let version = e.file_name();
                e.path().join("bin/initdb").exists()
                    && Path::new("/usr/share/postgresql")
                        .join(&version)
                        .join("extension/pgautofailover.control")
                        .exists()
            })
            .map(|e| e.path().join("bin"))
            .max();
        let missing = match (&pg_autoctl, &pg_bin) {
            (Some(_), Some(_)) => None,
            (None, _) => Some("no pg_autoctl in PATH (apt-get install pg-auto-failover-cli)"),
            (_, None) => Some(
                "no /usr/lib/postgresql/*/bin/initdb with the pgautofailover extension \
                 (apt-get install postgresql-15-auto-failover)",
            ),
        };
        if let Some(why) = missing {
            assert!(
                std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "REQUIRE_POSTGRES=1 but {why}"
            );
            report(format_args!("formation ({test}): skipped, {why}"));
            return None;
        }
        Some(Tools {
            pg_autoctl: pg_autoctl.unwrap(),
            pg_bin: pg_bin.unwrap(),
        })
    }
}

/// The user `postgres`: pg_autoctl and PostgreSQL refuse to run as root.
#[derive(Clone, Copy)]
struct User {
    uid: u32,
    gid: u32,
}

impl User {
    fn postgres() -> User {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let fields: Vec<&str> = passwd
            .lines()
            .find(|l| l.starts_with("postgres:"))
            .expect("no user postgres in /etc/passwd")
            .split(':')
            .collect();
        User {
            uid: fields[2].parse().unwrap(),
            gid: fields[3].parse().unwrap(),
        }
    }
}

/// One `pg_autoctl` service: the monitor or a node.
struct Service {
    name: String,
    pgdata: PathBuf,
    port: u16,
    log: PathBuf,
    /// `pg_autoctl run`, while it runs.
    run: Option<Child>,
}

/// A monitor and two nodes, killed and removed when dropped.
pub struct Formation {
    tools: Tools,
    user: User,
    root: PathBuf,
    monitor: Service,
    nodes: Vec<Service>,
    uri: String,
}

impl Formation {
    /// Starts a monitor and two nodes and waits until one node is the
    /// primary, the other its synchronous standby. `None` without the
    /// programs (see the module doc).
    pub fn start(name: &str) -> Option<Formation> {
        let tools = Tools::find(name)?;
        let user = User::postgres();
        let root = std::env::temp_dir().join(format!("lottery-af-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::chown(&root, Some(user.uid), Some(user.gid)).unwrap();
        if !Path::new(SOCKET_DIR).exists() {
            std::fs::create_dir_all(SOCKET_DIR).unwrap();
            std::os::unix::fs::chown(SOCKET_DIR, Some(user.uid), Some(user.gid)).unwrap();
        }
        let service = |name: &str| Service {
            name: name.to_string(),
            pgdata: root.join(name),
            port: free_port(),
            log: root.join(format!("{name}.log")),
            run: None,
        };
        let mut formation = Formation {
            monitor: service("monitor"),
            nodes: vec![service("node1"), service("node2")],
            tools,
            user,
            root: root.clone(),
            uri: String::new(),
        };
        let deadline = Instant::now() + START_WITHIN;
        formation.start_monitor(deadline);
        formation.start_node(0);
        formation.wait_until("node1 is a single primary", deadline, |f| {
            f.states()
                .iter()
                .any(|n| n.name == "node1" && n.is_primary())
        });
        formation.start_node(1);
        formation.wait_until(
            "a primary with a synchronous standby",
            deadline,
            Formation::replicates_synchronously,
        );
        let shown = formation.autoctl(&[
            "show",
            "uri",
            "--formation",
            "default",
            "--pgdata",
            formation.monitor.pgdata.to_str().unwrap(),
        ]);
        formation.uri = with_user(shown.trim(), "postgres");
        Some(formation)
    }

    /// `pg_autoctl create monitor`, the health checks in its
    /// `postgresql.conf`, then `pg_autoctl run`.
    fn start_monitor(&mut self, deadline: Instant) {
        let pgdata = self.monitor.pgdata.to_str().unwrap().to_string();
        let port = self.monitor.port.to_string();
        let pg_ctl = self.tools.pg_bin.join("pg_ctl");
        self.autoctl(&[
            "create",
            "monitor",
            "--pgdata",
            &pgdata,
            "--pgport",
            &port,
            "--hostname",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--auth",
            "trust",
            "--no-ssl",
            "--pgctl",
            pg_ctl.to_str().unwrap(),
        ]);
        let settings: Vec<_> = SERVER_SETTINGS.iter().chain(MONITOR_SETTINGS).collect();
        append_settings(&self.monitor.pgdata, &settings);
        self.monitor.run = Some(self.spawn_run(&self.monitor));
        self.wait_until("the monitor accepts connections", deadline, |f| {
            f.monitor_client().is_ok()
        });
    }

    /// `pg_autoctl create postgres` (the second node copies the first with
    /// `pg_basebackup`), the keeper's timeouts, then `pg_autoctl run`.
    fn start_node(&mut self, index: usize) {
        let node = &self.nodes[index];
        let pgdata = node.pgdata.to_str().unwrap().to_string();
        let port = node.port.to_string();
        let name = node.name.clone();
        let monitor = self.monitor_uri();
        let pg_ctl = self.tools.pg_bin.join("pg_ctl");
        self.autoctl(&[
            "create",
            "postgres",
            "--pgdata",
            &pgdata,
            "--pgport",
            &port,
            "--name",
            &name,
            "--hostname",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--auth",
            "trust",
            "--no-ssl",
            "--monitor",
            &monitor,
            "--pgctl",
            pg_ctl.to_str().unwrap(),
        ]);
        for (key, value) in KEEPER_SETTINGS {
            self.autoctl(&["config", "set", "--pgdata", &pgdata, key, value]);
        }
        let settings: Vec<_> = SERVER_SETTINGS.iter().collect();
        append_settings(&self.nodes[index].pgdata, &settings);
        let run = self.spawn_run(&self.nodes[index]);
        self.nodes[index].run = Some(run);
    }

    /// The formation's connection string as `pg_autoctl show uri` gives it
    /// (every node, `target_session_attrs=read-write`), with the user
    /// `postgres` added (pg_autoctl leaves the user to libpq's default).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// [`Formation::uri`] for the `postgres` crate, with a short connect
    /// timeout.
    pub fn config(&self) -> Config {
        let mut config: Config = self.uri.parse().unwrap();
        config.connect_timeout(Duration::from_secs(2));
        config
    }

    /// The nodes as the monitor sees them.
    pub fn states(&self) -> Vec<NodeState> {
        let Ok(mut monitor) = self.monitor_client() else {
            return Vec::new();
        };
        monitor
            .query(
                "SELECT nodename, nodeport, reportedstate::text, goalstate::text \
                 FROM pgautofailover.node WHERE formationid = 'default' ORDER BY nodeid",
                &[],
            )
            .map(|rows| {
                rows.iter()
                    .map(|r| NodeState {
                        name: r.get(0),
                        port: r.get::<_, i32>(1) as u16,
                        reported: r.get(2),
                        goal: r.get(3),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The node the monitor has as primary.
    pub fn primary(&self) -> NodeState {
        self.states()
            .into_iter()
            .find(NodeState::is_primary)
            .unwrap_or_else(|| panic!("no primary: {:?}", self.states()))
    }

    /// The node the monitor has as secondary.
    pub fn secondary(&self) -> NodeState {
        self.states()
            .into_iter()
            .find(NodeState::is_secondary)
            .unwrap_or_else(|| panic!("no secondary: {:?}", self.states()))
    }

    /// A session on the current primary's server.
    pub fn client(&self) -> Client {
        node_client(self.primary().port).unwrap()
    }

    /// A session on one node's server, by name.
    pub fn node_client(&self, name: &str) -> Result<Client, postgres::Error> {
        node_client(self.service(name).port)
    }

    /// The primary's machine dies: its pg_autoctl processes and its
    /// PostgreSQL server are SIGKILLed at once. The primary is the server
    /// out of recovery (the monitor may be down already). Returns its name.
    pub fn kill_primary(&mut self) -> String {
        let index = self
            .nodes
            .iter()
            .position(|n| n.run.is_some() && in_recovery(n.port) == Some(false))
            .unwrap_or_else(|| panic!("no server out of recovery\n{}", self.logs()));
        kill_machine(&mut self.nodes[index]);
        self.nodes[index].name.clone()
    }

    /// Whether a node's server is in recovery (a standby), `None` if it
    /// does not answer.
    pub fn in_recovery(&self, name: &str) -> Option<bool> {
        in_recovery(self.service(name).port)
    }

    /// The monitor's machine dies (as [`Formation::kill_primary`]).
    pub fn stop_monitor(&mut self) {
        kill_machine(&mut self.monitor);
    }

    /// The last lines of every service's log and of every server's log, for
    /// a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for service in std::iter::once(&self.monitor).chain(&self.nodes) {
            out += &format!("--- {} ({})\n", service.name, service.log.display());
            out += &tail(
                &std::fs::read_to_string(&service.log).unwrap_or_default(),
                30,
            );
        }
        out
    }

    /// The monitor's event log (state changes and why), oldest first.
    pub fn events(&self) -> Vec<String> {
        let Ok(mut monitor) = self.monitor_client() else {
            return Vec::new();
        };
        monitor
            .query(
                "SELECT to_char(eventtime, 'HH24:MI:SS.MS'), nodename, reportedstate::text, \
                 goalstate::text, description FROM pgautofailover.event ORDER BY eventid",
                &[],
            )
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        format!(
                            "{} {} {} -> {}: {}",
                            r.get::<_, String>(0),
                            r.get::<_, String>(1),
                            r.get::<_, String>(2),
                            r.get::<_, String>(3),
                            r.get::<_, String>(4)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn service(&self, name: &str) -> &Service {
        self.nodes.iter().find(|n| n.name == name).unwrap()
    }

    /// Whether the primary waits for its standby at every commit.
    fn replicates_synchronously(&self) -> bool {
        let states = self.states();
        let (Some(primary), Some(_)) = (
            states.iter().find(|n| n.is_primary()),
            states.iter().find(|n| n.is_secondary()),
        ) else {
            return false;
        };
        let Ok(mut client) = node_client(primary.port) else {
            return false;
        };
        let names: String = client
            .query_one("SHOW synchronous_standby_names", &[])
            .map(|r| r.get(0))
            .unwrap_or_default();
        let sync = client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')",
                &[],
            )
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        !names.is_empty() && sync > 0
    }

    fn monitor_uri(&self) -> String {
        format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=prefer",
            self.monitor.port
        )
    }

    fn monitor_client(&self) -> Result<Client, postgres::Error> {
        Config::new()
            .host("127.0.0.1")
            .port(self.monitor.port)
            .user("postgres")
            .dbname("pg_auto_failover")
            .connect_timeout(Duration::from_secs(2))
            .connect(NoTls)
    }

    /// Polls `ready` until it holds; panics at `deadline` with the
    /// formation's state and logs, or as soon as a service has exited.
    fn wait_until(&mut self, what: &str, deadline: Instant, ready: impl Fn(&Formation) -> bool) {
        loop {
            if ready(self) {
                return;
            }
            let mut exited = None;
            for service in std::iter::once(&mut self.monitor).chain(&mut self.nodes) {
                if let Some(Ok(Some(status))) = service.run.as_mut().map(Child::try_wait) {
                    exited = Some(format!("{} exited with {status}", service.name));
                }
            }
            if let Some(exited) = exited {
                panic!(
                    "waiting until {what}: pg_autoctl run of {exited}\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "waiting until {what}: timed out; nodes {:?}\n{}",
                self.states(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `pg_autoctl args` as user `postgres` to completion; its
    /// standard output.
    fn autoctl(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pg_autoctl");
        assert!(
            out.status.success(),
            "pg_autoctl {args:?}: {}\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pg_autoctl run` of a created service, its output to its log.
    fn spawn_run(&self, service: &Service) -> Child {
        let log = std::fs::File::create(&service.log).unwrap();
        self.command()
            .args(["run", "--pgdata", service.pgdata.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pg_autoctl run")
    }

    /// `pg_autoctl` as user `postgres`, its configuration and state files
    /// (kept under `$XDG_CONFIG_HOME` and `$XDG_DATA_HOME`) in the
    /// formation's directory, PostgreSQL's programs first in `PATH`.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.tools.pg_autoctl);
        let path = format!("{}:/usr/bin:/bin", self.tools.pg_bin.display());
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", &self.root)
            .env("XDG_CONFIG_HOME", self.root.join("config"))
            .env("XDG_DATA_HOME", self.root.join("share"))
            .env("XDG_RUNTIME_DIR", self.root.join("run"))
            .current_dir(&self.root)
            .uid(self.user.uid)
            .gid(self.user.gid);
        cmd
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        for service in std::iter::once(&mut self.monitor).chain(&mut self.nodes) {
            kill_machine(service);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `postgres` as the user of a connection string that names none.
fn with_user(uri: &str, user: &str) -> String {
    let (scheme, rest) = uri.split_once("://").expect("a postgres:// URI");
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        uri.to_string()
    } else {
        format!("{scheme}://{user}@{rest}")
    }
}

fn in_recovery(port: u16) -> Option<bool> {
    let mut client = node_client(port).ok()?;
    client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .ok()
        .map(|r| r.get(0))
}

fn node_client(port: u16) -> Result<Client, postgres::Error> {
    Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2))
        .connect(NoTls)
}

/// Appends `settings` to `postgresql.conf`, after pg_autoctl's include
/// (the last setting wins).
fn append_settings(pgdata: &Path, settings: &[&(&str, &str)]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(pgdata.join("postgresql.conf"))
        .unwrap();
    writeln!(f, "\n# Integration tests (tests/util/formation.rs)").unwrap();
    for (key, value) in settings {
        writeln!(f, "{key} = {value}").unwrap();
    }
}

/// A machine dies: every process of `service` (`pg_autoctl run`, the
/// services it forked, the PostgreSQL server and its children) is
/// stopped, then killed, so that none acts on the others' deaths.
fn kill_machine(service: &mut Service) {
    let Some(mut run) = service.run.take() else {
        return;
    };
    let mut roots = vec![run.id() as i32];
    if let Some(postmaster) = postmaster_pid(&service.pgdata) {
        roots.push(postmaster);
    }
    let mut frozen = Vec::new();
    // A process may fork between the scan and the stop: scan again until
    // nothing new turns up.
    loop {
        let found: Vec<i32> = descendants(&roots)
            .into_iter()
            .filter(|p| !frozen.contains(p))
            .collect();
        if found.is_empty() {
            break;
        }
        for &pid in &found {
            signal(pid, Signal::STOP);
        }
        frozen.extend(found);
    }
    for &pid in &frozen {
        signal(pid, Signal::KILL);
    }
    let _ = run.wait();
    // The rest were reparented; until they are gone their ports are taken.
    let deadline = Instant::now() + Duration::from_secs(10);
    while frozen.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // A dead machine's socket files go with it.
    for name in [
        format!(".s.PGSQL.{}", service.port),
        format!(".s.PGSQL.{}.lock", service.port),
    ] {
        let _ = std::fs::remove_file(Path::new(SOCKET_DIR).join(name));
    }
}

fn postmaster_pid(pgdata: &Path) -> Option<i32> {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// `roots` and every process below them (from `/proc/*/stat`).
fn descendants(roots: &[i32]) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some(ppid) = parent(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out: Vec<i32> = roots.iter().copied().filter(|&p| alive(p)).collect();
    let mut next = 0;
    while next < out.len() {
        for &child in children.get(&out[next]).map(Vec::as_slice).unwrap_or(&[]) {
            if !out.contains(&child) {
                out.push(child);
            }
        }
        next += 1;
    }
    out
}

/// The parent of `pid`, from `pid (comm) state ppid ...` (comm may hold
/// spaces and parentheses).
fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(1)?.parse().ok()
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = &stat[stat.rfind(')')? + 2..];
            Some(!after.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn signal(pid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, sig);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n") + "\n"
}
