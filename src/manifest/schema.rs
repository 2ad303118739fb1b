//! The JSON Schema (draft 2020-12) of deploy.yml, printed by `deploy-action schema` for editors.
//! Generated from the key tables in `keys.rs` — the same tables `validate/` checks against — so the
//! schema and the validator cannot drift. Pure.
//!
//! The schema describes shapes (keys, types, allowed words, patterns); cross-references such as
//! `promote_from` naming an existing environment are checked only by `deploy-action check`.

use super::keys::{self, Field, Table, Ty};
use serde_json::{Map, Value, json};

/// Names of environments and units.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]*$";
/// `500ms`, `60s`, `5m`, `1h30m`.
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";
/// An environment variable name.
pub const VAR_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// `local` or `ssh://user@host[:port]`.
pub const HOST_PATTERN: &str =
    r"^(local|ssh://[A-Za-z0-9._-]+@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?)$";

/// The schema as a JSON value.
pub fn json_schema() -> Value {
    let mut root = table_schema(&keys::ROOT);
    if let Value::Object(m) = &mut root {
        m.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        m.insert(
            "$id".into(),
            json!("https://github.com/deploy-action/deploy-action/deploy.schema.json"),
        );
        m.insert("title".into(), json!("deploy-action manifest (deploy.yml)"));
    }
    root
}

/// The schema as pretty JSON text.
pub fn json_schema_text() -> String {
    serde_json::to_string_pretty(&json_schema()).unwrap_or_default()
}

fn table_schema(t: &Table) -> Value {
    let mut props = Map::new();
    for f in t.fields {
        props.insert(f.name.into(), field_schema(f));
    }
    let required: Vec<&str> = t
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut m = Map::new();
    m.insert("type".into(), json!("object"));
    m.insert("additionalProperties".into(), json!(false));
    m.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        m.insert("required".into(), json!(required));
    }
    Value::Object(m)
}

fn field_schema(f: &Field) -> Value {
    let mut v = ty_schema(&f.ty);
    if let Value::Object(m) = &mut v {
        let mut desc = f.description.to_string();
        if let Some(d) = f.default {
            desc.push_str(&format!(" Default: {d}."));
        }
        if !desc.is_empty() {
            m.insert("description".into(), json!(desc));
        }
    }
    v
}

