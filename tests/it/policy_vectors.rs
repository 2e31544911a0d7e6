//! policy-controller's glob table (`glob-test-vectors.json`, read from the shared fixtures),
//! every case through signet's glob and reference code.

use crate::support;

use serde_json::Value;
use signet::policy::glob::Glob;
use signet::policy::reference::ImageRef;

/// policy-controller's `glob.Match(glob, image)`: an invalid glob or image is an error.
fn glob_match(glob: &str, image: &str) -> Result<bool, String> {
    let glob = Glob::compile(glob).map_err(|e| e.to_string())?;
    let image = ImageRef::parse(image).map_err(|e| e.to_string())?;
    Ok(glob.matches(&image))
}

#[test]
fn every_policy_controller_glob_vector_passes() {
    let Some(fixtures) = support::fixtures_dir() else {
        return;
    };
    let text = std::fs::read_to_string(fixtures.join("policy-controller/glob-test-vectors.json")).unwrap();
    let table: Value = serde_json::from_str(&text).unwrap();
    let cases = table["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 42, "the table has 42 cases");
    let mut failures = Vec::new();
    for case in cases {
        let glob = case["glob"].as_str().unwrap();
        let image = case["image"].as_str().unwrap();
        let want_match = case["wantMatch"].as_bool().unwrap();
        let want_err = case["wantErr"].as_bool().unwrap();
        let outcome = glob_match(glob, image);
        let ok = match (&outcome, want_err) {
            (Err(_), true) => true,
            (Ok(matched), false) => *matched == want_match,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "glob {glob:?} image {image:?}: got {outcome:?}, want match={want_match} err={want_err}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 42 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
