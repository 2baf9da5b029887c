use super::first_difference;
use serde_json::json;

#[test]
fn first_difference_names_the_path_and_both_values() {
    let a = json!({"verdict": "deny", "args": {"p": [1, 2]}});
    assert_eq!(first_difference(&a, &a, "payload"), None);
    let b = json!({"verdict": "allow", "args": {"p": [1, 2]}});
    assert_eq!(
        first_difference(&a, &b, "payload").as_deref(),
        Some(r#"payload.verdict: expected "deny" got "allow""#)
    );
    let c = json!({"verdict": "deny", "args": {"p": [1, 3]}, "x": 1});
    assert_eq!(
        first_difference(&a, &c, "payload").as_deref(),
        Some("payload.args.p[1]: expected 2 got 3")
    );
    let d = json!({"verdict": "deny"});
    assert_eq!(
        first_difference(&a, &d, "payload").as_deref(),
        Some(r#"payload.args: expected {"p":[1,2]} got nothing"#)
    );
}
