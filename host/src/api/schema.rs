//! The API's JSON shapes, and the OpenAPI document generated from them and the handlers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The answer to a start: the instance id and its management links.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartResponse {
    pub id: String,
    pub status_query_get_uri: String,
    pub send_event_post_uri: String,
    pub terminate_post_uri: String,
    pub suspend_post_uri: String,
    pub resume_post_uri: String,
    pub purge_history_delete_uri: String,
}

/// The schema of an instance's lifecycle state: the domain's statuses, by name.
fn runtime_status_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{Object, Schema, Type};
    let mut schema = Object::with_type(Type::String);
    schema.description = Some("An instance's lifecycle state".into());
    schema.enum_values = Some(
        crate::history::RuntimeStatus::ALL
            .iter()
            .map(|s| s.as_str().into())
            .collect(),
    );
    Schema::Object(schema).into()
}

/// Why an instance failed or was terminated.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Failure {
    /// What kind of failure: `terminated`; one of weft's limits and checks
    /// (`deadline_exceeded`, `memory_limit`, `history_limit`, `payload_too_large`, `trap`,
    /// `nondeterminism`, `misuse`); or the kind the orchestration gave its error (the text
    /// before the first `:` of a one-word prefix), else `error`.
    pub kind: String,
    pub message: String,
}

/// An instance's status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub instance_id: String,
    /// The orchestration's name.
    pub name: String,
    #[schema(schema_with = runtime_status_schema)]
    pub runtime_status: crate::history::RuntimeStatus,
    /// The input, as given at start.
    #[schema(value_type = Value)]
    pub input: Value,
    /// The output once completed; the failure message once failed or terminated.
    #[schema(value_type = Value)]
    pub output: Value,
    /// What the orchestration last set as its custom status.
    #[schema(value_type = Value)]
    pub custom_status: Value,
    /// RFC 3339.
    pub created_time: String,
    /// RFC 3339.
    pub last_updated_time: String,
    /// The sha256 of the component the instance runs on.
    pub component_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// With `showHistory=true`: every history event, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub history_events: Option<Vec<Value>>,
    /// With `showHistory=true`, for an instance that continued as new: the earlier runs'
    /// histories, oldest first, each ending with `continued_as_new`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_runs: Option<Vec<PreviousRun>>,
}

/// The history of an earlier run of an instance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousRun {
    pub generation: u32,
    #[schema(value_type = Vec<Object>)]
    pub history_events: Vec<Value>,
}

/// A replay bundle: one instance's component, input, status and the history of every run, in
/// one file `weft replay` replays offline.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleBody {
    /// `weft-bundle/1`.
    pub format: String,
    pub instance_id: String,
    pub name: String,
    #[schema(schema_with = runtime_status_schema)]
    pub runtime_status: crate::history::RuntimeStatus,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub updated_at: u64,
    /// The input as stored: JSON text (redacted: the JSON string of a hash).
    pub input: String,
    pub output: Option<String>,
    pub failure: Option<String>,
    pub custom_status: Option<String>,
    /// Whether payloads were replaced by hashes (`redact=true`).
    pub redacted: bool,
    pub component: BundleComponent,
    /// Every run, the first one first; the last is the current one.
    pub runs: Vec<BundleRun>,
}

/// The component in a bundle.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BundleComponent {
    /// The sha256 of the bytes, hex.
    pub digest: String,
    /// The `.wasm` file, base64.
    pub wasm: String,
}

/// One run's history in a bundle, as stored (payloads are JSON text).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BundleRun {
    pub generation: u32,
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<Value>,
}

/// A page of instances.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceList {
    pub instances: Vec<InstanceStatus>,
    /// Pass as `continuationToken` for the next page; null on the last page.
    pub continuation_token: Option<String>,
}

/// How many instances a purge deleted, sub-orchestrations included.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeResult {
    pub instances_deleted: u64,
}

/// How far to move a manual clock.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClockAdvance {
    /// Seconds, from 0 to 1e10.
    #[schema(minimum = 0.0, maximum = 1e10)]
    pub seconds: f64,
}

