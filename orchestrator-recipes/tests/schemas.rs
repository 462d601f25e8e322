//! The committed `schemas/*.json` are exactly what the code generates.

use std::path::Path;

use orchestrator_recipes::schema;

#[test]
fn committed_schemas_match_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    for (name, value) in schema::all() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_else(|e| {
            panic!("schemas/{name} is missing ({e}); run `orchestrator schema --out schemas`")
        });
        assert!(
            committed == schema::render(value),
            "schemas/{name} differs from the generated schema; run `orchestrator schema --out schemas` and commit it"
        );
        let parsed: serde_json::Value = serde_json::from_str(&committed).unwrap();
        assert_eq!(
            parsed["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}

#[test]
fn schemas_forbid_unknown_keys_everywhere() {
    // Every object schema that has properties closes them, so a typo is always caught.
    fn walk(value: &serde_json::Value, path: &str, open: &mut Vec<String>) {
        if let Some(map) = value.as_object() {
            if map.contains_key("properties")
                && map.get("additionalProperties") != Some(&false.into())
            {
                open.push(path.to_owned());
            }
            for (k, v) in map {
                walk(v, &format!("{path}/{k}"), open);
            }
        }
    }
    for (name, value) in schema::all() {
        let mut open = Vec::new();
        walk(value, "", &mut open);
        assert!(open.is_empty(), "{name}: open objects at {open:?}");
    }
}