fn ty_schema(ty: &Ty) -> Value {
    match ty {
        Ty::String => json!({"type": "string"}),
        Ty::Int { min, max } if min == max => json!({"const": min}),
        Ty::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Ty::StringList => json!({"type": "array", "items": {"type": "string"}}),
        Ty::VarList => {
            json!({"type": "array", "items": {"type": "string", "pattern": VAR_PATTERN}})
        }
        Ty::GlobList => {
            json!({"type": "array", "items": {"type": "string", "description": "A glob: *, **, ?, [abc], {a,b}."}})
        }
        Ty::Enum(words) => json!({"type": "string", "enum": words}),
        Ty::Duration => json!({"type": "string", "pattern": DURATION_PATTERN}),
        Ty::HostList => {
            json!({"type": "array", "items": {"type": "string", "pattern": HOST_PATTERN}})
        }
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Object(t) => table_schema(t),
        Ty::Named(t) => json!({
            "type": ["object", "null"],
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": {"anyOf": [table_schema(t), {"type": "null"}]},
        }),
        Ty::OneOf(tys) => json!({"oneOf": tys.iter().map(ty_schema).collect::<Vec<_>>()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::raw::{self, Kind, Node, ScalarType};

    /// The YAML tree as JSON under the core schema.
    fn to_json(n: &Node) -> Value {
        match &n.kind {
            Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap().to_string(), to_json(v)))
                    .collect(),
            ),
            Kind::Scalar { value, .. } => match n.scalar_type().unwrap() {
                ScalarType::Null => Value::Null,
                ScalarType::Bool => json!(value.eq_ignore_ascii_case("true")),
                ScalarType::Int => json!(value.parse::<i64>().unwrap()),
                ScalarType::Float => json!(value.parse::<f64>().unwrap()),
                ScalarType::String => json!(value),
            },
        }
    }

    /// A structural check of `v` against the subset of JSON Schema this module generates
    /// (type, const, enum, minimum, maximum, properties, required, additionalProperties,
    /// propertyNames, items, oneOf, anyOf). Patterns are not checked. Errors name the JSON path.
    fn check(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
        let s = schema.as_object().expect("schema object");
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                _ => panic!("bad type"),
            };
            let ok = types.iter().any(|t| match *t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "integer" => v.is_i64(),
                "boolean" => v.is_boolean(),
                "null" => v.is_null(),
                other => panic!("type {other}"),
            });
            if !ok {
                return Err(format!("{path}: expected {t}, found {v}"));
            }
        }
        if let Some(c) = s.get("const")
            && c != v
        {
            return Err(format!("{path}: expected {c}"));
        }
        if let Some(Value::Array(e)) = s.get("enum")
            && !e.contains(v)
        {
            return Err(format!("{path}: {v} not in {e:?}"));
        }
        if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_i64), v.as_i64())
            && n < min
        {
            return Err(format!("{path}: below minimum"));
        }
        if let (Some(max), Some(n)) = (s.get("maximum").and_then(Value::as_i64), v.as_i64())
            && n > max
        {
            return Err(format!("{path}: above maximum"));
        }
        if let (Some(Value::Array(items)), Some(schema)) = (Some(v), s.get("items")) {
            for (i, item) in items.iter().enumerate() {
                check(schema, item, &format!("{path}[{i}]"))?;
            }
        }
        if let Value::Object(obj) = v {
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(Value::Array(req)) = s.get("required") {
                for r in req {
                    if !obj.contains_key(r.as_str().unwrap()) {
                        return Err(format!("{path}: missing {r}"));
                    }
                }
            }
            for (k, val) in obj {
                let sub = format!("{path}.{k}");
                match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                    (Some(ps), _) => check(ps, val, &sub)?,
                    (None, Some(Value::Bool(false))) => return Err(format!("{sub}: not allowed")),
                    (None, Some(ap @ Value::Object(_))) => check(ap, val, &sub)?,
                    (None, _) => {}
                }
            }
        }
        if let Some(Value::Array(alts)) = s.get("oneOf") {
            let n = alts.iter().filter(|a| check(a, v, path).is_ok()).count();
            if n != 1 {
                return Err(format!("{path}: matches {n} of oneOf"));
            }
        }
        if let Some(Value::Array(alts)) = s.get("anyOf")
            && !alts.iter().any(|a| check(a, v, path).is_ok())
        {
            return Err(format!("{path}: matches none of anyOf"));
        }
        Ok(())
    }

    fn full_example() -> Value {
        to_json(&raw::parse(include_str!("../../examples/deploy.full.yml")).unwrap())
    }

    #[test]
    fn full_example_validates_against_the_schema() {
        let schema = json_schema();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        check(&schema, &full_example(), "$").unwrap();
    }

    #[test]
    fn schema_rejects_what_the_validator_rejects() {
        let schema = json_schema();
        let mut v = full_example();
        v["environments"]["staging"]["hsots"] = json!(["local"]);
        assert!(check(&schema, &v, "$").is_err(), "unknown key hsots");
        let mut v = full_example();
        v["environments"]["staging"]["approval"] = json!("requierd");
        assert!(check(&schema, &v, "$").is_err());
        let mut v = full_example();
        v["version"] = json!(2);
        assert!(check(&schema, &v, "$").is_err());
        let mut v = full_example();
        v["environments"]["staging"]["database"]["engine"] = json!("postgres");
        assert!(
            check(&schema, &v, "$").is_err(),
            "url_env mixed with compose keys"
        );
    }

    /// Every key of every table is used by examples/deploy.full.yml (which the validator accepts),
    /// and appears in the schema where the table sits.
    #[test]
    fn every_accepted_key_is_in_the_schema() {
        let text = json_schema_text();
        let example = include_str!("../../examples/deploy.full.yml");
        crate::manifest::parse(crate::diag::Source::new("deploy.yml", example)).unwrap();
        for t in keys::all_tables() {
            for f in t.fields {
                assert!(
                    text.contains(&format!("\"{}\":", f.name)),
                    "{} missing from the schema",
                    f.name
                );
                assert!(
                    example.contains(&format!("{}:", f.name)),
                    "{}.{} not exercised by the full example",
                    t.what,
                    f.name
                );
            }
        }
        let schema = json_schema();
        let env = &schema["properties"]["environments"]["additionalProperties"]["anyOf"][0];
        for f in keys::ENVIRONMENT.fields {
            assert!(env["properties"].get(f.name).is_some(), "{}", f.name);
        }
        let svc = &schema["properties"]["services"]["additionalProperties"]["anyOf"][0];
        for f in keys::SERVICE.fields {
            assert!(svc["properties"].get(f.name).is_some(), "{}", f.name);
        }
    }
}
