//! The method and path of every endpoint the router serves, read from the router itself
//! so that tests walking every route cannot miss one added later.
//!
//! axum offers no way to list a router's routes, but its `Debug` output carries each
//! route's path and the `Allow` header its method router built. This reads those; the
//! unit test below fails if a new axum version prints them differently.

use axum::http::Method;

use super::AppState;

/// Every (method, path template) the router answers, sorted. `HEAD` is left out, as
/// axum adds it to every `GET`.
pub fn route_table(state: &AppState) -> Vec<(Method, String)> {
    parse(&format!("{:?}", super::endpoints(state)))
}

fn parse(debug: &str) -> Vec<(Method, String)> {
    let paths = ids_to_paths(debug);
    let mut table = Vec::new();
    let mut rest = debug;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at + "RouteId(".len()..];
        let Some((id, after)) = rest.split_once("): MethodRouter(") else {
            continue;
        };
        let Ok(id) = id.parse::<u32>() else { continue };
        let Some(start) = after.find("allow_header: Bytes(b\"") else {
            continue;
        };
        let methods = &after[start + "allow_header: Bytes(b\"".len()..];
        let Some(end) = methods.find('"') else {
            continue;
        };
        let Some(path) = paths.iter().find(|(i, _)| *i == id).map(|(_, p)| p) else {
            continue;
        };
        for method in methods[..end].split(',') {
            if method != "HEAD"
                && let Ok(method) = method.parse::<Method>()
            {
                table.push((method, path.clone()));
            }
        }
    }
    table.sort_by(|a, b| (&a.1, a.0.as_str()).cmp(&(&b.1, b.0.as_str())));
    table.dedup();
    table
}

/// The `paths: {RouteId(n): "/path", ...}` maps of the router's nodes. Paths hold
/// braces (`{room_id}`), so entries are read one quoted string at a time.
fn ids_to_paths(debug: &str) -> Vec<(u32, String)> {
    const MAP: &str = "Node { paths: {";
    let mut out = Vec::new();
    let mut rest = debug;
    while let Some(at) = rest.find(MAP) {
        rest = &rest[at + MAP.len()..];
        while let Some(entry) = rest.strip_prefix("RouteId(") {
            let Some((id, after)) = entry.split_once("): \"") else {
                break;
            };
            let Some(end) = after.find('"') else { break };
            if let Ok(id) = id.parse::<u32>() {
                out.push((id, after[..end].to_owned()));
            }
            rest = after[end + 1..].trim_start_matches(", ");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;

    #[test]
    fn reads_paths_and_methods_from_the_router() {
        let router: Router = Router::new()
            .route("/a/{x}", get(|| async {}).post(|| async {}))
            .route("/b", axum::routing::put(|| async {}))
            .route_layer(axum::middleware::from_fn(
                |r: axum::extract::Request, n: axum::middleware::Next| n.run(r),
            ));
        let table = parse(&format!("{router:?}"));
        assert_eq!(
            table,
            vec![
                (Method::GET, "/a/{x}".to_owned()),
                (Method::POST, "/a/{x}".to_owned()),
                (Method::PUT, "/b".to_owned()),
            ]
        );
    }
}
