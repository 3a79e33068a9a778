//! The OpenAPI document at `/openapi.json`: every route with its schemas, the bearer scheme,
//! links from a start's answer to the operations on the instance, and the deployed names; the
//! answers any operation can get (`answers`) and the rules on query values (`constraints`).

mod answers;
mod constraints;

pub use constraints::{MAX_PAGE, MAX_SEQ};

use answers::CommonAnswers;
use constraints::QueryRules;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Links from a start's answer to the operations on the instance it started, and from a status
/// to an upgrade onto the component the instance runs on, so clients (and API fuzzers) can
/// follow them.
struct InstanceLinks;

impl Modify for InstanceLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let on_instance = [
            "status",
            "purge",
            "raise_event",
            "terminate",
            "suspend",
            "resume",
        ];
        for op in on_instance {
            let id = [("id", "$response.body#/id")];
            add_link(openapi, "/orchestrations/{name}", "202", op, &id);
            let id = [("id", "$response.body#/instanceId")];
            add_link(openapi, "/orchestrations/{name}", "200", op, &id);
        }
        let upgrade = [("id", "$response.body#/id")];
        add_link(
            openapi,
            "/orchestrations/{name}",
            "202",
            "upgrade",
            &upgrade,
        );
        let upgrade = [
            ("id", "$response.body#/instanceId"),
            ("to", "$response.body#/componentDigest"),
        ];
        add_link(openapi, "/instances/{id}", "200", "upgrade", &upgrade);
    }
}

/// Links the `status` answer of the first operation on `path` (GET, else POST) to operation
/// `op`, its parameters taken from the answer.
fn add_link(
    openapi: &mut utoipa::openapi::OpenApi,
    path: &str,
    status: &str,
    op: &str,
    parameters: &[(&str, &str)],
) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::link::LinkBuilder;
    let Some(item) = openapi.paths.paths.get_mut(path) else {
        return;
    };
    let Some(operation) = item.get.as_mut().or(item.post.as_mut()) else {
        return;
    };
    let Some(RefOr::T(answer)) = operation.responses.responses.get_mut(status) else {
        return;
    };
    let mut link = LinkBuilder::new().operation_id(op);
    for (name, value) in parameters {
        link = link.parameter(*name, *value);
    }
    answer.links.insert(op.to_string(), RefOr::T(link.build()));
}

/// Tags each operation with its group (`instances`, `entities`, `components`, `probes`), not
/// the module path it was declared in, so generated clients name their modules after them.
struct Tags;

impl Modify for Tags {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.delete];
            for op in ops.into_iter().flatten() {
                for tag in op.tags.iter_mut().flatten() {
                    *tag = match tag.rsplit_once("::") {
                        Some((_, group)) => group.to_string(),
                        None => "probes".to_string(),
                    };
                }
            }
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
        description = "Durable workflows in WebAssembly components: the management API. Every route but `/callbacks/...`, `/healthz`, `/readyz` and `/openapi.json` needs `Authorization: Bearer TOKEN`."
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
        super::entities::list_entities,
        super::entities::get_entity,
        super::entities::entity_history,
        super::entities::signal_entity,
        super::entities::purge_entity,
        super::components::deploy,
        super::components::list_components,
        super::components::catalog,
        super::components::upgrade,
        super::bundles::bundle,
        super::instances::restart,
        super::readyz,
        super::metrics::metrics,
    ),
    modifiers(&BearerAuth, &Tags, &InstanceLinks, &CommonAnswers, &QueryRules)
)]
pub struct ApiDoc;

/// The document for a server where `orchestrations` and `entities` are deployed: their names
/// are listed as the values of the `name` of the start route and of the entity routes.
pub fn document(orchestrations: &[String], entities: &[String]) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Object, Schema, Type};
    let mut doc = ApiDoc::openapi();
    for (path, names) in doc.paths.paths.iter_mut().filter_map(|(path, item)| {
        let names = if path == "/orchestrations/{name}" {
            orchestrations
        } else if path.starts_with("/entities/{name}") {
            entities
        } else {
            return None;
        };
        (!names.is_empty()).then_some((item, names))
    }) {
        let ops = [&mut path.get, &mut path.post, &mut path.delete];
        for op in ops.into_iter().flatten() {
            for p in op.parameters.iter_mut().flatten() {
                if let RefOr::T(p) = p
                    && p.name == "name"
                {
                    let mut schema = Object::with_type(Type::String);
                    schema.enum_values = Some(names.iter().map(|n| n.clone().into()).collect());
                    p.schema = Some(RefOr::T(Schema::Object(schema)));
                }
            }
        }
    }
    doc
}
