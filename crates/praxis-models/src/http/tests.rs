use super::*;

#[test]
fn retry_after_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after(" 1.5 ", now),
        Some(Duration::from_millis(1500))
    );
    let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
    assert_eq!(
        parse_retry_after(&later, now),
        Some(Duration::from_secs(30))
    );
    let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
    assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-3", now), None);
}

#[test]
fn backoff_grows_is_jittered_and_capped() {
    let policy = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };
    for _ in 0..50 {
        let first = backoff(&policy, 1, None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let third = backoff(&policy, 3, None);
        assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
        assert!(backoff(&policy, 30, None) <= Duration::from_secs(1));
    }
    // Retry-After wins, but never beyond max_delay.
    assert_eq!(
        backoff(&policy, 1, Some(Duration::from_millis(300))),
        Duration::from_millis(300)
    );
    assert_eq!(
        backoff(&policy, 1, Some(Duration::from_secs(3600))),
        Duration::from_secs(1)
    );
}

#[test]
fn error_bodies_are_quoted_or_described() {
    assert_eq!(
        describe_error_body(br#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#),
        "invalid_request_error: bad model"
    );
    assert_eq!(
        describe_error_body(
            br#"{"type":"error","error":{"type":"not_found_error","message":"model: x"}}"#
        ),
        "not_found_error: model: x"
    );
    assert_eq!(
        describe_error_body(br#"{"error":"model 'q' not found"}"#),
        "model 'q' not found"
    );
    assert_eq!(describe_error_body(b"  "), "the body is empty");
    let html = describe_error_body(b"<html>\n<body>Bad   Gateway</body></html>");
    assert!(
        html.starts_with("an HTML page") && html.contains("<body>Bad Gateway"),
        "{html}"
    );
    let long = "x".repeat(2000);
    assert!(describe_error_body(long.as_bytes()).chars().count() < 520);
}

#[test]
fn truncation_respects_characters() {
    assert_eq!(truncate("héllo", 2), "hé…");
    assert_eq!(truncate("hé", 2), "hé");
}
