//! End-to-end tests of the docker compose path: the central and N agencies
//! as containers of the scratch images, the way `make docker-compose-up`
//! runs them.
//!
//! Each test builds the images with `make docker-image` under tags of its
//! own (the user's `server:latest` and `client:latest` are never touched),
//! writes a compose file with `generar-compose.sh` into a directory of its
//! own that holds a copy of `compose/` and a `.data/`, runs it under a
//! unique compose project name and container prefix, and reads what happened
//! from `docker compose logs` and `docker inspect`. [`Project`]'s `Drop`
//! removes every container, network and image the test made, also when the
//! test fails; the directory is kept then, for a look at its files.
//!
//! Without a reachable Docker engine and a compose tool the tests say that
//! they skip and pass, unless `REQUIRE_DOCKER=1` (set by `.ci/run`), which
//! makes that a failure. Two need no engine: `generar-compose.sh --tls`,
//! and `keep-lottery.sh` with stand-ins for `docker` and compose. They run one at a time: the machine has two cores.

mod util;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One compose project at a time.
static DOCKER: Mutex<()> = Mutex::new(());

/// How long the agencies of one run may take, start-up included.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// What the agencies of the course dataset win, agency 1 first.
const COURSE_WINNERS: [u32; 5] = [2, 3, 3, 2, 0];

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Says something on the terminal even though the test harness captures
/// `println!` and `eprintln!` of passing tests.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// Runs `command`, panicking with everything it printed unless it succeeds.
fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        printed(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn printed(output: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `command` for its side effect only, saying so if it fails.
fn run_quietly(command: &mut Command) -> bool {
    match command.output() {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            say(&format!("{command:?} failed:\n{}", printed(&output)));
            false
        }
        Err(e) => {
            say(&format!("cannot run {command:?}: {e}"));
            false
        }
    }
}

fn docker() -> Command {
    Command::new("docker")
}

/// The compose tool of this machine: `docker compose` or `docker-compose`,
/// or `None` (after saying why) when the test must skip.
fn compose_or_skip(test: &str) -> Option<Vec<&'static str>> {
    let why = match docker()
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
    {
        Err(e) => format!("no docker command ({e})"),
        Ok(output) if !output.status.success() => format!(
            "no Docker engine reachable ({})",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Ok(_) => {
            let works = |argv: &[&str]| {
                Command::new(argv[0])
                    .args(&argv[1..])
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            if works(&["docker", "compose"]) {
                return Some(vec!["docker", "compose"]);
            }
            if works(&["docker-compose"]) {
                return Some(vec!["docker-compose"]);
            }
            "neither `docker compose` nor `docker-compose` works".to_string()
        }
    };
    assert!(
        std::env::var("REQUIRE_DOCKER").as_deref() != Ok("1"),
        "{test}: REQUIRE_DOCKER=1 but {why}"
    );
    say(&format!("{test}: skipped: {why}"));
    None
}

/// One compose project of a test: its directory, images and containers.
struct Project {
    /// The compose project name, also the prefix of every container name.
    name: String,
    compose: Vec<&'static str>,
    /// Holds the compose file, `compose/` and `.data/`.
    dir: PathBuf,
    compose_file: PathBuf,
    server_image: String,
    client_image: String,
    /// The PostgreSQL image, for a project written with `--postgres`.
    postgres_image: Option<String>,
    agencies: u32,
}

impl Project {
    /// Builds the images under this project's tags and prepares its
    /// directory with a copy of the repository's `compose/` configuration.
    fn new(compose: Vec<&'static str>, test: &str) -> Project {
        Project::new_of(compose, test, false)
    }

    /// The same, with the PostgreSQL image too when `postgres`.
    fn new_of(compose: Vec<&'static str>, test: &str, postgres: bool) -> Project {
        let dir = util::temp_dir(&format!("compose-{test}"));
        let project = Project::with_images_of(
            compose,
            test,
            dir.join("docker-compose.yaml"),
            dir,
            postgres,
        );
        for (service, file) in [("server", "config.ini"), ("client", "config.yaml")] {
            let to = project.dir.join("compose").join(service);
            std::fs::create_dir_all(&to).unwrap();
            std::fs::copy(
                repo_root().join("compose").join(service).join(file),
                to.join(file),
            )
            .unwrap();
        }
        std::fs::create_dir_all(project.data_dir()).unwrap();
        project
    }

    /// The project's images, built under its own tags, for a compose file
    /// in `dir`.
    fn with_images(
        compose: Vec<&'static str>,
        test: &str,
        compose_file: PathBuf,
        dir: PathBuf,
    ) -> Project {
        Project::with_images_of(compose, test, compose_file, dir, false)
    }

    /// The same, with the PostgreSQL image too (`make docker-image
    /// POSTGRES=1`) when `postgres`.
    fn with_images_of(
        compose: Vec<&'static str>,
        test: &str,
        compose_file: PathBuf,
        dir: PathBuf,
        postgres: bool,
    ) -> Project {
        let name = format!("lotterytest-{}-{test}", std::process::id());
        let project = Project {
            server_image: format!("{name}-server:test"),
            client_image: format!("{name}-client:test"),
            postgres_image: postgres.then(|| format!("{name}-postgres:test")),
            dir,
            compose_file,
            name,
            compose,
            agencies: 0,
        };
        let started = Instant::now();
        let mut make = Command::new("make");
        make.current_dir(repo_root())
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .args(["--no-print-directory", "docker-image"])
            .arg(format!("SERVER_IMAGE={}", project.server_image))
            .arg(format!("CLIENT_IMAGE={}", project.client_image));
        if let Some(image) = &project.postgres_image {
            make.arg("POSTGRES=1")
                .arg(format!("POSTGRES_IMAGE={image}"));
        }
        run(&mut make);
        say(&format!(
            "{test}: make docker-image took {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        project
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join(".data")
    }

    fn compose_file(&self) -> PathBuf {
        self.compose_file.clone()
    }

    /// Writes the compose file for `agencies` agencies with `generar-compose.sh`.
    fn generate(&mut self, agencies: u32) {
        self.generate_with(agencies, &[]);
    }

    /// The same with more arguments (`--tls`); what the script printed.
    fn generate_with(&mut self, agencies: u32, more: &[&str]) -> String {
        let mut command = Command::new(repo_root().join("generar-compose.sh"));
        command
            .env("SERVER_IMAGE", &self.server_image)
            .env("CLIENT_IMAGE", &self.client_image)
            .env("CONTAINER_PREFIX", format!("{}-", self.name))
            .arg(self.compose_file())
            .arg(agencies.to_string())
            .args(more);
        if let Some(image) = &self.postgres_image {
            command.env("POSTGRES_IMAGE", image);
        }
        let printed = run(&mut command);
        self.agencies = agencies;
        printed
    }

    /// `container path <- host file` of each bind mount of `container`.
    fn bind_mounts(&self, container: &str) -> HashMap<String, PathBuf> {
        run(docker()
            .args([
                "inspect",
                "--format",
                "{{range .Mounts}}{{if eq .Type \"bind\"}}{{.Destination}}={{.Source}}\n{{end}}{{end}}",
            ])
            .arg(container))
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(to, from)| (to.to_string(), PathBuf::from(from)))
        .collect()
    }

    /// A compose command on this project.
    fn compose(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.compose[0]);
        command
            .args(&self.compose[1..])
            .arg("--project-name")
            .arg(&self.name)
            .arg("--file")
            .arg(self.compose_file())
            .args(args)
            .current_dir(&self.dir);
        command
    }

    fn container(&self, service: &str) -> String {
        format!("{}-{service}", self.name)
    }

    fn agency_containers(&self) -> Vec<String> {
        (1..=self.agencies)
            .map(|i| self.container(&format!("client{i}")))
            .collect()
    }

    /// `(status, exit code)` of each container, as `docker inspect` tells.
    fn states(&self, containers: &[String]) -> Vec<(String, i64)> {
        run(docker()
            .args([
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
            ])
            .args(containers))
        .lines()
        .map(|line| {
            let (status, code) = line.split_once(' ').unwrap();
            (status.to_string(), code.parse().unwrap())
        })
        .collect()
    }

    /// Waits until every agency's container has exited; their exit codes.
    fn wait_for_agencies(&self) -> Vec<i64> {
        let containers = self.agency_containers();
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let states = self.states(&containers);
            if states.iter().all(|(status, _)| status == "exited") {
                return states.into_iter().map(|(_, code)| code).collect();
            }
            if Instant::now() > deadline {
                panic!(
                    "the agencies did not all exit within {RUN_TIMEOUT:?}: {states:?}\n{}",
                    self.all_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until `service` has logged a line holding `needle`; its log.
    fn wait_for_log(&self, service: &str, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let log = self.logs(service);
            if log.iter().any(|l| l.contains(needle)) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{service} did not log {needle:?} within {RUN_TIMEOUT:?}:\n{}",
                log.join("\n")
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// What `service` logged, from `docker compose logs`, without the
    /// `container |` prefix, oldest first.
    fn logs(&self, service: &str) -> Vec<String> {
        run(&mut self.compose(&["logs", "--no-color", service]))
            .lines()
            .filter_map(|line| line.split_once("| ").map(|(_, rest)| rest.to_string()))
            .collect()
    }

    /// What every agency logged, agency 1 first, from one `docker compose
    /// logs` (each call of the Python docker-compose costs most of a second).
    fn agency_logs(&self) -> Vec<Vec<String>> {
        let mut by_prefix: HashMap<String, Vec<String>> = HashMap::new();
        for line in run(&mut self.compose(&["logs", "--no-color"])).lines() {
            if let Some((prefix, rest)) = line.split_once("| ") {
                by_prefix
                    .entry(prefix.trim().to_string())
                    .or_default()
                    .push(rest.to_string());
            }
        }
        (1..=self.agencies)
            .map(|i| {
                let service = format!("client{i}");
                // The prefix is the container's name, or else the service's.
                by_prefix
                    .remove(&self.container(&service))
                    .or_else(|| by_prefix.remove(&service))
                    .unwrap_or_else(|| self.logs(&service))
            })
            .collect()
    }

    fn all_logs(&self) -> String {
        self.compose(&["logs", "--no-color", "--tail=40"])
            .output()
            .map(|o| printed(&o))
            .unwrap_or_default()
    }

    /// The ids of the containers or networks (`what`) that carry this
    /// project's compose label.
    fn labelled(&self, what: &[&str]) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.name);
        docker()
            .args(what)
            .args(["--quiet", "--filter", &label])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if self.compose_file().exists() {
            run_quietly(&mut self.compose(&[
                "down",
                "--volumes",
                "--remove-orphans",
                "--timeout",
                "5",
            ]));
        }
        // Whatever `down` left, or made before the compose file existed.
        let containers = self.labelled(&["container", "ls", "--all"]);
        if !containers.is_empty() {
            run_quietly(
                docker()
                    .args(["rm", "--force", "--volumes"])
                    .args(&containers),
            );
        }
        let networks = self.labelled(&["network", "ls"]);
        if !networks.is_empty() {
            run_quietly(docker().args(["network", "rm"]).args(&networks));
        }
        for image in [&self.server_image, &self.client_image]
            .into_iter()
            .chain(&self.postgres_image)
        {
            let exists = docker()
                .args(["image", "inspect", "--format", "{{.Id}}", image])
                .output()
                .is_ok_and(|o| o.status.success());
            if exists {
                run_quietly(docker().args(["image", "rm", image]));
            }
        }
        if std::thread::panicking() {
            say(&format!(
                "{}: kept {} for a look at its files",
                self.name,
                self.dir.display()
            ));
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            say(&format!("cannot remove {}: {e}", self.dir.display()));
        }
    }
}

/// How many bets the agency files of the project's `.data/` hold.
fn bets_in_files(project: &Project) -> u64 {
    (1..=project.agencies)
        .map(|i| {
            let path = project.data_dir().join(format!("agency-{i}.csv"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            text.lines().filter(|l| !l.trim().is_empty()).count() as u64
        })
        .sum()
}

/// The value of `key: value` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(" | ")
        .find_map(|part| part.trim().strip_prefix(key)?.strip_prefix(": "))
}

/// The `cantidad` of each stored batch, in log order.
fn batch_sizes(central: &[String]) -> Vec<u64> {
    central
        .iter()
        .filter(|l| l.contains("action: apuesta_recibida | result: success"))
        .map(|l| field(l, "cantidad").unwrap().parse().unwrap())
        .collect()
}

/// Starts the project, waits for every agency and checks the run: each
/// agency exited 0 with its winners, the central stored every bet of the
/// files, and drew after the last batch. Returns the central's log.
fn run_lottery(project: &Project, winners: &[u32]) -> Vec<String> {
    let started = Instant::now();
    run(&mut project.compose(&["up", "--detach"]));
    let codes = project.wait_for_agencies();
    say(&format!(
        "{}: {} agencies done in {:.1} s",
        project.name,
        project.agencies,
        started.elapsed().as_secs_f64()
    ));
    let agency_logs = project.agency_logs();
    for (i, (code, log)) in codes.iter().zip(&agency_logs).enumerate() {
        assert_eq!(
            *code,
            0,
            "agency {} exited with {code}:\n{}",
            i + 1,
            log.join("\n")
        );
    }
    for (i, (expected, log)) in winners.iter().zip(&agency_logs).enumerate() {
        let reported: Vec<&str> = log
            .iter()
            .filter(|l| l.contains("action: consulta_ganadores | result: success"))
            .filter_map(|l| field(l, "cant_ganadores"))
            .collect();
        assert_eq!(
            reported,
            [expected.to_string()],
            "agency {}'s winners:\n{}",
            i + 1,
            log.join("\n")
        );
    }

    let central = project.logs("server");
    let stored: u64 = batch_sizes(&central).iter().sum();
    assert_eq!(
        stored,
        bets_in_files(project),
        "the central's `cantidad` sum against the bets in the files"
    );
    let last_batch = central
        .iter()
        .rposition(|l| l.contains("action: apuesta_recibida"))
        .expect("the central logged no batch");
    let draw = central
        .iter()
        .position(|l| l.contains("action: sorteo | result: success"))
        .expect("the central logged no draw");
    assert!(
        draw > last_batch,
        "the draw (line {draw}) came before the last batch (line {last_batch})"
    );
    central
}

/// `docker compose stop` must end the central gracefully, with exit code 0.
fn stop_and_check_central(project: &Project) {
    run(&mut project.compose(&["stop", "--timeout", "20"]));
    let server = project.container("server");
    let states = project.states(std::slice::from_ref(&server));
    assert_eq!(
        states,
        [("exited".to_string(), 0)],
        "the central after `stop`:\n{}",
        project.logs("server").join("\n")
    );
    let central = project.logs("server");
    assert!(
        central
            .last()
            .is_some_and(|l| l.contains("action: shutdown | result: success | signal: SIGTERM")),
        "the central's last words after `stop`:\n{}",
        central[central.len().saturating_sub(10)..].join("\n")
    );
}

/// Checks that each container runs as a user other than root, with every
/// capability dropped and no way to gain privileges: as docker was told to
/// run it (`docker inspect`) and, while it runs, as its process is
/// (`/proc/PID/status` on this host).
fn assert_confined(containers: &[String]) {
    let inspected = run(docker()
        .args([
            "inspect",
            "--format",
            "{{.Name}} user={{.Config.User}} {{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}} {{.State.Pid}}",
        ])
        .args(containers));
    for line in inspected.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [name, user, cap_drop, security_opt, pid] = fields[..] else {
            panic!("docker inspect said {line:?}");
        };
        let uid = user.trim_start_matches("user=").split(':').next().unwrap();
        assert!(
            !uid.is_empty() && uid != "0" && uid != "root",
            "{name} runs as root: {line}"
        );
        assert_eq!(cap_drop, r#"["ALL"]"#, "{name}'s capabilities: {line}");
        assert!(
            security_opt.contains("no-new-privileges:true"),
            "{name} may gain privileges: {line}"
        );
        if pid == "0" {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("{name}'s process {pid}: {e}"));
        let value = |key: &str| -> Vec<&str> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {name}'s status:\n{status}"))
                .split_whitespace()
                .collect()
        };
        assert!(
            value("Uid:").iter().all(|id| *id != "0"),
            "{name}'s process runs as root:\n{status}"
        );
        for capabilities in ["CapPrm:", "CapEff:", "CapBnd:"] {
            assert_eq!(
                value(capabilities),
                ["0000000000000000"],
                "{name}'s {capabilities}"
            );
        }
        assert_eq!(value("NoNewPrivs:"), ["1"], "{name}");
    }
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    DOCKER.lock().unwrap_or_else(|e| e.into_inner())
}

/// `generar-compose.sh` on its own: no Docker needed.
#[test]
fn generar_compose_rejects_bad_arguments_with_its_usage_and_code_2() {
    let dir = util::temp_dir("generar-compose-args");
    let file = dir.join("out.yaml");
    let file = file.to_str().unwrap();
    for args in [
        vec![],
        vec![file],
        vec![file, "-3"],
        vec![file, "five"],
        vec![file, "2.5"],
        vec!["", "3"],
        vec![file, "3", "extra"],
    ] {
        let output = Command::new(repo_root().join("generar-compose.sh"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}:\n{}",
            printed(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("usage: ./generar-compose.sh FILE N"),
            "{args:?}:\n{}",
            printed(&output)
        );
        assert!(!Path::new(file).exists(), "{args:?} wrote {file}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generar_compose_writes_the_central_and_n_agencies_on_one_network() {
    let dir = util::temp_dir("generar-compose-file");
    let file = dir.join("docker-compose-dev.yaml");
    run(Command::new(repo_root().join("generar-compose.sh"))
        .env_remove("SERVER_IMAGE")
        .env_remove("CLIENT_IMAGE")
        .env_remove("CONTAINER_PREFIX")
        .arg(&file)
        .arg("3"));
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let has = |line: &str| lines.contains(&line);
    for line in [
        "server:",
        "container_name: server",
        "image: server:latest",
        "- AGENCIES=3",
        "- BETS_FILE=/.data/central/bets.csv",
        "- METRICS_PORT=9100",
        "test: [\"CMD\", \"/lottery-server\", \"--probe\"]",
        "- ./compose/server/config.ini:/config.ini:ro",
        "- /.data/central",
        "lottery_net: {}",
    ] {
        assert!(has(line), "no `{line}` in:\n{text}");
    }
    for i in 1..=3 {
        for line in [
            format!("client{i}:"),
            format!("container_name: client{i}"),
            format!("- CLI_ID={i}"),
            format!("- ./.data/agency-{i}.csv:/.data/agency-{i}.csv:ro"),
        ] {
            assert!(has(&line), "no `{line}` in:\n{text}");
        }
    }
    assert!(!text.contains("client4"), "a fourth agency in:\n{text}");
    // The agencies start once the central's healthcheck passes.
    for service in ["client1", "client2", "client3"] {
        let block = service_block(&text, service) + "\n";
        let waits = "\n    depends_on:\n      server:\n        condition: service_healthy\n";
        assert!(block.contains(waits), "no `{waits}` in:\n{block}");
    }
    // Every service without any capability nor a way to gain privileges
    // (the images' USER is not root).
    for service in ["server", "client1", "client2", "client3"] {
        let block = service_block(&text, service) + "\n";
        for confined in [
            "\n    cap_drop:\n      - ALL\n",
            "\n    security_opt:\n      - no-new-privileges:true\n",
        ] {
            assert!(block.contains(confined), "no `{confined}` in:\n{block}");
        }
    }
    assert_eq!(text.matches("image: client:latest").count(), 3);
    assert_eq!(
        text.matches("- ./compose/client/config.yaml:/config.yaml:ro")
            .count(),
        3
    );
    assert_eq!(text.matches("- lottery_net").count(), 4, "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn five_agencies_get_their_winners_and_the_central_stops_with_code_0() {
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip("five_agencies") else {
        return;
    };
    let mut project = Project::new(compose, "five");
    let winners = match util::course_dataset() {
        Some(zip) => {
            say("five_agencies: the course dataset");
            util::unzip_course_dataset(&zip, &project.data_dir());
            COURSE_WINNERS.to_vec()
        }
        None => {
            say("five_agencies: no course dataset, generated bets instead");
            util::generate(&project.data_dir(), 5, 5_000, 5)
        }
    };
    project.generate(5);
    run_lottery(&project, &winners);
    let mut containers = project.agency_containers();
    containers.push(project.container("server"));
    assert_confined(&containers);
    stop_and_check_central(&project);

    // A recreated central keeps the bets and the closed agencies, which
    // live in the deployment's anonymous volume.
    let total = bets_in_files(&project);
    run(&mut project.compose(&["up", "--detach", "--no-deps", "--force-recreate", "server"]));
    let central = project.wait_for_log("server", "action: escuchar");
    let recovered = central
        .iter()
        .find(|l| l.contains("action: recuperar | result: success"))
        .expect("the recreated central logged no recovery");
    assert_eq!(
        field(recovered, "apuestas"),
        Some(total.to_string().as_str())
    );
    assert_eq!(field(recovered, "agencias_cerradas"), Some("5"));
    assert!(
        central
            .iter()
            .any(|l| l.contains("action: sorteo | result: success")),
        "the recreated central did not restore the draw:\n{}",
        central.join("\n")
    );
    stop_and_check_central(&project);
}

#[test]
fn stop_ends_an_agency_waiting_for_the_draw_and_the_central_with_code_0() {
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip("stop_waiting_agency") else {
        return;
    };
    let mut project = Project::new(compose, "stop");
    util::generate(&project.data_dir(), 2, 200, 3);
    project.generate(2);
    // Agency 2 never comes, so agency 1 waits for the draw until stopped.
    run(&mut project.compose(&["up", "--detach", "server", "client1"]));
    project.wait_for_log(
        "client1",
        "action: consulta_ganadores | result: in_progress",
    );
    // Both running: their processes too.
    assert_confined(&[project.container("server"), project.container("client1")]);
    stop_and_check_central(&project);
    let agency = project.container("client1");
    assert_eq!(
        project.states(std::slice::from_ref(&agency)),
        [("exited".to_string(), 0)],
        "agency 1 after `stop`:\n{}",
        project.logs("client1").join("\n")
    );
    let log = project.logs("client1");
    assert!(
        log.iter()
            .any(|l| l.contains("action: shutdown | result: success")),
        "agency 1 did not log its shutdown:\n{}",
        log.join("\n")
    );
}

#[test]
fn twenty_agencies_on_generated_bets_get_their_winners() {
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip("twenty_agencies") else {
        return;
    };
    let mut project = Project::new(compose, "twenty");
    let winners = util::generate(&project.data_dir(), 20, 2_000, 20);
    project.generate(20);
    run_lottery(&project, &winners);
    stop_and_check_central(&project);
}

#[test]
fn a_new_batch_max_amount_in_the_mounted_config_takes_effect_without_a_rebuild() {
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip("batch_max_amount") else {
        return;
    };
    let mut project = Project::new(compose, "batch");
    let winners = util::generate(&project.data_dir(), 2, 1_000, 7);
    project.generate(2);
    let image_ids = || {
        run(docker()
            .args(["image", "inspect", "--format", "{{.Id}}"])
            .args([&project.server_image, &project.client_image]))
    };
    let images_before = image_ids();

    let shipped = run_lottery(&project, &winners);
    let sizes = batch_sizes(&shipped);
    assert_eq!(
        sizes.iter().max(),
        Some(&100),
        "batches with compose/client/config.yaml as shipped (maxAmount 100): {sizes:?}"
    );

    // A fresh lottery with a new batch size: only the mounted file changes
    // (`down` ended the first one with its anonymous volume).
    run(&mut project.compose(&["down", "--volumes", "--timeout", "20"]));
    let config_path = project.dir.join("compose/client/config.yaml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        config.contains("maxAmount: 100"),
        "compose/client/config.yaml no longer says `maxAmount: 100`:\n{config}"
    );
    std::fs::write(
        &config_path,
        config.replace("maxAmount: 100", "maxAmount: 7"),
    )
    .unwrap();

    let edited = run_lottery(&project, &winners);
    let sizes = batch_sizes(&edited);
    assert_eq!(
        sizes.iter().max(),
        Some(&7),
        "batches after setting maxAmount: 7: {sizes:?}"
    );
    assert_eq!(image_ids(), images_before, "the images changed");
    stop_and_check_central(&project);
}

#[test]
fn generar_compose_with_0_agencies_writes_the_central_alone() {
    let dir = util::temp_dir("generar-compose-zero");
    let file = dir.join("docker-compose-dev.yaml");
    run(Command::new(repo_root().join("generar-compose.sh"))
        .env_remove("CONTAINER_PREFIX")
        .arg(&file)
        .arg("0"));
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for line in [
        "server:",
        "- AGENCIES=0",
        "- /.data/central",
        "lottery_net: {}",
    ] {
        assert!(lines.contains(&line), "no `{line}` in:\n{text}");
    }
    assert!(!text.contains("client"), "an agency in:\n{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------
// The course's workflow: one checkout, run after run.

/// The course's `compose/server/config.ini`, as its checking tools write it.
const COURSE_SERVER_INI: &str = "[DEFAULT]\nSERVER_PORT = 12345\nSERVER_IP = server\nSERVER_LISTEN_BACKLOG = 5\nLOGGING_LEVEL = DEBUG\n";

/// The course's `compose/client/config.yaml`, as its checking tools write it.
const COURSE_CLIENT_YAML: &str = "server:\n  address: \"server:12345\"\nloop:\n  amount: 500\n  period: \"150ms\"\nlog:\n  level: \"INFO\"\nbatch:\n  maxAmount: 10\n";

/// How long one case's containers may take, start-up included.
const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// A throwaway checkout of the working tree: its tracked (and new, not
/// ignored) files in a git repository of their own, so that the course's
/// `git checkout .` and `git clean -fd` work there and keep ignored files.
fn throwaway_checkout(dir: &Path) {
    let listed = run(Command::new("git").current_dir(repo_root()).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    for path in listed.split('\0').filter(|p| !p.is_empty()) {
        let from = repo_root().join(path);
        // A tracked file deleted in the working tree is not copied.
        if !from.is_file() {
            continue;
        }
        let to = dir.join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
    let git = |args: &[&str]| {
        run(Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
            .args(args))
    };
    git(&["init", "--quiet"]);
    git(&["add", "--all"]);
    git(&["commit", "--quiet", "--message", "checkout"]);
}

/// Agency files where agency `i` has `bets[i]` bets of which `winners[i]`
/// win, written into `.data/` the way the course's tools do.
fn write_agency_files(data: &Path, bets: &[u32], winners: &[u32]) {
    for (i, (&n, &w)) in bets.iter().zip(winners).enumerate() {
        let agency = i as u32 + 1;
        let mut text = String::new();
        for j in 0..n {
            // Winners spread over the file; documents unique per lottery.
            let wins = w > 0 && j % (n / w) == 0 && j / (n / w) < w;
            let number = if wins { 7574 } else { (j * 37 + agency) % 7000 };
            text.push_str(&format!(
                "Nombre{j},Apellido{agency},{},1990-0{}-1{},{number}\n",
                30_000_000 + agency * 100_000 + j,
                1 + j % 9,
                j % 10
            ));
        }
        std::fs::write(data.join(format!("agency-{agency}.csv")), text).unwrap();
    }
}

/// One line of `docker compose logs -f`: an `action:` line of a container,
/// or a container's exit.
#[derive(Debug, Clone)]
enum Seen {
    Line { container: String, text: String },
    Exit { container: String, code: i64 },
}

/// What one `compose logs -f` showed.
struct Followed {
    seen: Vec<Seen>,
    /// When its first line came: compose had attached by then, and printed
    /// what the containers had logged before as each one's backlog.
    attached: Option<SystemTime>,
}

/// Reads `compose logs -f` as one merged stream until `done` says so
/// (checked after each line and every 200 ms), then `finish` runs (e.g. a
/// `stop`) and the stream is read to its end.
fn follow_logs(
    project: &Project,
    done: impl Fn(&[Seen]) -> bool,
    finish: impl FnOnce(),
) -> Followed {
    use std::io::BufRead;
    let mut child = project
        .compose(&["logs", "--no-color", "-f"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut raw = Vec::new();
    let mut attached = None;
    let mut finish = Some(finish);
    let deadline = Instant::now() + CASE_TIMEOUT;
    loop {
        if finish.is_some() && done(&seen) {
            (finish.take().unwrap())();
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                attached.get_or_insert_with(SystemTime::now);
                if let Some(s) = parse_log_line(&line) {
                    seen.push(s);
                }
                raw.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the case did not end within {CASE_TIMEOUT:?}; the merged stream:\n{}",
                raw.join("\n")
            );
        }
    }
    let _ = child.wait();
    reader.join().unwrap();
    assert!(
        finish.is_none(),
        "the log stream ended early:\n{}",
        raw.join("\n")
    );
    Followed { seen, attached }
}

fn parse_log_line(line: &str) -> Option<Seen> {
    if let Some((container, text)) = line.split_once(" | ") {
        let text = text.trim_start();
        return text.contains("action: ").then(|| Seen::Line {
            container: container.trim().to_string(),
            text: text.to_string(),
        });
    }
    let (container, code) = line.trim().split_once(" exited with code ")?;
    Some(Seen::Exit {
        container: container.trim().to_string(),
        code: code.trim().parse().ok()?,
    })
}

fn exits(seen: &[Seen]) -> HashMap<&str, i64> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Exit { container, code } => Some((container.as_str(), *code)),
            _ => None,
        })
        .collect()
}

/// The anonymous volumes of the deployment's central (the course's plain
/// `down` keeps them, dangling; the test removes them itself).
fn central_volumes(project: &Project) -> Vec<String> {
    run(docker()
        .args(["inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}"])
        .arg(project.container("server")))
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

/// One case of the course's workflow on the checkout: write the configs,
/// the agency files and the compose file, `up -d`, read `logs -f` until
/// every agency has exited, `stop`, `down`. Checks the course's checks,
/// and the order of lines from different containers in the merged stream
/// where compose printed the agencies' reports live (see `live` below);
/// returns whether it did.
fn course_case(project: &mut Project, bets: &[u32], winners: &[u32]) -> bool {
    let label = format!("{} agencies of {bets:?} bets", bets.len());
    let git = |args: &[&str]| run(Command::new("git").current_dir(&project.dir).args(args));
    git(&["checkout", "."]);
    git(&["clean", "-fd", "--quiet"]);
    std::fs::write(
        project.dir.join("compose/server/config.ini"),
        COURSE_SERVER_INI,
    )
    .unwrap();
    std::fs::write(
        project.dir.join("compose/client/config.yaml"),
        COURSE_CLIENT_YAML,
    )
    .unwrap();
    write_agency_files(&project.data_dir(), bets, winners);
    run(Command::new("./generar-compose.sh")
        .current_dir(&project.dir)
        .env("SERVER_IMAGE", &project.server_image)
        .env("CLIENT_IMAGE", &project.client_image)
        .env("CONTAINER_PREFIX", format!("{}-", project.name))
        .args(["docker-compose-dev.yaml", &bets.len().to_string()]));
    project.agencies = bets.len() as u32;

    let started = Instant::now();
    run(&mut project.compose(&["up", "-d"]));
    let up_returned = SystemTime::now();
    let agencies = project.agency_containers();
    let server = project.container("server");
    let Followed { seen, attached } = follow_logs(
        project,
        |seen| {
            let exited = exits(seen);
            if agencies.is_empty() {
                // The central alone: stop it once it listens.
                seen.iter().any(
                    |s| matches!(s, Seen::Line { text, .. } if text.contains("action: escuchar")),
                )
            } else {
                agencies.iter().all(|a| exited.contains_key(a.as_str()))
            }
        },
        || run(&mut project.compose(&["stop", "-t", "20"])).truncate(0),
    );
    // The central is stopped last: docker-compose 1.29's `logs -f` may end
    // before it prints that container's `exited with code` line, so its
    // exit code is also read from docker.
    let server_state = project.states(std::slice::from_ref(&server)).remove(0);
    // The order across containers is ours only where compose printed the
    // lines as they came; what was logged before it attached it prints as
    // each container's backlog, in the order its threads win.
    let live = attached.is_some_and(|attached| {
        agencies.iter().all(|agency| {
            logged_since(agency, attached + BACKLOG_PRINTED)
                .contains("action: consulta_ganadores | result: success")
        })
    });
    let volumes = central_volumes(project);
    run(&mut project.compose(&["down"]));
    if !volumes.is_empty() {
        run_quietly(docker().args(["volume", "rm"]).args(&volumes));
    }
    let attach_s = attached.map_or(f64::NAN, |at| {
        at.duration_since(up_returned)
            .unwrap_or_default()
            .as_secs_f64()
    });
    let order = match (agencies.is_empty(), live) {
        (true, _) => "no agencies",
        (false, true) => "checked",
        (false, false) => "not checked: the agencies had reported before compose attached",
    };
    say(&format!(
        "course workflow: {label}: {:.1} s from up to down; logs -f attached {attach_s:.2} s after up -d returned; order across containers {order}",
        started.elapsed().as_secs_f64()
    ));

    let stream: Vec<String> = seen.iter().map(|s| format!("{s:?}")).collect();
    let stream = stream.join("\n");
    let lines = || {
        seen.iter().enumerate().filter_map(|(i, s)| match s {
            Seen::Line { container, text } => Some((i, container.as_str(), text.as_str())),
            _ => None,
        })
    };
    for (_, container, text) in lines() {
        assert!(
            !text.contains("result: fail"),
            "{label}: {container} failed: {text}\n{stream}"
        );
    }
    let exited = exits(&seen);
    for container in &agencies {
        assert_eq!(
            exited.get(container.as_str()),
            Some(&0),
            "{label}: how {container} exited\n{stream}"
        );
    }
    let server_code = exited.get(server.as_str()).copied();
    assert_eq!(
        server_code.unwrap_or(server_state.1),
        0,
        "{label}: how {server} exited ({server_state:?})\n{stream}"
    );
    assert_eq!(server_state.0, "exited", "{label}: {server} after stop");
    let stored: u64 = lines()
        .filter(|(_, c, t)| {
            *c == server && t.contains("action: apuesta_recibida | result: success")
        })
        .map(|(_, _, t)| field(t, "cantidad").unwrap().parse::<u64>().unwrap())
        .sum();
    let sent: u64 = bets.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(
        stored, sent,
        "{label}: the central's `cantidad` sum\n{stream}"
    );

    let draws: Vec<usize> = lines()
        .filter(|(_, c, t)| *c == server && t.contains("action: sorteo | result: success"))
        .map(|(i, _, _)| i)
        .collect();
    assert_eq!(draws.len(), 1, "{label}: one draw\n{stream}");
    let draw = draws[0];
    for (i, container, text) in lines() {
        // The central's own lines are always in order (one docker log
        // stream per container).
        if text.contains("action: apuesta_recibida") {
            assert!(
                i < draw,
                "{label}: a batch after the draw: {text}\n{stream}"
            );
        }
        // The `in_progress` line of an agency waiting for the draw comes
        // before it; its winners come after.
        if live && text.contains("action: consulta_ganadores | result: success") {
            assert!(
                i > draw,
                "{label}: {container}'s winners before the draw\n{stream}"
            );
        }
    }
    for (i, s) in seen.iter().enumerate().filter(|_| live) {
        if let Seen::Exit { container, .. } = s {
            assert!(
                i > draw,
                "{label}: {container} exited before the draw\n{stream}"
            );
        }
    }
    for (k, (agency, expected)) in agencies.iter().zip(winners).enumerate() {
        let reported: Vec<&str> = lines()
            .filter(|(_, c, t)| {
                c == agency && t.contains("action: consulta_ganadores | result: success")
            })
            .filter_map(|(_, _, t)| field(t, "cant_ganadores"))
            .collect();
        assert_eq!(
            reported,
            [expected.to_string()],
            "{label}: agency {}'s winners\n{stream}",
            k + 1
        );
    }
    live && !agencies.is_empty()
}

/// How long after compose attached a line must have been logged for the
/// test to count it as printed live: by then compose has printed every
/// container's backlog (it reads them all at once, in milliseconds).
const BACKLOG_PRINTED: Duration = Duration::from_millis(250);

/// What `container` logged (stdout and stderr) since `since`, by docker's
/// timestamps, which this machine's clock also gives `SystemTime`.
fn logged_since(container: &str, since: SystemTime) -> String {
    let since = since.duration_since(UNIX_EPOCH).unwrap();
    let output = docker()
        .args(["logs", "--since"])
        .arg(format!("{}.{:09}", since.as_secs(), since.subsec_nanos()))
        .arg(container)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", printed(&output));
    printed(&output)
}

/// The course's cases in a row on one throwaway checkout.
///
/// The order across containers (the central's `sorteo` before every
/// agency's `consulta_ganadores` and exit) holds for a reader that follows
/// the run live: with `loop.period: 150ms` each agency reports a period after
/// the draw. `logs -f` started right after `up -d` attaches within half a
/// second on an idle machine here, before the agencies report (1.2 s and
/// more into these runs); docker-compose 1.29 on a loaded one can take two
/// seconds, and what it then replays in no particular order is compose's
/// doing. So the order is checked in each case where the agencies reported
/// after compose attached, and must have been checked in one case at least.
#[test]
fn the_course_workflow_runs_lottery_after_lottery_on_one_checkout() {
    let test = "course";
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip(test) else {
        return;
    };
    let dir = util::temp_dir(&format!("compose-{test}"));
    throwaway_checkout(&dir);
    let mut project = Project::with_images(compose, test, dir.join("docker-compose-dev.yaml"), dir);
    let checked = [
        course_case(&mut project, &[64], &[1]),
        course_case(&mut project, &[99], &[3]),
        course_case(&mut project, &[100, 100, 100], &[2, 1, 0]),
        course_case(&mut project, &[60; 5], &[1, 2, 3, 4, 5]),
        course_case(&mut project, &[], &[]),
        // Back to more agencies than the last lottery had: a new lottery again.
        course_case(&mut project, &[100, 100, 100], &[0, 1, 2]),
    ];
    let checked = checked.iter().filter(|&&c| c).count();
    say(&format!(
        "course workflow: order across containers checked in {checked} of 5 cases with agencies"
    ));
    assert!(
        checked > 0,
        "compose attached after the agencies had reported in every case: the order across containers was never checked"
    );
}

/// The `apuestas` of each `recuperar` line the central logged, oldest first
/// (`docker logs` keeps every start of one container).
fn recoveries(project: &Project) -> Vec<(u64, u64)> {
    let output = docker()
        .args(["logs", &project.container("server")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&output.stdout).lines())
        .filter(|l| l.contains("action: recuperar | result: success"))
        .map(|l| {
            (
                field(l, "apuestas").unwrap().parse().unwrap(),
                field(l, "agencias_cerradas").unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Inside one deployment the central's files outlive its container's
/// process: `docker kill` then `up -d`, and `restart`, recover them.
#[test]
fn a_central_killed_or_restarted_inside_its_deployment_recovers_its_lottery() {
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip("kill_restart") else {
        return;
    };
    let mut project = Project::new(compose, "kill");
    std::fs::write(
        project.dir.join("compose/client/config.yaml"),
        COURSE_CLIENT_YAML,
    )
    .unwrap();
    let bets = [300, 300, 300];
    let winners = [1, 0, 2];
    write_agency_files(&project.data_dir(), &bets, &winners);
    project.generate(3);
    run(&mut project.compose(&["up", "-d"]));

    // Killed mid-lottery, once it has stored some bets (150 ms between
    // batches of 10: 30 batches take each agency 4.5 s).
    let deadline = Instant::now() + CASE_TIMEOUT;
    let before = loop {
        let output = docker()
            .args(["logs", &project.container("server")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let stored: u64 = batch_sizes(&lines).iter().sum();
        if stored >= 60 {
            break stored;
        }
        assert!(Instant::now() < deadline, "no bets stored:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    run(docker().args(["kill", &project.container("server")]));
    run(&mut project.compose(&["up", "-d"]));
    let codes = project.wait_for_agencies();
    assert_eq!(codes, [0, 0, 0], "{}", project.all_logs());
    for (i, (expected, log)) in winners.iter().zip(project.agency_logs()).enumerate() {
        let reported: Vec<&str> = log
            .iter()
            .filter(|l| l.contains("action: consulta_ganadores | result: success"))
            .filter_map(|l| field(l, "cant_ganadores"))
            .collect();
        assert_eq!(
            reported,
            [expected.to_string()],
            "agency {}:\n{}",
            i + 1,
            log.join("\n")
        );
    }
    let recovered = recoveries(&project);
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    assert_eq!(recovered[0], (0, 0), "the first start was a new lottery");
    assert!(
        recovered[1].0 >= before,
        "after the kill the central recovered {recovered:?}, fewer than the {before} it had stored"
    );

    // `restart`: the finished lottery again, whole.
    run(&mut project.compose(&["restart", "server"]));
    let deadline = Instant::now() + CASE_TIMEOUT;
    let recovered = loop {
        let recovered = recoveries(&project);
        if recovered.len() == 3 || Instant::now() > deadline {
            break recovered;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        recovered.last(),
        Some(&(900, 3)),
        "after `restart`: {recovered:?}"
    );
    stop_and_check_central(&project);
}

// ---------------------------------------------------------------------------
// Mutual TLS (`generar-compose.sh FILE N --tls`).

/// The certificate files under `.data/tls/` a container of `service` must
/// mount, and nothing else of that directory: the CA's certificate and its
/// own certificate and key.
fn own_tls_files(service: &str) -> Vec<String> {
    let own = match service.strip_prefix("client") {
        Some(i) => format!("agency-{i}"),
        None => "server".to_string(),
    };
    let mut files = vec![
        "ca.pem".to_string(),
        format!("{own}.pem"),
        format!("{own}.key"),
    ];
    files.sort();
    files
}

/// The modes of a compose deployment's `.data/tls/` for `agencies`: only
/// its owner enters it on the host (0700); the keys the containers mount
/// are 0644 in it, for the containers' own user (not the owner of the
/// files) to read each its own; the CA's key, mounted nowhere, stays 0600.
fn assert_tls_modes(tls_dir: &Path, agencies: u32) {
    let mode = |name: &str| {
        let path = tls_dir.join(name);
        std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions()) & 0o777
    };
    assert_eq!(mode(""), 0o700, "{}", tls_dir.display());
    assert_eq!(mode("ca.key"), 0o600, "ca.key");
    let mounted = std::iter::once("server.key".to_string())
        .chain((1..=agencies).map(|i| format!("agency-{i}.key")));
    for key in mounted {
        assert_eq!(mode(&key), 0o644, "{key}");
    }
}

/// `lottery-certs` of this build (a binary of the root package, built with
/// the tests).
fn lottery_certs_bin() -> PathBuf {
    util::server_bin().with_file_name("lottery-certs")
}

/// `generar-compose.sh --tls` on its own, with the certificates already
/// there: no Docker needed.
#[test]
fn generar_compose_with_tls_mounts_only_each_containers_own_key() {
    let dir = util::temp_dir("generar-compose-tls");
    run(Command::new(lottery_certs_bin())
        .args(["--agencies", "3", "--out"])
        .arg(dir.join(".data/tls"))
        .args(["--server-name", "server"]));
    let file = dir.join("docker-compose-dev.yaml");
    let said = run(Command::new(repo_root().join("generar-compose.sh"))
        .env_remove("CONTAINER_PREFIX")
        .arg(&file)
        .arg("3")
        .arg("--tls"));
    assert!(said.contains("using the certificates in"), "{said}");
    assert_tls_modes(&dir.join(".data/tls"), 3);
    let text = std::fs::read_to_string(&file).unwrap();
    // Each service's block: from its name to the next blank line.
    let block = |service: &str| -> String {
        let start = text.find(&format!("\n  {service}:\n")).unwrap();
        let rest = &text[start + 1..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
    };
    for service in ["server", "client1", "client2", "client3"] {
        let block = block(service);
        let mut mounted: Vec<String> = block
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- ./.data/tls/"))
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect();
        mounted.sort();
        assert_eq!(mounted, own_tls_files(service), "{service}:\n{block}");
        for f in &mounted {
            assert!(
                block.contains(&format!("- ./.data/tls/{f}:/tls/{f}:ro")),
                "{service}:\n{block}"
            );
        }
        assert!(!block.contains("ca.key"), "{service}:\n{block}");
    }
    let server = block("server");
    for line in [
        "- TLS_CERT=/tls/server.pem",
        "- TLS_KEY=/tls/server.key",
        "- TLS_CLIENT_CA=/tls/ca.pem",
    ] {
        assert!(server.contains(line), "no `{line}` in:\n{server}");
    }
    let client2 = block("client2");
    for line in [
        "- CLI_TLS_CA=/tls/ca.pem",
        "- CLI_TLS_CERT=/tls/agency-2.pem",
        "- CLI_TLS_KEY=/tls/agency-2.key",
    ] {
        assert!(client2.contains(line), "no `{line}` in:\n{client2}");
    }

    // Without --tls, nothing of it.
    run(Command::new(repo_root().join("generar-compose.sh"))
        .arg(&file)
        .arg("3"));
    let plain = std::fs::read_to_string(&file).unwrap();
    assert!(
        !plain.contains("/tls/") && !plain.contains("TLS"),
        "{plain}"
    );

    // A set for fewer agencies is not overwritten: without the image that
    // would make a new one, the script says what is missing and stops.
    let output = Command::new(repo_root().join("generar-compose.sh"))
        .env("SERVER_IMAGE", "lottery-no-such-image:never")
        .arg(&file)
        .arg("4")
        .arg("--tls")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", printed(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("lacks agency-4.pem agency-4.key") && stderr.contains("lottery-certs"),
        "{stderr}"
    );
    assert!(dir.join(".data/tls/agency-3.key").is_file());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), plain);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `keep-lottery.sh` on its own, with stand-ins for `docker` and the
/// compose command (no Docker needed): a central's files copied out with
/// the modes an older image gave them (0644), and the common umask. What it
/// keeps holds people's names and documents: readable by the user only.
#[test]
fn keep_lottery_keeps_the_lottery_readable_by_the_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = util::temp_dir("keep-lottery-modes");
    let volume = dir.join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::write(volume.join("bets.csv"), "1,Ana,Lorca,1,1999-03-17,5\r\n").unwrap();
    std::fs::write(volume.join("bets.csv.journal"), "DONE 1 1\n").unwrap();
    for f in ["bets.csv", "bets.csv.journal"] {
        std::fs::set_permissions(volume.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // `docker cp` keeps the modes the files had in the container, as `cp -a` does.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = |name: &str, text: &str| {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    script(
        "docker",
        "#!/bin/sh\n[ \"$1\" = cp ] || { echo \"docker $*\" >&2; exit 1; }\ncp -a \"$VOLUME/.\" \"$3\"\n",
    );
    // Called as `compose -f FILE ps -a -q SERVICE` or `compose -f FILE logs ...`.
    let compose = script(
        "compose",
        "#!/bin/sh\nshift 2\ncase \"$1 $4\" in\n  \"ps server\") echo c0ffee ;;\n  \"ps monitor\") ;;\n  logs*) echo 'server | action: sorteo | result: success' ;;\n  *) echo \"compose $*\" >&2; exit 1 ;;\nesac\n",
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let said = run(Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(repo_root().join("scripts/keep-lottery.sh"))
        .arg(dir.join("docker-compose-dev.yaml"))
        .arg(&compose)
        .env("PATH", path)
        .env("VOLUME", &volume));
    assert!(
        said.contains("(1 bets, 1 agencies closed) is kept in"),
        "{said}"
    );
    let lotteries = dir.join(".data/lotteries");
    let kept: Vec<PathBuf> = std::fs::read_dir(&lotteries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(mode(&lotteries), 0o700, "{}", lotteries.display());
    assert_eq!(mode(&kept[0]), 0o700, "{}", kept[0].display());
    let mut files: Vec<(String, u32)> = std::fs::read_dir(&kept[0])
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                mode(&path),
            )
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("bets.csv".to_string(), 0o600),
            ("bets.csv.journal".to_string(), 0o600),
            ("logs.txt".to_string(), 0o600)
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn five_agencies_over_mutual_tls_get_their_winners_and_each_container_holds_only_its_own_key() {
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip("tls_five") else {
        return;
    };
    let mut project = Project::new(compose, "tls");
    let winners = match util::course_dataset() {
        Some(zip) => {
            say("tls_five: the course dataset");
            util::unzip_course_dataset(&zip, &project.data_dir());
            COURSE_WINNERS.to_vec()
        }
        None => {
            say("tls_five: no course dataset, generated bets instead");
            util::generate(&project.data_dir(), 5, 5_000, 5)
        }
    };
    // The certificates are made by lottery-certs of the central's image.
    let said = project.generate_with(5, &["--tls"]);
    assert!(said.contains("made the certificates"), "{said}");
    let tls_dir = project.data_dir().join("tls");
    assert_tls_modes(&tls_dir, 5);

    run_lottery(&project, &winners);
    for (i, log) in project.agency_logs().iter().enumerate() {
        assert!(
            log.iter()
                .any(|l| l.contains("action: config | result: success")
                    && l.contains("| tls: mutual |")),
            "agency {} did not say it speaks TLS:\n{}",
            i + 1,
            log.join("\n")
        );
    }

    // Every container's mounts of .data/tls/: the CA's certificate and its
    // own certificate and key, never another's key nor the CA's key.
    let tls_dir = tls_dir.canonicalize().unwrap();
    let services: Vec<String> = std::iter::once("server".to_string())
        .chain((1..=5).map(|i| format!("client{i}")))
        .collect();
    for service in &services {
        let mounts = project.bind_mounts(&project.container(service));
        let mut from_tls: Vec<String> = mounts
            .iter()
            .filter_map(|(to, from)| {
                let name = from.strip_prefix(&tls_dir).ok()?.to_str()?.to_string();
                assert_eq!(to, &format!("/tls/{name}"), "{service}: {mounts:?}");
                Some(name)
            })
            .collect();
        from_tls.sort();
        assert_eq!(from_tls, own_tls_files(service), "{service}: {mounts:?}");
        assert!(
            mounts.values().all(|from| from != &tls_dir),
            "{service} mounts all of .data/tls: {mounts:?}"
        );
    }
    stop_and_check_central(&project);
}

// ---------------------------------------------------------------------------
// PostgreSQL (`generar-compose.sh FILE N --postgres`): a pg_auto_failover
// formation (`monitor`, `node1`, `node2`) and two centrals (`server`,
// `server-2`).

/// The services of the formation, the monitor first.
const FORMATION: [&str; 3] = ["monitor", "node1", "node2"];

/// The PostgreSQL nodes of the formation.
const NODES: [&str; 2] = ["node1", "node2"];

/// The centrals of a `--postgres` deployment.
const CENTRALS: [&str; 2] = ["server", "server-2"];

/// The centrals' connection string in a `--postgres` deployment whose
/// database password is `password`.
fn compose_storage(password: &str) -> String {
    format!(
        "postgres://lottery:{password}@node1:5432,node2:5432/lottery?target_session_attrs=read-write"
    )
}

/// The lines of a file, and its mode.
fn secret_file(path: &Path) -> (Vec<String>, u32) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
    (text.lines().map(str::to_string).collect(), mode & 0o777)
}

/// The database password that `generar-compose.sh --postgres` kept in the
/// `.data/` of `dir`, after checking both of its files hold it (mode 0600,
/// in a directory of mode 0700).
fn kept_password(dir: &Path) -> String {
    let secrets = dir.join(".data/postgres");
    let dir_mode =
        std::os::unix::fs::PermissionsExt::mode(&secrets.metadata().unwrap().permissions());
    assert_eq!(dir_mode & 0o777, 0o700, "{}", secrets.display());
    let (lines, mode) = secret_file(&secrets.join("postgres.env"));
    assert_eq!(mode, 0o600, "postgres.env");
    assert_eq!(lines.len(), 1, "postgres.env: {lines:?}");
    let password = lines[0]
        .strip_prefix("POSTGRES_PASSWORD=")
        .unwrap_or_else(|| panic!("postgres.env: {lines:?}"))
        .to_string();
    let (lines, mode) = secret_file(&secrets.join("central.env"));
    assert_eq!(mode, 0o600, "central.env");
    assert_eq!(lines, [format!("STORAGE={}", compose_storage(&password))]);
    password
}

/// Each service's block of a compose file: from its name to the next blank line.
fn service_block(text: &str, service: &str) -> String {
    let start = text
        .find(&format!("\n  {service}:\n"))
        .unwrap_or_else(|| panic!("no service {service} in:\n{text}"));
    let rest = &text[start + 1..];
    rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
}

/// Whether `block` holds `line`, whatever its indentation.
fn has_line(block: &str, line: &str) -> bool {
    block.lines().any(|l| l.trim() == line)
}

/// `generar-compose.sh --postgres` on its own: no Docker needed.
#[test]
fn generar_compose_with_postgres_adds_a_formation_a_second_central_and_both_centrals_to_each_agency()
 {
    let dir = util::temp_dir("generar-compose-postgres");
    let file = dir.join("docker-compose-dev.yaml");
    let generate = |args: &[&str]| {
        Command::new(repo_root().join("generar-compose.sh"))
            .env_remove("CONTAINER_PREFIX")
            .env_remove("SERVER_IMAGE")
            .env_remove("POSTGRES_IMAGE")
            .env_remove("POSTGRES_PASSWORD")
            .arg(&file)
            .args(args)
            .output()
            .unwrap()
    };
    let output = generate(&["2", "--postgres"]);
    assert!(output.status.success(), "{}", printed(&output));
    let text = std::fs::read_to_string(&file).unwrap();
    let server = service_block(&text, "server");
    for line in [
        "- ./.data/postgres/central.env",
        "- AGENCIES=2",
        "node1:",
        "node2:",
        "- timeout:1",
        "restart: on-failure",
    ] {
        assert!(has_line(&server, line), "no `{line}` in:\n{server}");
    }
    assert_eq!(
        server.matches("condition: service_healthy").count(),
        2,
        "{server}"
    );
    // The second central is the first under another name.
    assert_eq!(
        service_block(&text, "server-2"),
        server
            .replace("  server:", "  server-2:")
            .replace("container_name: server", "container_name: server-2"),
    );
    for (service, command, after) in [
        ("monitor", r#"["monitor"]"#, None),
        ("node1", r#"["node", "node1"]"#, Some("monitor")),
        ("node2", r#"["node", "node2"]"#, Some("node1")),
    ] {
        let block = service_block(&text, service);
        for line in [
            format!("container_name: {service}"),
            "image: lottery-postgres:latest".to_string(),
            format!("command: {command}"),
            "- ./.data/postgres/postgres.env".to_string(),
            "- /var/lib/postgresql".to_string(),
            "test: [\"CMD\", \"pg_isready\", \"--quiet\", \"--host=127.0.0.1\", \"--port=5432\"]"
                .to_string(),
            "- lottery_db".to_string(),
            "- ALL".to_string(),
            "- no-new-privileges:true".to_string(),
        ] {
            assert!(has_line(&block, &line), "no `{line}` in:\n{block}");
        }
        // Each node registers with the monitor; node1, the first, is the
        // primary before node2 copies it.
        match after {
            Some(after) => assert!(
                block.contains(&format!(
                    "    depends_on:\n      {after}:\n        condition: service_healthy"
                )),
                "{block}"
            ),
            None => assert!(!block.contains("depends_on"), "{block}"),
        }
    }
    for agency in ["client1", "client2"] {
        let block = service_block(&text, agency);
        assert!(
            has_line(&block, "- CLI_SERVER_ADDRESS=server:12345,server-2:12345"),
            "{block}"
        );
    }
    assert!(
        text.starts_with(&format!(
            "# Written by ./generar-compose.sh {} 2 --postgres:",
            file.display()
        )),
        "{text}"
    );

    // A password that would need quoting is refused, and nothing written.
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_dir_all(dir.join(".data")).unwrap();
    let output = Command::new(repo_root().join("generar-compose.sh"))
        .env("POSTGRES_PASSWORD", "it's")
        .arg(&file)
        .args(["2", "--postgres"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", printed(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("POSTGRES_PASSWORD may hold only"),
        "{}",
        printed(&output)
    );
    assert!(!file.exists());
    assert!(!dir.join(".data/postgres").exists());

    // Without --postgres, nothing of it.
    let output = generate(&["2"]);
    assert!(output.status.success(), "{}", printed(&output));
    let plain = std::fs::read_to_string(&file).unwrap();
    // Past the first line, which names the file.
    let body = plain.split_once('\n').unwrap().1;
    for word in [
        "postgres",
        "STORAGE",
        "server-2",
        "monitor",
        "node1",
        "CLI_SERVER_ADDRESS",
        "dns_opt",
        "restart:",
    ] {
        assert!(!body.contains(word), "`{word}` in:\n{plain}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The networks a service of a compose file is on.
fn networks_in_block(block: &str) -> Vec<String> {
    let Some((_, rest)) = block.split_once("\n    networks:\n") else {
        return Vec::new();
    };
    rest.lines()
        .take_while(|l| l.starts_with("      "))
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(str::to_string)
        .collect()
}

/// `generar-compose.sh --postgres` on its own: no Docker needed.
#[test]
fn generar_compose_with_postgres_keeps_a_random_password_in_data_and_the_database_on_a_network_without_agencies()
 {
    let dir = util::temp_dir("generar-compose-pg-secret");
    let file = dir.join("docker-compose-dev.yaml");
    let generate = |password: Option<&str>| {
        let mut command = Command::new(repo_root().join("generar-compose.sh"));
        command
            .env_remove("CONTAINER_PREFIX")
            .env_remove("POSTGRES_PASSWORD")
            .arg(&file)
            .args(["2", "--postgres"]);
        if let Some(password) = password {
            command.env("POSTGRES_PASSWORD", password);
        }
        run(&mut command);
        std::fs::read_to_string(&file).unwrap()
    };
    let text = generate(None);
    let password = kept_password(&dir);
    // 24 random bytes in hex: no default, nothing to guess.
    assert_eq!(password.len(), 48, "{password}");
    assert!(
        password.chars().all(|c| c.is_ascii_hexdigit()),
        "{password}"
    );
    for secret in [
        password.as_str(),
        "POSTGRES_PASSWORD=",
        "STORAGE=",
        "lottery:lottery@",
    ] {
        assert!(
            !text.contains(secret),
            "`{secret}` in the compose file:\n{text}"
        );
    }

    // The centrals are on both networks, the formation on the database's
    // only, the agencies on theirs only.
    let on = |service: &str| networks_in_block(&service_block(&text, service));
    for service in CENTRALS {
        assert_eq!(on(service), ["lottery_net", "lottery_db"], "{text}");
    }
    for service in FORMATION {
        assert_eq!(on(service), ["lottery_db"], "{service}:\n{text}");
    }
    for service in ["client1", "client2"] {
        assert_eq!(on(service), ["lottery_net"], "{service}:\n{text}");
    }
    assert!(
        text.contains("\n  lottery_db:\n    internal: true\n"),
        "{text}"
    );

    // Written again (another N, say), the deployment keeps its password:
    // its clusters may still be up with it.
    generate(None);
    assert_eq!(kept_password(&dir), password);
    // Another directory, another password.
    let other = util::temp_dir("generar-compose-pg-secret-2");
    run(Command::new(repo_root().join("generar-compose.sh"))
        .env_remove("POSTGRES_PASSWORD")
        .arg(other.join("docker-compose-dev.yaml"))
        .args(["1", "--postgres"]));
    assert_ne!(kept_password(&other), password);
    std::fs::remove_dir_all(&other).unwrap();

    // POSTGRES_PASSWORD, when set, is the one kept, and still not in the file.
    let text = generate(Some("chosen.pass_1"));
    assert_eq!(kept_password(&dir), "chosen.pass_1");
    assert!(!text.contains("chosen.pass_1"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What `sql` prints on `service`'s server, in psql's unaligned form.
/// `sql` on `service`'s server, asked again for up to a minute while the
/// server does not answer: pg_autoctl restarts a node's PostgreSQL when the
/// monitor changes its role ("the database system is shutting down").
fn psql(project: &Project, service: &str, sql: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut command = docker();
        command
            .args(["exec", &project.container(service), "psql"])
            .args(["--username=postgres", "--dbname=lottery", "--no-psqlrc"])
            .args(["--tuples-only", "--no-align", "--command", sql]);
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        if output.status.success() {
            return String::from_utf8_lossy(&output.stdout).trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{command:?} failed ({}):\n{}",
            output.status,
            printed(&output)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The node that takes writes, once one does (within [`RUN_TIMEOUT`]).
fn primary_node(project: &Project) -> &'static str {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        for node in NODES {
            let answer = docker()
                .args(["exec", &project.container(node), "psql"])
                .args(["--username=postgres", "--dbname=postgres", "--no-psqlrc"])
                .args(["--tuples-only", "--no-align", "--command"])
                // As a read-write session of libpq finds it: out of
                // recovery, and not read-only (pg_auto_failover makes a
                // primary read-only while its role changes).
                .arg("SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'")
                .output();
            if answer.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "t") {
                return node;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no node takes writes:\n{}",
            project.all_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `agency|bets|winners` of every agency, as the bets `service` holds say.
fn bets_in_database(project: &Project, service: &str) -> String {
    psql(
        project,
        service,
        "SELECT agency, count(*), count(*) FILTER (WHERE number = 7574) FROM lottery.bets GROUP BY agency ORDER BY agency",
    )
}

/// `agency|bets|winners` of every agency, as its file says.
fn bets_expected(project: &Project, winners: &[u32]) -> String {
    (1..=project.agencies)
        .zip(winners)
        .map(|(i, w)| {
            let path = project.data_dir().join(format!("agency-{i}.csv"));
            let text = std::fs::read_to_string(&path).unwrap();
            let bets = text.lines().filter(|l| !l.trim().is_empty()).count();
            format!("{i}|{bets}|{w}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `node` holds `expected` (a standby shows what it has
/// flushed once it has replayed it too, which it does in moments).
fn wait_for_bets(project: &Project, node: &str, expected: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = bets_in_database(project, node);
        if held == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {node}'s bets:\n{held}\nexpected:\n{expected}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Checks the formation after a run: the primary has its synchronous
/// standby, and both nodes hold every bet of the files once, with the
/// winners among them, and every agency closed.
fn assert_every_bet_on_both_nodes(project: &Project, expected: &str, what: &str) {
    let primary = primary_node(project);
    let standby = NODES.iter().find(|n| **n != primary).unwrap();
    // A formation just started again may still be catching its standby up.
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let state = psql(
            project,
            primary,
            "SELECT sync_state FROM pg_stat_replication",
        );
        if state == "quorum" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the primary {primary}'s standby: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_ne!(
        psql(project, primary, "SHOW synchronous_standby_names"),
        "",
        "{what}: the primary {primary} waits for no standby"
    );
    assert_eq!(
        bets_in_database(project, primary),
        expected,
        "{what}: the primary {primary}'s bets"
    );
    assert_eq!(
        psql(
            project,
            primary,
            "SELECT count(*) FROM lottery.closed_agencies"
        ),
        project.agencies.to_string()
    );
    wait_for_bets(project, standby, expected, what);
}

/// Starts a `--postgres` project on the course dataset (generated bets
/// without it); the winners expected.
fn postgres_project(compose: Vec<&'static str>, test: &str) -> (Project, Vec<u32>) {
    let mut project = Project::new_of(compose, test, true);
    let winners = match util::course_dataset() {
        Some(zip) => {
            say(&format!("{test}: the course dataset"));
            util::unzip_course_dataset(&zip, &project.data_dir());
            COURSE_WINNERS.to_vec()
        }
        None => {
            say(&format!(
                "{test}: no course dataset, generated bets instead"
            ));
            util::generate(&project.data_dir(), 5, 5_000, 5)
        }
    };
    let said = project.generate_with(5, &["--postgres"]);
    assert!(said.contains("pg_auto_failover formation"), "{said}");
    (project, winners)
}

/// The course dataset through compose with `--postgres`: the agencies get
/// their winners, every bet is on the primary and on its synchronous
/// standby once, and the second central heard the draw. `up -d` again on
/// the stopped deployment restarts the formation and both centrals resume
/// the lottery; a central recreated with a new, empty volume resumes it from
/// the database; `keep-lottery.sh` dumps it; `down` ends it, and the next
/// `up` is a new lottery on a new formation.
#[test]
fn the_course_dataset_on_a_postgres_formation_with_two_centrals_gets_its_winners_and_every_bet_is_on_both_nodes()
 {
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip("postgres") else {
        return;
    };
    let started = Instant::now();
    let (project, winners) = postgres_project(compose, "pg");
    let total = bets_in_files(&project);
    let expected = bets_expected(&project, &winners);

    for round in 1..=2 {
        let central = run_lottery(&project, &winners);
        let recovered: Vec<&String> = central
            .iter()
            .filter(|l| l.contains("action: recuperar | result: success"))
            .collect();
        assert!(
            recovered
                .first()
                .is_some_and(|l| field(l, "apuestas") == Some("0")),
            "round {round}: the central did not start a new lottery: {recovered:?}"
        );
        assert_eq!(primary_node(&project), "node1", "round {round}");
        assert_every_bet_on_both_nodes(&project, &expected, &format!("round {round}"));
        // The second central, which no agency needed, heard the draw the
        // database recorded.
        project.wait_for_log("server-2", "action: sorteo | result: success");
        say(&format!(
            "postgres: round {round}: {total} bets, on the primary and its synchronous standby; winners {winners:?}; {:.1} s so far",
            started.elapsed().as_secs_f64()
        ));

        if round == 1 {
            // The whole deployment stopped and started again: the formation
            // restarts on its volumes, both centrals resume the lottery.
            run(&mut project.compose(&["stop", "--timeout", "20"]));
            let restarted = SystemTime::now();
            // The centrals and, by their depends_on, the formation (the
            // agencies are done).
            run(&mut project.compose(&["up", "--detach", "server", "server-2"]));
            for central in CENTRALS {
                let deadline = Instant::now() + RUN_TIMEOUT;
                loop {
                    let log = logged_since(&project.container(central), restarted);
                    if let Some(line) = log
                        .lines()
                        .find(|l| l.contains("action: recuperar | result: success"))
                    {
                        assert_eq!(
                            field(line, "apuestas"),
                            Some(total.to_string().as_str()),
                            "{central} after `up` again: {line}"
                        );
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{central} did not resume after `up` again:\n{}",
                        project.all_logs()
                    );
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
            assert_every_bet_on_both_nodes(&project, &expected, "after `up` again");

            // A central with a new, empty volume of its own has nothing
            // but the database to resume from.
            let volumes = central_volumes(&project);
            run(&mut project.compose(&[
                "up",
                "--detach",
                "--no-deps",
                "--force-recreate",
                "--renew-anon-volumes",
                "server",
            ]));
            assert_ne!(central_volumes(&project), volumes, "the same volume");
            run_quietly(docker().args(["volume", "rm"]).args(&volumes));
            let central = project.wait_for_log("server", "action: escuchar");
            let recovered = central
                .iter()
                .find(|l| l.contains("action: recuperar | result: success"))
                .expect("the recreated central logged no recovery");
            assert_eq!(
                field(recovered, "apuestas"),
                Some(total.to_string().as_str()),
                "{recovered}"
            );
            assert_eq!(field(recovered, "agencias_cerradas"), Some("5"));
            assert!(
                central
                    .iter()
                    .any(|l| l.contains("action: sorteo | result: success")),
                "the recreated central did not restore the draw:\n{}",
                central.join("\n")
            );
        }
        stop_and_check_central(&project);
        let formation: Vec<String> = FORMATION.iter().map(|s| project.container(s)).collect();
        assert_eq!(
            project.states(&formation),
            vec![("exited".to_string(), 0); 3],
            "the formation after `stop`"
        );

        if round == 1 {
            // What `make docker-compose-down` keeps: a dump of the database.
            let mut keep = Command::new(repo_root().join("scripts/keep-lottery.sh"));
            keep.arg(project.compose_file())
                .args(&project.compose)
                .arg("--project-name")
                .arg(&project.name)
                .current_dir(&project.dir);
            let said = run(&mut keep);
            assert!(
                said.contains(&format!("({total} bets in PostgreSQL, 5 agencies closed)")),
                "{said}"
            );
            let kept: Vec<PathBuf> = std::fs::read_dir(project.data_dir().join("lotteries"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(kept.len(), 1, "{kept:?}");
            let dump = std::fs::read_to_string(kept[0].join("lottery.sql")).unwrap();
            let rows = dump
                .split_once("COPY lottery.bets ")
                .and_then(|(_, rest)| rest.split_once('\n'))
                .and_then(|(_, rows)| rows.split_once("\n\\.\n"))
                .map(|(rows, _)| rows.lines().count() as u64);
            assert_eq!(rows, Some(total), "the bets of {}", kept[0].display());
            // lottery-export's bets.csv: every agency's rows, in its order.
            util::assert_bets_file_is_the_union(
                &kept[0].join("bets.csv"),
                &util::agency_files(&project.data_dir(), 5),
            );
            assert_eq!(
                project
                    .states(&formation)
                    .iter()
                    .filter(|(status, _)| status == "running")
                    .count(),
                0,
                "the formation after the dump"
            );
            // `down` ends the lottery with the volumes; the next `up` is a
            // new lottery on a new formation.
            run(&mut project.compose(&["down", "--volumes", "--timeout", "20"]));
        }
    }
    say(&format!(
        "postgres: two rounds in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// The `cantidad` sum of the batches `container` stored, from its log.
fn stored_by(container: &str) -> u64 {
    let output = docker().args(["logs", container]).output().unwrap();
    // The central logs to stderr.
    let log = String::from_utf8_lossy(&output.stderr);
    log.lines()
        .filter(|l| l.contains("action: apuesta_recibida | result: success"))
        .filter_map(|l| field(l, "cantidad")?.parse::<u64>().ok())
        .sum()
}

/// Waits until the centrals together have stored `bets` bets.
fn wait_until_stored(project: &Project, bets: u64) {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let stored: u64 = CENTRALS
            .iter()
            .map(|c| stored_by(&project.container(c)))
            .sum();
        if stored >= bets {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the centrals stored {stored} of {bets} bets in {RUN_TIMEOUT:?}:\n{}",
            project.all_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `container` logs a line holding `needle` after `since`;
/// the seconds from `since` to when the test saw it (within the 100 ms of
/// a poll and the time `docker logs` takes).
fn seconds_until_logged(
    project: &Project,
    container: &str,
    since: SystemTime,
    needle: &str,
) -> f64 {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if logged_since(container, since).contains(needle) {
            return since.elapsed().unwrap().as_secs_f64();
        }
        assert!(
            Instant::now() < deadline,
            "{container} did not log {needle:?} within {RUN_TIMEOUT:?} of the kill:\n{}",
            project.all_logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `--postgres` deployment loses neither an agency nor a bet when one
/// central and then the primary PostgreSQL node are killed (`docker kill`)
/// while the agencies send: the agencies move to the other central, the
/// monitor promotes the standby, the surviving central reconnects to it,
/// and every agency finishes with its winners; the new primary holds every
/// bet of the files once. The seconds from each kill to the next batch
/// stored are printed (figures, not assertions).
#[test]
fn a_postgres_deployment_survives_a_central_and_its_primary_killed_mid_run() {
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip("postgres_kills") else {
        return;
    };
    let started = Instant::now();
    let mut project = Project::new_of(compose, "pgkill", true);
    // Enough bets for a run of many seconds, so that both kills land while
    // the agencies send.
    let per_agency = util::env_or("POSTGRES_KILL_BETS", 300_000u32);
    let winners = util::generate(&project.data_dir(), 5, per_agency, 23);
    project.generate_with(5, &["--postgres"]);
    let total = bets_in_files(&project);
    let expected = bets_expected(&project, &winners);
    run(&mut project.compose(&["up", "--detach"]));
    assert_eq!(primary_node(&project), "node1");

    // Every agency tries `server` first; one that found it not yet
    // listening has moved to server-2 already.
    wait_until_stored(&project, total / 5);
    let server = project.container("server");
    let server_2 = project.container("server-2");
    let before = (stored_by(&server), stored_by(&server_2));
    let killed = SystemTime::now();
    run(docker().args(["kill", &server]));
    let moved = seconds_until_logged(
        &project,
        &server_2,
        killed,
        "action: apuesta_recibida | result: success",
    );
    say(&format!(
        "postgres_kills: central `server` killed with {} bets stored by it and {} by server-2, of {total}; server-2 stored a batch {moved:.1} s later",
        before.0, before.1
    ));

    wait_until_stored(&project, total / 2);
    let primary = project.container("node1");
    let killed = SystemTime::now();
    run(docker().args(["kill", &primary]));
    let resumed = seconds_until_logged(
        &project,
        &server_2,
        killed,
        "action: guardar_apuestas | result: success | reconectado",
    );
    say(&format!(
        "postgres_kills: primary node1 killed at {} of {total} bets stored; server-2 committed on the promoted node2 {resumed:.1} s later",
        stored_by(&server) + stored_by(&server_2)
    ));

    let codes = project.wait_for_agencies();
    let agency_logs = project.agency_logs();
    for (i, (code, log)) in codes.iter().zip(&agency_logs).enumerate() {
        assert_eq!(
            *code,
            0,
            "agency {} exited with {code}:\n{}",
            i + 1,
            log.join("\n")
        );
        let reported: Vec<&str> = log
            .iter()
            .filter(|l| l.contains("action: consulta_ganadores | result: success"))
            .filter_map(|l| field(l, "cant_ganadores"))
            .collect();
        assert_eq!(
            reported,
            [winners[i].to_string()],
            "agency {}'s winners:\n{}",
            i + 1,
            log.join("\n")
        );
    }
    assert_eq!(primary_node(&project), "node2");
    assert_eq!(
        bets_in_database(&project, "node2"),
        expected,
        "the promoted node2's bets"
    );
    assert_eq!(
        psql(
            &project,
            "node2",
            "SELECT count(*) FROM lottery.closed_agencies"
        ),
        "5"
    );
    say(&format!(
        "postgres_kills: {total} bets, winners {winners:?}, in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// The networks `container` is on, or its addresses on them (`what`:
/// `{{$name}}` or `{{$net.IPAddress}}`).
fn container_networks(container: &str, what: &str) -> Vec<String> {
    let format =
        format!("{{{{range $name, $net := .NetworkSettings.Networks}}}}{what} {{{{end}}}}");
    run(docker().args(["inspect", "--format", &format, container]))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A `--postgres` deployment keeps the database to the centrals: the
/// formation shares no network with the agencies, so a container on the
/// agencies' network reaches none of its servers, by name nor by address,
/// while one on the database's network does. The password is in no compose
/// file and on no command line: not in any container's processes, nor in
/// the `docker` commands of `keep-lottery.sh`. Every container runs
/// confined.
#[test]
fn no_agency_reaches_the_database_of_a_postgres_deployment_and_its_password_is_on_no_command_line()
{
    let _one_at_a_time = lock();
    let Some(compose) = compose_or_skip("pg_isolated") else {
        return;
    };
    let mut project = Project::new_of(compose, "pgnet", true);
    let winners = util::generate(&project.data_dir(), 2, 300, 11);
    project.generate_with(2, &["--postgres"]);
    run_lottery(&project, &winners);

    let formation: Vec<String> = FORMATION.iter().map(|s| project.container(s)).collect();
    let centrals: Vec<String> = CENTRALS.iter().map(|s| project.container(s)).collect();

    let agency_networks = container_networks(&project.container("client1"), "{{$name}}");
    let database_networks = container_networks(&formation[0], "{{$name}}");
    assert!(
        agency_networks
            .iter()
            .all(|n| !database_networks.contains(n)),
        "the agencies ({agency_networks:?}) share a network with the database ({database_networks:?})"
    );
    for container in &formation {
        assert_eq!(
            container_networks(container, "{{$name}}"),
            database_networks
        );
    }
    let postgres_image = project.postgres_image.clone().unwrap();
    let probe = |network: &str, host: &str| {
        docker()
            .args(["run", "--rm", "--network", network])
            .args(["--entrypoint", "pg_isready", &postgres_image])
            .arg(format!("--host={host}"))
            .args(["--port=5432", "--timeout=3"])
            .output()
            .unwrap()
    };
    // The probe works where the database is.
    for network in &database_networks {
        for host in FORMATION {
            let output = probe(network, host);
            assert!(
                output.status.success(),
                "from {network} to {host}: {}",
                printed(&output)
            );
        }
    }
    // Where the agencies are: no answer (2), by name or by address.
    let mut hosts: Vec<String> = FORMATION.iter().map(|s| s.to_string()).collect();
    for container in &formation {
        hosts.extend(container_networks(container, "{{$net.IPAddress}}"));
    }
    for network in &agency_networks {
        for host in &hosts {
            let output = probe(network, host);
            assert_eq!(
                output.status.code(),
                Some(2),
                "from the agencies' {network} to {host}: {}",
                printed(&output)
            );
        }
    }

    let mut containers = project.agency_containers();
    containers.extend(centrals.iter().cloned());
    containers.extend(formation.iter().cloned());
    assert_confined(&containers);

    // The centrals reached the database with the password kept in .data/,
    // which no process of the deployment has on its command line.
    let password = kept_password(&project.dir);
    let text = std::fs::read_to_string(project.compose_file()).unwrap();
    assert!(!text.contains(&password), "{text}");
    for container in centrals.iter().chain(&formation) {
        let processes = run(docker().args(["top", container, "-o", "pid,args"]));
        assert!(
            !processes.contains(&password),
            "{container}'s processes:\n{processes}"
        );
        let config = run(docker().args([
            "inspect",
            "--format",
            "{{.Path}} {{json .Args}} {{json .Config.Healthcheck}}",
            container,
        ]));
        assert!(!config.contains(&password), "{container}: {config}");
    }

    // keep-lottery.sh hands the central's STORAGE to lottery-export through
    // the environment: a `docker` in front of the real one records every
    // command line it is given.
    run(&mut project.compose(&["stop", "--timeout", "20"]));
    let spy = project.dir.join("spy");
    std::fs::create_dir_all(&spy).unwrap();
    let real_docker = run(Command::new("sh").args(["-c", "command -v docker"]));
    let script = spy.join("docker");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >>\"$SPY_LOG\"\nexec {} \"$@\"\n",
            real_docker.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let spied = project.dir.join("docker-commands.txt");
    let path = format!(
        "{}:{}",
        spy.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut keep = Command::new(repo_root().join("scripts/keep-lottery.sh"));
    keep.arg(project.compose_file())
        .args(&project.compose)
        .arg("--project-name")
        .arg(&project.name)
        .env("PATH", path)
        .env("SPY_LOG", &spied)
        .current_dir(&project.dir);
    let said = run(&mut keep);
    let total = bets_in_files(&project);
    assert!(
        said.contains(&format!("({total} bets in PostgreSQL, 2 agencies closed)")),
        "{said}"
    );
    let commands = std::fs::read_to_string(&spied).unwrap();
    assert!(
        commands.contains("/lottery-export"),
        "the spy did not see lottery-export run:\n{commands}"
    );
    assert!(
        !commands.contains(&password),
        "the password on a command line:\n{commands}"
    );
}
