//! Helpers shared by the integration tests: where the built binaries are,
//! free ports, temporary directories, the course dataset.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// The central's binary, built by cargo for this test run.
pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lottery-server"))
}

/// The agency's binary. It belongs to another package of the workspace, so
/// `make test` builds it first (`cargo build --workspace`) into the same
/// target directory as the central's.
pub fn client_bin() -> PathBuf {
    let path = server_bin().with_file_name("lottery-client");
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (make test does)",
        path.display()
    );
    path
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh empty directory under the target directory, named for the test.
pub fn temp_dir(name: &str) -> PathBuf {
    let base = server_bin()
        .parent()
        .unwrap()
        .join("test-tmp")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    base
}

/// The course dataset (`shared/data/dataset.zip` beside the repository), if present.
pub fn course_dataset() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let zip = root.join("../shared/data/dataset.zip");
    zip.exists().then_some(zip)
}
