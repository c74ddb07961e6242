//! The web storefront: static files embedded in the binary, served at `GET /` (the page) and
//! `GET /assets/{version}/{file}` (its scripts, styles and icon). The page is a client of the
//! public JSON API only (plain ES modules, no framework, no build step): everything it shows
//! it asks of the same routes an outside storefront would use.
//!
//! Caching: `{version}` is a hash of every embedded file, so an asset's URL changes whenever
//! any file does and assets are served `immutable` for a year; the page itself is revalidated
//! on each load (`no-cache` with an ETag, 304 when unchanged). Another version's asset URL is
//! 404 (an old page asks for its own files; a reload brings the new page).
//!
//! Safety: the page allows scripts, styles and connections to this origin only and nothing
//! inline (`Out::Static` carries the policy); the scripts put API text into the page only as
//! text, never as markup.

use std::sync::OnceLock;

use warp::http::StatusCode;

use super::error::{ApiError, ErrorBody};
use super::request::param;
use super::{App, Out, Req};

/// One embedded file: name, bytes, content type.
type Asset = (&'static str, &'static [u8], &'static str);

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/assets/{version}/`.
const ASSETS: &[Asset] = &[
    ("app.css", include_bytes!("assets/app.css"), "text/css; charset=utf-8"),
    ("app.js", include_bytes!("assets/app.js"), JS),
    ("api.js", include_bytes!("assets/api.js"), JS),
    ("ui.js", include_bytes!("assets/ui.js"), JS),
    ("shop.js", include_bytes!("assets/shop.js"), JS),
    ("account.js", include_bytes!("assets/account.js"), JS),
    ("staff.js", include_bytes!("assets/staff.js"), JS),
    ("favicon.svg", include_bytes!("assets/favicon.svg"), "image/svg+xml"),
];

/// The page; `{{v}}` marks the assets' version.
const INDEX: &str = include_str!("assets/index.html");

fn hash(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// A file ready to serve: its bytes and their gzip (empty when it could not be made), the
/// ETag of each, its content type. Made once, at first use.
struct Ready {
    body: Vec<u8>,
    gz: Vec<u8>,
    etag: String,
    gz_etag: String,
    ctype: &'static str,
}

impl Ready {
    fn new(body: Vec<u8>, ctype: &'static str) -> Ready {
        let h = hash(&body);
        Ready { gz: gzip(&body), etag: format!("\"{h}\""), gz_etag: format!("\"{h}-gz\""), body, ctype }
    }
}

/// The storefront as served: the version of the embedded files (a hash over all of them), the
/// page naming it, and each asset by name.
struct Built {
    version: String,
    page: Ready,
    assets: Vec<(&'static str, Ready)>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut all = Vec::new();
        for (name, bytes, _) in ASSETS {
            all.extend_from_slice(name.as_bytes());
            all.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            all.extend_from_slice(bytes);
        }
        let version = hash(&all)[..12].to_owned();
        let page = Ready::new(INDEX.replace("{{v}}", &version).into_bytes(), "text/html; charset=utf-8");
        let assets = ASSETS.iter().map(|(name, bytes, ctype)| (*name, Ready::new(bytes.to_vec(), ctype))).collect();
        Built { version, page, assets }
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail; should it, the file goes out uncompressed.
    e.write_all(bytes).and_then(|()| e.finish()).unwrap_or_default()
}

/// Whether one `Accept-Encoding` entry takes gzip (`gzip`, `gzip;q=0.5`; not `gzip;q=0`).
fn accepts_gzip(entry: &str) -> bool {
    let mut parts = entry.split(';').map(str::trim);
    let named = parts.next().is_some_and(|n| n.eq_ignore_ascii_case("gzip"));
    let refused = parts.any(|p| {
        p.strip_prefix("q=")
            .or_else(|| p.strip_prefix("Q="))
            .and_then(|q| q.parse::<f32>().ok())
            .is_some_and(|q| q <= 0.0)
    });
    named && !refused
}

/// A file answered in full (gzipped when the client takes gzip), or 304 when the client's
/// `If-None-Match` names it. The ETag is the uncompressed file's, with `-gz` for the gzip.
fn answer(req: &Req, file: &'static Ready, immutable: bool) -> Out {
    let gzip = !file.gz.is_empty() && req.header("accept-encoding").is_some_and(|v| v.split(',').any(accepts_gzip));
    let (body, etag) = if gzip { (&file.gz, &file.gz_etag) } else { (&file.body, &file.etag) };
    let current = req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*"));
    let (status, body) = if current { (StatusCode::NOT_MODIFIED, &[][..]) } else { (StatusCode::OK, &body[..]) };
    Out::Static { status, body, ctype: file.ctype, etag: etag.clone(), immutable, gzip }
}

/// The storefront.
#[utoipa::path(get, path = "/", tag = "storefront", security(()),
    description = "The web storefront: one page that shops, logs in and runs the staff screens through this API.",
    responses((status = 200, content_type = "text/html", body = String), (status = 304, description = "The client's copy is current (If-None-Match).")))]
pub async fn index(_app: &App, req: &Req) -> Result<Out, ApiError> {
    Ok(answer(req, &built().page, false))
}

/// A file of the storefront, at the version the page names.
#[utoipa::path(get, path = "/assets/{version}/{file}", tag = "storefront", security(()),
    params(("version" = String, Path, description = "The storefront's version, as its page names it."),
        ("file" = String, Path, description = "The file's name.")),
    responses((status = 200, description = "The file (a script, a style sheet or an image), cached for good.", content_type = "text/javascript", body = String),
        (status = 304, description = "The client's copy is current (If-None-Match)."),
        (status = 404, body = ErrorBody)))]
pub async fn asset(_app: &App, req: &Req) -> Result<Out, ApiError> {
    let (version, file) = (param(req, 1), param(req, 2));
    let b = built();
    if version != b.version {
        return Err(ApiError::NotFound("no such storefront version (reload the page)".into()));
    }
    let (_, ready) = b
        .assets
        .iter()
        .find(|(name, _)| *name == file)
        .ok_or_else(|| ApiError::NotFound("no such storefront file".into()))?;
    Ok(answer(req, ready, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip(" GZIP;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip; q=0.0"));
        assert!(!accepts_gzip("br"));
        assert!(!accepts_gzip("x-gzip"));
    }

    #[test]
    fn the_page_names_the_version_of_its_assets_and_every_asset_it_links_exists() {
        let b = built();
        let page = std::str::from_utf8(&b.page.body).unwrap();
        assert!(!page.contains("{{v}}"));
        for link in page.split(&format!("/assets/{}/", b.version)).skip(1) {
            let name: String = link.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
            assert!(ASSETS.iter().any(|(n, _, _)| *n == name), "{name} is linked but not embedded");
        }
        // The scripts import each other by relative names: each must be embedded.
        for (_, body, _) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let text = std::str::from_utf8(body).unwrap();
            for part in text.split("from \"./").skip(1).chain(text.split("import(\"./").skip(1)) {
                let name: String = part.chars().take_while(|c| *c != '"').collect();
                assert!(ASSETS.iter().any(|(n, _, _)| *n == name), "{name} is imported but not embedded");
            }
        }
    }
}
