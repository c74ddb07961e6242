//! The OpenAPI 3 document, built from the route table (`super::routes`): each route's operation
//! comes from its handler's `#[utoipa::path]` annotation (description, parameters, bodies, the
//! answers particular to it), and the table adds what it declares — the security a route asks
//! for (`security: []` on public ones), its `Idempotency-Key` header, and the 4xx answers its
//! access rule, path parameters and body make possible. Schemas come from the DTO types.

use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder, Server};
use utoipa::{IntoParams, OpenApi};

use super::dto::*;
use super::error::ErrorBody;
use super::routes::{Access, Route};

/// The document's info and schemas; the paths are added from the route table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "bazaar",
        description = "An online book store: catalogue, orders, payments, shipping, notifications."
    ),
    components(schemas(
        ErrorBody,
        TokenOut,
        CheckTokenOut,
        CommunicationDto,
        CustomerIn,
        CustomerUpdateIn,
        CustomerOut,
        UserIn,
        UserOut,
        PromotionOut,
        ProductOut,
        ProductPage,
        ProductIn,
        FreeItemsOut,
        StockIn,
        ItemOut,
        LineIn,
        OrderIn,
        LineOut,
        OrderOut,
        PaymentOut,
        ShipItemOut,
        ShippingOut,
        OrderSummaryOut,
        ShippingStatusIn,
        SandboxForm,
        RedirectOut,
        TimelineOut,
        RuleDto,
        PromocodeIn,
        PromocodeOut,
        PromoListOut,
        PriceOut,
        HealthOut,
        NodeOut,
        ClusterOut,
        NotificationOut,
        CheckOut,
        InvariantsOut,
        crate::actors::payment::CallbackBody,
    ))
)]
struct ApiDoc;

/// The answers any route may give, kept once under `components/responses`: (status, name, description).
const COMMON_ANSWERS: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "The request is malformed (JSON syntax, query, header)."),
    ("401", "Unauthorized", "No valid credentials."),
    ("403", "Forbidden", "The caller's role or ownership does not allow this."),
    ("404", "NotFound", "No such resource."),
    ("413", "PayloadTooLarge", "The body is over 64 KiB."),
    ("414", "UriTooLong", "The path and query are over 8 KiB."),
    ("415", "UnsupportedMediaType", "The body is not of the media type the route takes."),
    ("422", "Unprocessable", "The body is well-formed but not acceptable."),
    ("431", "HeadersTooLarge", "Too many request headers, or too many bytes of them."),
];

fn error_answer(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
        .build()
}

/// The common answers referenced so far (only those go into `components/responses`).
type Used = std::collections::BTreeSet<&'static str>;

/// Adds `status` (a reference to the common answer) unless the annotation gave its own.
fn answer(op: &mut Operation, used: &mut Used, status: &str) {
    if let Some((_, name, _)) = COMMON_ANSWERS.iter().find(|(s, _, _)| *s == status) {
        if !op.responses.responses.contains_key(status) {
            op.responses.responses.insert(status.to_owned(), RefOr::Ref(Ref::from_response_name(*name)));
            used.insert(name);
        }
    }
}

fn method_of(r: &Route) -> HttpMethod {
    match r.method.as_str() {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

/// One route's operation: the annotation's, completed from the table.
fn operation(r: &Route, used: &mut Used) -> Operation {
    let mut op = (r.doc.operation)();
    op.security = Some(match r.access {
        Access::Public | Access::Capability | Access::Signed => Vec::new(),
        Access::Basic => vec![SecurityRequirement::new("basic", Vec::<String>::new())],
        Access::Bearer(_) => vec![SecurityRequirement::new("bearer", Vec::<String>::new())],
    });
    if r.idempotent {
        let params = op.parameters.get_or_insert_with(Vec::new);
        params.extend(IdempotencyHeader::into_params(|| None));
        answer(&mut op, used, "400");
        answer(&mut op, used, "422");
    }
    match r.access {
        Access::Basic | Access::Signed => answer(&mut op, used, "401"),
        Access::Bearer(_) => {
            answer(&mut op, used, "401");
            answer(&mut op, used, "403");
        }
        Access::Capability => answer(&mut op, used, "404"),
        Access::Public => {}
    }
    if r.path.contains('{') {
        answer(&mut op, used, "404");
    }
    if op.request_body.is_some() {
        for s in ["400", "415", "422"] {
            answer(&mut op, used, s);
        }
    }
    // Any request may be too large before it reaches a route.
    for s in ["413", "414", "431"] {
        answer(&mut op, used, s);
    }
    op
}

/// The document for `routes`.
pub fn document(routes: &[Route]) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.servers = Some(vec![Server::new("/")]);
    let c = doc.components.get_or_insert_with(Default::default);
    c.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    c.add_security_scheme("basic", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()));
    let mut used = Used::new();
    for r in routes {
        doc.paths.add_path_operation(r.path, vec![method_of(r)], operation(r, &mut used));
    }
    for (_, name, description) in COMMON_ANSWERS.iter().filter(|(_, n, _)| used.contains(n)) {
        c.responses.insert((*name).to_owned(), RefOr::T(error_answer(description)));
    }
    doc
}

/// The document of this API as JSON.
pub fn document_json() -> Vec<u8> {
    document(super::routes::ROUTES).to_json().map(String::into_bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::routes::ROUTES;

    fn doc() -> serde_json::Value {
        serde_json::from_slice(&document_json()).unwrap()
    }

    #[test]
    fn every_route_is_in_the_document_with_its_security_and_a_4xx() {
        let d = doc();
        assert_eq!(d["servers"][0]["url"], "/");
        for r in ROUTES {
            let op = &d["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} is missing", r.method, r.path);
            let security =
                op["security"].as_array().unwrap_or_else(|| panic!("{} {} has no security", r.method, r.path));
            match r.access {
                Access::Public | Access::Capability | Access::Signed => assert!(security.is_empty()),
                Access::Basic => assert_eq!(security[0], serde_json::json!({"basic": []})),
                Access::Bearer(_) => assert_eq!(security[0], serde_json::json!({"bearer": []})),
            }
            let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(codes.iter().any(|c| c.starts_with('4')), "{} {} lists no 4xx", r.method, r.path);
            if matches!(r.access, Access::Bearer(_)) {
                assert!(codes.iter().any(|c| *c == "401") && codes.iter().any(|c| *c == "403"));
            }
            let idempotency = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
            assert_eq!(
                idempotency, r.idempotent,
                "{} {}: Idempotency-Key documented iff the table says so",
                r.method, r.path
            );
        }
    }

    #[test]
    fn every_answer_referenced_is_defined() {
        let d = doc();
        let defined = d["components"]["responses"].as_object().unwrap();
        let text = d.to_string();
        assert!(!defined.is_empty());
        for name in defined.keys() {
            assert!(text.contains(&format!("#/components/responses/{name}")), "{name} is never used");
        }
        for (_, name, _) in COMMON_ANSWERS {
            if text.contains(&format!("#/components/responses/{name}")) {
                assert!(defined.contains_key(*name), "{name} is used but not defined");
            }
        }
    }
}
