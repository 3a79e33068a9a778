//! The API's JSON shapes, and the OpenAPI document generated from them and the handlers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

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

/// An instance's lifecycle state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub enum RuntimeStatus {
    Pending,
    Running,
    Suspended,
    Completed,
    Failed,
    Terminated,
    ContinuedAsNew,
}

/// Why an instance failed or was terminated.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Failure {
    pub message: String,
}

/// An instance's status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub instance_id: String,
    /// The orchestration's name.
    pub name: String,
    pub runtime_status: RuntimeStatus,
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

/// A page of instances.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceList {
    pub instances: Vec<InstanceStatus>,
    /// Pass as `continuationToken` for the next page; null on the last page.
    pub continuation_token: Option<String>,
}

/// How many instances a purge deleted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeResult {
    pub instances_deleted: u64,
}

/// How far to move a manual clock.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClockAdvance {
    /// Seconds, from 0 to 1e10.
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

/// Links from a start's answer to the operations on the instance it started, so clients (and
/// API fuzzers) can follow them.
struct InstanceLinks;

impl Modify for InstanceLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;
        let Some(start) = openapi
            .paths
            .paths
            .get_mut("/orchestrations/{name}")
            .and_then(|p| p.post.as_mut())
        else {
            return;
        };
        let Some(RefOr::T(accepted)) = start.responses.responses.get_mut("202") else {
            return;
        };
        for op in [
            "status",
            "purge",
            "raise_event",
            "terminate",
            "suspend",
            "resume",
        ] {
            let link = LinkBuilder::new()
                .operation_id(op)
                .parameter("id", "$response.body#/id")
                .build();
            accepted.links.insert(op.to_string(), RefOr::T(link));
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "weft",
        description = "Durable workflows in WebAssembly components: the management API. Every route but `/callbacks/...`, `/healthz` and `/openapi.json` needs `Authorization: Bearer TOKEN`."
    ),
    paths(
        super::instances::start,
        super::instances::list,
        super::instances::purge_where,
        super::instances::status,
        super::instances::purge,
        super::instances::raise_event,
        super::instances::terminate,
        super::instances::suspend,
        super::instances::resume,
        super::instances::callback,
        super::instances::advance_clock,
    ),
    modifiers(&BearerAuth, &InstanceLinks)
)]
pub struct ApiDoc;

/// The document for a server where `orchestrations` are deployed: their names are listed as
/// the values of the start route's `name`.
pub fn document(orchestrations: &[String]) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Object, Schema, Type};
    let mut doc = ApiDoc::openapi();
    if orchestrations.is_empty() {
        return doc;
    }
    let start = doc
        .paths
        .paths
        .get_mut("/orchestrations/{name}")
        .and_then(|p| p.post.as_mut());
    if let Some(params) = start.and_then(|op| op.parameters.as_mut()) {
        for p in params.iter_mut() {
            if let RefOr::T(p) = p
                && p.name == "name"
            {
                let mut schema = Object::with_type(Type::String);
                schema.enum_values =
                    Some(orchestrations.iter().map(|n| n.clone().into()).collect());
                p.schema = Some(RefOr::T(Schema::Object(schema)));
            }
        }
    }
    doc
}
