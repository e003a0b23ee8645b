//! Discovery's pure parts: server-name parsing, the spec's first steps, SRV ordering and
//! `.well-known` cache lifetimes.

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn name(text: &str) -> Host {
    Host::Name(text.to_owned())
}

#[test]
fn server_names_split_into_host_and_port() {
    assert_eq!(
        split_server_name("example.org"),
        Some((name("example.org"), None))
    );
    assert_eq!(
        split_server_name("Example.ORG:8449"),
        Some((name("example.org"), Some(8449)))
    );
    assert_eq!(
        split_server_name("1.2.3.4"),
        Some((Host::Ip(ip("1.2.3.4")), None))
    );
    assert_eq!(
        split_server_name("1.2.3.4:1234"),
        Some((Host::Ip(ip("1.2.3.4")), Some(1234)))
    );
    assert_eq!(
        split_server_name("[1234:5678::abcd]"),
        Some((Host::Ip(ip("1234:5678::abcd")), None))
    );
    assert_eq!(
        split_server_name("[1234:5678::abcd]:5678"),
        Some((Host::Ip(ip("1234:5678::abcd")), Some(5678)))
    );
    assert_eq!(
        split_server_name("localhost:8448"),
        Some((name("localhost"), Some(8448)))
    );
    for bad in [
        "",
        ":8448",
        "example.org:",
        "example.org:0",
        "example.org:65536",
        "example.org:+80",
        "example.org:80:80",
        "exa mple.org",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[example.org]",
        "::1",
        "example.org/path",
    ] {
        assert_eq!(split_server_name(bad), None, "{bad:?}");
    }
}

#[test]
fn ip_literals_are_used_as_they_are() {
    assert_eq!(
        first_step("1.2.3.4"),
        Some(FirstStep::Direct {
            tls_name: Host::Ip(ip("1.2.3.4")),
            port: 8448,
            host_header: "1.2.3.4".into(),
        })
    );
    assert_eq!(
        first_step("[::1]:8000"),
        Some(FirstStep::Direct {
            tls_name: Host::Ip(ip("::1")),
            port: 8000,
            host_header: "[::1]:8000".into(),
        })
    );
}

#[test]
fn an_explicit_port_skips_delegation_and_keeps_the_port_in_the_host_header() {
    assert_eq!(
        first_step("matrix.example.org:8449"),
        Some(FirstStep::Direct {
            tls_name: name("matrix.example.org"),
            port: 8449,
            host_header: "matrix.example.org:8449".into(),
        })
    );
}

#[test]
fn a_bare_hostname_asks_well_known_first() {
    assert_eq!(
        first_step("example.org"),
        Some(FirstStep::Delegation {
            hostname: "example.org".into()
        })
    );
    assert_eq!(first_step("not a name"), None);
}

#[test]
fn urls_bracket_ipv6_hosts() {
    assert_eq!(Host::Ip(ip("::1")).url_host(), "[::1]");
    assert_eq!(Host::Ip(ip("10.1.2.3")).url_host(), "10.1.2.3");
    assert_eq!(name("example.org").url_host(), "example.org");
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvTarget {
    SrvTarget {
        priority,
        weight,
        port,
        target: target.into(),
    }
}

#[test]
fn srv_answers_go_by_priority_then_weight() {
    let answers = vec![
        srv(20, 0, 1, "c.example."),
        srv(10, 1, 2, "a.example."),
        srv(10, 99, 3, "b.example."),
    ];
    // A roll of 0 picks the first by weight; b comes first once its weight is hit.
    let ordered = order_srv(answers.clone(), |_| 0);
    let targets: Vec<_> = ordered.iter().map(|t| t.target.as_str()).collect();
    assert_eq!(targets, ["a.example.", "b.example.", "c.example."]);
    let ordered = order_srv(answers, |_| 50);
    let targets: Vec<_> = ordered.iter().map(|t| t.target.as_str()).collect();
    assert_eq!(targets, ["b.example.", "a.example.", "c.example."]);
}

#[test]
fn a_dot_target_means_no_service() {
    assert!(order_srv(vec![srv(0, 0, 8448, ".")], |_| 0).is_empty());
    let ordered = order_srv(vec![srv(0, 0, 8448, "."), srv(1, 0, 443, "x.")], |_| 0);
    assert_eq!(ordered, vec![srv(1, 0, 443, "x.")]);
}

#[test]
fn well_known_lifetimes_follow_cache_headers_within_bounds() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
    let hours = |h: u64| Duration::from_secs(h * 3600);
    assert_eq!(cache_lifetime(None, None, now), hours(24));
    assert_eq!(
        cache_lifetime(Some("public, max-age=7200"), None, now),
        hours(2)
    );
    assert_eq!(
        cache_lifetime(Some("max-age=999999999"), None, now),
        hours(48)
    );
    assert_eq!(
        cache_lifetime(Some("max-age=1"), None, now),
        Duration::from_secs(300)
    );
    assert_eq!(
        cache_lifetime(Some("no-store"), None, now),
        Duration::from_secs(300)
    );
    // Expires counts from now; Cache-Control wins over it.
    assert_eq!(
        cache_lifetime(None, Some("Sun, 06 Nov 1994 11:49:37 GMT"), now),
        hours(3)
    );
    assert_eq!(
        cache_lifetime(
            Some("max-age=3600"),
            Some("Sun, 06 Nov 1994 11:49:37 GMT"),
            now
        ),
        hours(1)
    );
    assert_eq!(
        cache_lifetime(None, Some("Sun, 06 Nov 1994 08:00:00 GMT"), now),
        Duration::from_secs(300)
    );
    assert_eq!(cache_lifetime(None, Some("0"), now), hours(24));
    assert_eq!(cache_lifetime(Some("max-age=abc"), None, now), hours(24));
}

#[test]
fn http_dates_parse() {
    assert_eq!(
        httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
    );
    assert_eq!(
        httpdate_parse("Thu, 01 Jan 1970 00:00:00 GMT"),
        Some(SystemTime::UNIX_EPOCH)
    );
    assert_eq!(
        httpdate_parse("Tue, 29 Feb 2028 12:00:00 GMT"),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_835_438_400))
    );
    assert_eq!(httpdate_parse("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    assert_eq!(httpdate_parse("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    assert_eq!(httpdate_parse("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    assert_eq!(
        httpdate_parse("Sun, 06 Nov 18446744073709551615 08:49:37 GMT"),
        None
    );
}

#[test]
fn well_known_errors_are_remembered_with_back_off() {
    let minutes = |m: u64| Duration::from_secs(m * 60);
    assert_eq!(error_lifetime(true, 0), minutes(60));
    assert_eq!(error_lifetime(false, 1), minutes(2));
    assert_eq!(error_lifetime(false, 2), minutes(4));
    assert_eq!(error_lifetime(false, 3), minutes(8));
    assert_eq!(error_lifetime(false, 50), minutes(60));
}
