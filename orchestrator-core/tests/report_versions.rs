//! Reports of every version this orchestrator wrote read back: `report.json` of a real
//! local session written by the previous version (2, `fixtures/report-v2.json`), and
//! version 3 as this one writes it.

use orchestrator_core::SessionReport;
use orchestrator_core::lifecycle::{ClientState, ServiceState, SessionState};

const V2: &str = include_str!("fixtures/report-v2.json");

#[test]
fn a_version_2_report_reads_as_version_3() {
    let raw: serde_json::Value = serde_json::from_str(V2).unwrap();
    assert_eq!(raw["report_version"], 2);
    let report = SessionReport::from_json(V2).unwrap();
    assert_eq!(report.report_version, 3);
    assert_eq!(report.session.state, SessionState::Completed);
    let service = &report.services[0];
    assert_eq!(service.state, ServiceState::Stopped);
    assert_eq!(service.recipe["name"], "http-demo", "the recipe is a value");
    assert_eq!(service.recipe["ports"][0], 18787);
    assert_eq!(report.clients[0].state, ClientState::Completed);
    assert!(report.clients[0].created_at.ends_with('Z'));
    let result = &report.results[0];
    assert_eq!(result.name, "stdout");
    assert_eq!(result.bytes, raw["results"][0]["bytes"].as_u64().unwrap());
    assert!(result.fetched_at.starts_with("20"), "{}", result.fetched_at);
    assert_eq!(report.runs.len(), raw["runs"].as_array().unwrap().len());
    // What was not reshaped is as it was.
    assert_eq!(
        serde_json::to_value(&report.timeline).unwrap(),
        raw["timeline"]
    );
    assert_eq!(serde_json::to_value(&report.jobs).unwrap(), raw["jobs"]);
}

#[test]
fn a_version_3_report_reads_back_as_it_was_written() {
    let report = SessionReport::from_json(V2).unwrap();
    let written = serde_json::to_string(&report).unwrap();
    let again = SessionReport::from_json(&written).unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&report).unwrap()
    );
    let value: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert!(value["services"][0].get("session_id").is_none());
    assert!(value["results"][0].get("id").is_none());
}

#[test]
fn another_version_or_no_report_is_refused_with_what_is_read() {
    let mut raw: serde_json::Value = serde_json::from_str(V2).unwrap();
    raw["report_version"] = 9.into();
    let error = SessionReport::from_json(&raw.to_string()).unwrap_err();
    assert!(
        error.contains("report version 9; this orchestrator reads versions 2 and 3"),
        "{error}"
    );
    let error = SessionReport::from_json("{\"name\": \"redis\"}").unwrap_err();
    assert!(error.contains("not a session report"), "{error}");
    assert!(
        SessionReport::from_json("name: redis")
            .unwrap_err()
            .contains("not JSON")
    );
}
