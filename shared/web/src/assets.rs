//! The stylesheet and the script, compiled into each service and served at
//! fixed paths (no asset is fetched from the internet).

use actix_web::{HttpResponse, web};

/// Where the stylesheet is served.
pub const CSS_PATH: &str = "/static/glucochain.css";
/// Where the script is served.
pub const JS_PATH: &str = "/static/glucochain.js";
/// The stylesheet.
pub const CSS: &str = include_str!("../assets/glucochain.css");
/// The script.
pub const JS: &str = include_str!("../assets/glucochain.js");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("cache-control", "public, max-age=3600"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(body)
}

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

/// Routes for the two assets.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(CSS_PATH, web::get().to(css)).route(JS_PATH, web::get().to(js));
}
