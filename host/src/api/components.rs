//! Component versions: deploy (or only check) a component, move an instance to another one.

use super::extract::{path, query};
use super::schema::{
    Catalog, ComponentInfo, ComponentList, Deployed, DeployedName, ErrorBody, Replaced,
    ReplayCheck as ApiCheck, Upgraded,
};
use super::{ApiError, AppState};
use crate::clock::rfc3339;
use crate::history::ComponentDigest;
use crate::runtime::Deployment;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
pub(super) struct DeployQuery {
    #[serde(default)]
    check: bool,
}

/// Deploys a component (the body is the `.wasm` file): new instances of its orchestrations
/// start on it; running instances stay on theirs. With `check=true` nothing is deployed: the
/// histories of the running instances of its orchestrations are replayed against it, and the
/// answer says which would diverge, and where.
#[utoipa::path(
    post,
    path = "/components",
    security(("bearer" = [])),
    params(("check" = Option<bool>, Query, description = "Only check the component against running instances")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The `.wasm` file (any content type): a WebAssembly component (not a core module) that exports weft's orchestration, activity or entity interfaces and imports only what weft gives; other bytes get `400 invalid_component` naming what is wrong"),
    responses(
        (status = 201, description = "Deployed", body = Deployed),
        (status = 200, description = "Checked (with check=true); nothing deployed", body = Deployed),
        (status = 400, description = "Not a component weft can run: the reason names what is wrong", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub(super) async fn deploy(
    State(app): State<AppState>,
    q: Result<Query<DeployQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let check = query(q)?.check;
    let bytes = body.map_err(ApiError::from_body_rejection)?.to_vec();
    if check {
        let (r, checks) = app.runtime.check_component(bytes).await?;
        let checks = checks
            .into_iter()
            .map(|c| ApiCheck {
                instance_id: c.instance.to_string(),
                name: c.name,
                compatible: c.divergence.is_none(),
                divergence: c.divergence,
            })
            .collect();
        return Ok((StatusCode::OK, Json(deployed(r, Some(checks)))).into_response());
    }
    let r = app.runtime.deploy(bytes).await?;
    Ok((StatusCode::CREATED, Json(deployed(r, None))).into_response())
}

fn deployed(r: crate::runtime::Registered, checks: Option<Vec<ApiCheck>>) -> Deployed {
    Deployed {
        digest: r.digest.to_string(),
        orchestrations: r.orchestrations,
        activities: r.activities,
        entities: r.entities,
        replaced: r
            .replaced
            .into_iter()
            .map(|(kind, name, previous)| Replaced {
                kind: kind.into(),
                name,
                previous: previous.to_string(),
            })
            .collect(),
        checks,
    }
}

/// Lists the deployed components, oldest deploy first: what each exports, and which names it
/// serves (the newest deploy of a name serves new instances).
#[utoipa::path(
    get,
    path = "/components",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The deployed components", body = ComponentList),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    )
)]
pub(super) async fn list_components(
    State(app): State<AppState>,
) -> Result<Json<ComponentList>, ApiError> {
    let components = app
        .runtime
        .components()
        .await?
        .into_iter()
        .map(|d| ComponentInfo {
            digest: d.digest.to_string(),
            deployed_time: rfc3339(d.deployed_at),
            loads: d.loads,
            orchestrations: d.orchestrations,
            activities: d.activities,
            entities: d.entities,
            serving_orchestrations: d.serves_orchestrations,
            serving_entities: d.serves_entities,
        })
        .collect();
    Ok(Json(ComponentList { components }))
}

/// Which names of one kind a deployment exports, or serves.
type Names = dyn Fn(&Deployment) -> &[String];

/// Lists the deployed orchestrations, activities and entities by name, with the components
/// that export each and the one that serves it.
#[utoipa::path(
    get,
    path = "/orchestrations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What is deployed, by name", body = Catalog),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    )
)]
pub(super) async fn catalog(State(app): State<AppState>) -> Result<Json<Catalog>, ApiError> {
    let deployments = app.runtime.components().await?;
    let by_name = |names: &Names, serving: Option<&Names>| {
        let mut out: BTreeMap<&str, DeployedName> = BTreeMap::new();
        for d in deployments.iter().filter(|d| d.loads) {
            for name in names(d) {
                let entry = out.entry(name).or_insert_with(|| DeployedName {
                    name: name.clone(),
                    served_by: None,
                    versions: Vec::new(),
                });
                entry.versions.push(d.digest.to_string());
                if serving.is_some_and(|s| s(d).contains(name)) {
                    entry.served_by = Some(d.digest.to_string());
                }
            }
        }
        out.into_values().collect::<Vec<_>>()
    };
    Ok(Json(Catalog {
        orchestrations: by_name(&|d| &d.orchestrations, Some(&|d| &d.serves_orchestrations)),
        activities: by_name(&|d| &d.activities, None),
        entities: by_name(&|d| &d.entities, Some(&|d| &d.serves_entities)),
    }))
}

#[derive(Deserialize, Clone, Default)]
pub(super) struct UpgradeQuery {
    pub(super) to: String,
}

/// Moves a running instance to another deployed component, after replaying its history there:
/// if the replay diverges, nothing changes and the answer names the first divergent position.
#[utoipa::path(
    post,
    path = "/instances/{id}/upgrade",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The instance id", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("to" = String, Query, description = "The digest of a deployed component", pattern = "^[0-9a-f]{64}$"),
    ),
    responses(
        (status = 200, description = "Moved", body = Upgraded),
        (status = 400, description = "Invalid id or digest", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance or component", body = ErrorBody),
        (status = 409, description = "The history does not replay on that component (`replay_diverges`), or kept growing while it was checked (`instance_busy`); nothing changed", body = ErrorBody),
        (status = 410, description = "The instance has ended", body = ErrorBody),
    )
)]
pub(super) async fn upgrade(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<UpgradeQuery>, QueryRejection>,
) -> Result<Json<Upgraded>, ApiError> {
    let id = super::extract::instance_id(&path(id)?)?;
    let to: ComponentDigest = query(q)?
        .to
        .parse()
        .map_err(|e: crate::history::InvalidId| {
            ApiError::bad_request("invalid_digest", e.to_string())
        })?;
    let from = app.runtime.upgrade(&id, &to).await?;
    Ok(Json(Upgraded {
        instance_id: id.to_string(),
        from: from.to_string(),
        to: to.to_string(),
    }))
}
