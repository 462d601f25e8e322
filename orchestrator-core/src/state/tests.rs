//! The state store against real SQLite files.

use super::*;

#[test]
fn the_database_is_private_and_migrated_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = StateStore::open(&state).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    drop(store);
    let again = StateStore::open(&state).unwrap();
    assert!(again.sessions().unwrap().is_empty());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join(DATABASE_FILE)), 0o600);
    let wal = state.join(format!("{DATABASE_FILE}-wal"));
    assert!(wal.exists(), "WAL mode keeps a -wal file");
    assert_eq!(mode(&wal), 0o600);
}

#[test]
fn many_connections_creating_and_writing_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let store = StateStore::open(&path).expect("opens while others do");
                for n in 0..25 {
                    store
                        .event(
                            None,
                            Some(&format!("t{i}")),
                            "test.write",
                            Some(&n.to_string()),
                        )
                        .expect("writes while others do");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.events(None, None, 1000).unwrap().len(), 200);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

fn session(id: &str) -> (SessionRow, ServiceRow, ClientRow) {
    let now = now_ms();
    let session = SessionRow {
        id: id.into(),
        name: None,
        recipe_path: None,
        recipe: "{}".into(),
        scheduler: "local".into(),
        target: "local".into(),
        state: SessionState::Starting,
        error: None,
        keep_services: false,
        pid: None,
        pid_start: None,
        max_error_rate: None,
        report_path: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    let service = ServiceRow {
        id: format!("svc-{id}"),
        session_id: id.into(),
        name: "db".into(),
        driver: "generic".into(),
        recipe: "{}".into(),
        state: ServiceState::Pending,
        host: None,
        port: None,
        health: None,
        created_at: now,
        updated_at: now,
    };
    let client = ClientRow {
        id: format!("cli-{id}"),
        session_id: id.into(),
        name: "load".into(),
        driver: "command".into(),
        recipe: "{}".into(),
        target_service_id: Some(service.id.clone()),
        target_host: None,
        target_port: None,
        state: ClientState::Pending,
        created_at: now,
        updated_at: now,
    };
    (session, service, client)
}

/// The bug of issue #16: a session cancelled before its client was submitted left
/// that client `pending` for ever.
#[test]
fn an_ended_session_leaves_no_service_or_client_that_claims_to_be_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let (s, svc, cli) = session("ses-1");
    store
        .insert_session(&s, std::slice::from_ref(&svc), std::slice::from_ref(&cli))
        .unwrap();
    store
        .set_service_state(&svc.id, ServiceState::Running, Some("node1"), None, None)
        .unwrap();
    store
        .set_session_state(&s.id, SessionState::Cancelled, Some("interrupted"))
        .unwrap();
    assert_eq!(
        store.client(&cli.id).unwrap().unwrap().state,
        ClientState::Cancelled
    );
    assert_eq!(
        store.service(&svc.id).unwrap().unwrap().state,
        ServiceState::Stopped
    );
    let row = store.session(&s.id).unwrap().unwrap();
    assert_eq!(row.state, SessionState::Cancelled);
    assert!(row.finished_at.is_some());
    let actions: Vec<String> = store
        .events(Some(&s.id), None, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"client.cancelled".to_owned()),
        "{actions:?}"
    );

    // A failed session fails what was live; what had ended keeps its end.
    let (s, svc, cli) = session("ses-2");
    store
        .insert_session(&s, std::slice::from_ref(&svc), std::slice::from_ref(&cli))
        .unwrap();
    store
        .set_client_state(&cli.id, ClientState::Completed, None)
        .unwrap();
    store
        .set_session_state(&s.id, SessionState::Failed, None)
        .unwrap();
    assert_eq!(
        store.client(&cli.id).unwrap().unwrap().state,
        ClientState::Completed
    );
    assert_eq!(
        store.service(&svc.id).unwrap().unwrap().state,
        ServiceState::Failed
    );

    // A session that goes on running touches nothing.
    let (s, svc, cli) = session("ses-3");
    store
        .insert_session(&s, std::slice::from_ref(&svc), std::slice::from_ref(&cli))
        .unwrap();
    store
        .set_session_state(&s.id, SessionState::Running, None)
        .unwrap();
    assert_eq!(
        store.client(&cli.id).unwrap().unwrap().state,
        ClientState::Pending
    );
    assert!(store.session(&s.id).unwrap().unwrap().finished_at.is_none());
}

#[test]
fn a_state_text_the_orchestrator_did_not_write_is_an_error_not_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let (s, svc, cli) = session("ses-1");
    store.insert_session(&s, &[svc], &[cli]).unwrap();
    let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
    conn.execute("UPDATE sessions SET state = 'exploded'", [])
        .unwrap();
    let error = store.sessions().unwrap_err().to_string();
    assert!(
        error.contains("`exploded` is not a session state"),
        "{error}"
    );
}

#[test]
fn a_database_from_a_newer_orchestrator_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(StateStore::open(dir.path()).unwrap());
    let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = StateStore::open(dir.path()).unwrap_err().to_string();
    assert!(error.contains("schema version 99 is newer"), "{error}");
}
