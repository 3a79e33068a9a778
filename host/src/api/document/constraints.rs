//! The rules the server checks on query values, written into the document where the
//! handlers' declarations cannot say them: the statuses a filter names, the time format, the
//! page sizes and the form of a continuation token; and an example of each common value.

use crate::history::RuntimeStatus;
use serde_json::{Value, json};
use utoipa::Number;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, Object, Schema, SchemaFormat, Type};
use utoipa::openapi::{OpenApi, RefOr};

/// The largest page a `top` asks for.
pub const MAX_PAGE: u32 = 1000;

/// The largest `from` of an entity's history: the operations' `seq` are SQLite integers.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// A `runtimeStatus` filter: statuses by name, separated by commas, spaces around each
/// allowed; empty for no filter.
pub fn runtime_status_pattern() -> String {
    let names = RuntimeStatus::ALL.map(|s| s.as_str()).join("|");
    format!("^( *({names}) *(, *({names}) *)*)?$")
}

/// A continuation token of `GET /instances`: the hex of `CREATED:ID` (see `PageToken`), in
/// either case.
pub const INSTANCE_TOKEN_PATTERN: &str =
    "^(3[0-9]){1,18}3[aA](3[0-9aA]|4[1-9a-fA-F]|5[0-9aAfF]|6[1-9a-fA-F]|7[0-9aA]|2[dDeE]){1,128}$";

/// A continuation token of `GET /entities`: hex, two digits a byte.
pub const ENTITY_TOKEN_PATTERN: &str = "^([0-9a-fA-F]{2})*$";

/// Writes the schema of each query value the server checks more closely than its declaration
/// says.
pub(super) struct QueryRules;

impl utoipa::Modify for QueryRules {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                apply(path, op);
            }
        }
    }
}

/// An example of each value by its name, for readers (and the examples phase of API fuzzers).
fn example(name: &str) -> Option<Value> {
    Some(match name {
        "instanceId" | "id" => json!("order-42"),
        "waitForCompletion" => json!("5s"),
        "runtimeStatus" => json!("Running,Suspended"),
        "createdFrom" => json!("2026-12-01T09:00:00Z"),
        "createdTo" => json!("2026-12-02T09:00:00.000+01:00"),
        "top" => json!(100),
        "from" => json!(0),
        "event" => json!("Approval"),
        "op" => json!("add"),
        "reason" => json!("asked by the operator"),
        _ => return None,
    })
}

fn apply(path: &str, op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        let RefOr::T(p) = p else { continue };
        if let (Some(example), Some(RefOr::T(Schema::Object(schema)))) =
            (example(&p.name), p.schema.as_mut())
        {
            schema.examples = vec![example];
        }
        if !matches!(p.parameter_in, ParameterIn::Query) {
            continue;
        }
        let schema = match p.name.as_str() {
            "runtimeStatus" => string(|s| s.pattern = Some(runtime_status_pattern())),
            "createdFrom" | "createdTo" => string(|s| {
                s.format = Some(SchemaFormat::KnownFormat(KnownFormat::DateTime));
            }),
            "continuationToken" if path == "/instances" => {
                string(|s| s.pattern = Some(INSTANCE_TOKEN_PATTERN.into()))
            }
            "continuationToken" => string(|s| s.pattern = Some(ENTITY_TOKEN_PATTERN.into())),
            "top" => integer(1, u64::from(MAX_PAGE)),
            "from" => integer(0, MAX_SEQ),
            _ => continue,
        };
        let mut schema = schema;
        schema.examples = example(&p.name).into_iter().collect();
        p.schema = Some(RefOr::T(Schema::Object(schema)));
    }
}

fn string(f: impl FnOnce(&mut Object)) -> Object {
    let mut s = Object::with_type(Type::String);
    f(&mut s);
    s
}

fn integer(min: u64, max: u64) -> Object {
    let mut s = Object::with_type(Type::Integer);
    s.format = Some(SchemaFormat::KnownFormat(KnownFormat::Int64));
    s.minimum = Some(Number::UInt(min as usize));
    s.maximum = Some(Number::UInt(max as usize));
    s
}