/// A manual clock after it moved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClockAdvanced {
    /// RFC 3339.
    pub now: String,
    /// How many instances had timers fire.
    pub timers_fired: u64,
}

/// An entity: its state and how many operations it has seen.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityStatus {
    pub name: String,
    pub key: String,
    /// The current state; null if it has none (no operation applied yet, or deleted).
    #[schema(value_type = Value)]
    pub state: Value,
    /// Operations applied so far.
    pub operation_count: u64,
    /// Operations sent and not yet applied.
    pub pending_operations: u64,
    /// RFC 3339; null until the first operation is applied.
    pub created_time: Option<String>,
    /// RFC 3339: when the last operation was applied.
    pub last_modified_time: Option<String>,
}

/// A page of entities.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityList {
    pub entities: Vec<EntityStatus>,
    /// Pass as `continuationToken` for the next page; null on the last page.
    pub continuation_token: Option<String>,
}

/// One operation applied to an entity.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntityOperation {
    /// 0 for the first operation.
    pub seq: u64,
    /// RFC 3339: when it was applied.
    pub time: String,
    pub operation: String,
    #[schema(value_type = Value)]
    pub input: Value,
    /// The output, if it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub output: Option<Value>,
    /// The error, if it failed (the state was left as it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The instance that sent it; absent when sent over HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// An entity's operation log, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntityHistory {
    pub operations: Vec<EntityOperation>,
}

/// What an entity purge deleted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityPurged {
    /// 1 if the entity's state was deleted, else 0 (it had only a log).
    pub entities_deleted: u64,
    /// The entries of its operation log deleted.
    pub log_entries_deleted: u64,
}

/// A component deployed (or checked), with what it exports.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deployed {
    /// The sha256 of the component's bytes.
    pub digest: String,
    pub orchestrations: Vec<String>,
    pub activities: Vec<String>,
    pub entities: Vec<String>,
    /// Names another component served until this deploy: new work now uses this one.
    #[serde(default)]
    pub replaced: Vec<Replaced>,
    /// With `check=true`: each running instance of its orchestrations, replayed against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<ReplayCheck>>,
}

/// An orchestration or entity name that moved to the newly deployed component.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Replaced {
    /// `orchestration` or `entity`.
    pub kind: String,
    pub name: String,
    /// The component that served it before.
    pub previous: String,
}

/// The deployed components, oldest deploy first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ComponentList {
    pub components: Vec<ComponentInfo>,
}

/// A deployed component: what it exports, and which of those names it serves. When two
/// components export one name, the one deployed last serves new instances (and entity
/// operations); the other keeps running the instances that started on it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentInfo {
    pub digest: String,
    /// When it was last deployed (RFC 3339).
    pub deployed_time: String,
    /// False for a stored component that no longer loads in this weft (it serves nothing).
    pub loads: bool,
    pub orchestrations: Vec<String>,
    pub activities: Vec<String>,
    pub entities: Vec<String>,
    /// Its orchestrations whose new instances start on it.
    pub serving_orchestrations: Vec<String>,
    /// Its entities whose operations it applies.
    pub serving_entities: Vec<String>,
}

/// What is deployed, by name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Catalog {
    pub orchestrations: Vec<DeployedName>,
    pub activities: Vec<DeployedName>,
    pub entities: Vec<DeployedName>,
}

/// One orchestration, activity or entity name and the components that export it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployedName {
    pub name: String,
    /// The component new instances of an orchestration start on, or that applies an entity's
    /// operations; absent for an activity, which runs on its caller's component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// Every deployed component that exports it, oldest deploy first.
    pub versions: Vec<String>,
}

/// Whether a running instance's history replays against a component.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayCheck {
    pub instance_id: String,
    pub name: String,
    pub compatible: bool,
    /// Where the replay diverged: the position, the recorded call and the new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
}

/// An instance moved to another component.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Upgraded {
    pub instance_id: String,
    pub from: String,
    pub to: String,
}

/// The answer of a ready server.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
}

/// Every error: a stable code and a message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `instance_not_found`, `unauthorized`, ...
    pub code: String,
    pub message: String,
}
