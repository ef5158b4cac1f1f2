//! The document every page is rendered into, and the headers it is sent with.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

/// The content security policy of every page: our own script and stylesheet
/// only, images inline (`data:` QR codes) or our own, forms and fetches to
/// this origin, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One link of the navigation bar.
#[derive(Debug, Clone)]
pub struct NavLink {
    /// Target.
    pub href: String,
    /// Text.
    pub label: &'static str,
    /// Whether it is the page shown.
    pub current: bool,
}

/// The full document: skip link, optional navigation, a `main` landmark.
pub fn document(title: &str, who: Option<&str>, nav: &[NavLink], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                link rel="icon" href="data:,";
                title { (title) " · GlucoChain" }
                link rel="stylesheet" href=(crate::assets::CSS_PATH);
                script src=(crate::assets::JS_PATH) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "GlucoChain" }
                    @if !nav.is_empty() {
                        nav aria-label="Sections" {
                            ul {
                                @for l in nav {
                                    li { a href=(l.href) aria-current=[l.current.then_some("page")] { (l.label) } }
                                }
                            }
                        }
                    }
                    @if let Some(w) = who {
                        form.signout method="post" action="/ui/signout" {
                            span.who { "Signed in as " code { (w) } }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    p #notice.notice role="status" aria-live="polite" hidden {}
                    (body)
                }
            }
        }
    }
}

/// An HTML response with the security headers.
pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("content-security-policy", CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", "no-store"))
        .insert_header(("permissions-policy", "camera=(), microphone=(), geolocation=()"))
        .body(markup.into_string())
}

/// Whether a state-changing request comes from this site's own pages. A
/// browser tells where a request comes from: `Sec-Fetch-Site` (`same-origin`,
/// or `none` for one the person typed), else `Origin`, which must name this
/// host. A request with neither is not a browser's cross-site form or fetch
/// (those always carry one), so it passes; the cookie's `SameSite=Strict`
/// and the signature a write needs still apply.
pub fn same_origin(req: &actix_web::HttpRequest) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match header("origin") {
        None => true,
        Some(origin) => {
            let host = req.connection_info().host().to_ascii_lowercase();
            origin
                .split_once("://")
                .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest.to_ascii_lowercase() == host)
        }
    }
}

/// A page that explains why something cannot be shown.
pub fn error_page(status: StatusCode, title: &str, detail: &str) -> HttpResponse {
    respond(
        status,
        document(
            title,
            None,
            &[],
            html! {
                h1 { (title) }
                p { (detail) }
                p { a href="/ui/" { "Sign in" } }
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_from_the_pages_themselves_are_same_origin() {
        // Issue 19, low: CSRF did not rely on anything but SameSite.
        use actix_web::test::TestRequest;
        let req = |headers: &[(&str, &str)]| {
            let mut r = TestRequest::post().uri("/ui/tx/submit").insert_header(("host", "ledger.example:8443"));
            for h in headers {
                r = r.insert_header(*h);
            }
            r.to_http_request()
        };
        assert!(same_origin(&req(&[("sec-fetch-site", "same-origin")])));
        assert!(same_origin(&req(&[("sec-fetch-site", "none")])));
        assert!(!same_origin(&req(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&req(&[("sec-fetch-site", "same-site")])), "a sibling subdomain is another service");
        assert!(same_origin(&req(&[("origin", "https://ledger.example:8443")])));
        assert!(!same_origin(&req(&[("origin", "https://evil.example")])));
        assert!(!same_origin(&req(&[("origin", "https://ledger.example:8443.evil.example")])));
        assert!(!same_origin(&req(&[("origin", "null")])));
        assert!(same_origin(&req(&[])), "not a browser: no cross-site form without one of the headers");
        // Sec-Fetch-Site decides when present, whatever Origin says.
        assert!(!same_origin(&req(&[("sec-fetch-site", "cross-site"), ("origin", "https://ledger.example:8443")])));
    }

    #[test]
    fn values_are_escaped_and_the_policy_forbids_inline_script() {
        let m = document("<b>x</b>", Some("p\"1"), &[], html! { p { "<script>" } });
        let s = m.clone().into_string();
        assert!(s.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(s.contains("&lt;script&gt;"));
        assert!(!s.contains("<script>"), "only the external script tag");
        assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe"));
        let r = respond(StatusCode::OK, m);
        assert_eq!(r.headers().get("content-security-policy").unwrap(), CSP);
    }
}
