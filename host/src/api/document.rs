//! The OpenAPI document at `/openapi.json`: every route with its schemas, the bearer scheme,
//! links from a start's answer to the operations on the instance, and the deployed names.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        super::components::upgrade,
        super::readyz,
    ),
    modifiers(&BearerAuth, &InstanceLinks)
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
