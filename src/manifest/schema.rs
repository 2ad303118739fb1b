//! The JSON Schema of deploy.yml, printed by `deploy-action schema`.

/// The schema as pretty JSON text.
pub fn json_schema_text() -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "deploy-action manifest (deploy.yml)",
        "type": "object"
    }))
    .unwrap_or_default()
}
