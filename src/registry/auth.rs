//! Registry authentication: credentials, `WWW-Authenticate` challenges, bearer token cache.
//!
//! Tokens are cached per (registry, scope, credential identity) so that two pods with
//! different pull secrets never share a token. The identity is a hash, so the cache never
//! holds a password in a form that could end up in a log.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

/// Credentials for one registry call (from a pull secret, or none).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
}

// Hand-written so the password never reaches a log line or a panic message.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl Credentials {
    /// A stable, non-reversible identity for cache keys.
    pub fn identity(&self) -> String {
        match self {
            Credentials::Anonymous => "anonymous".to_string(),
            Credentials::Basic { username, password } => {
                let mut material = Vec::with_capacity(username.len() + password.len() + 1);
                material.extend_from_slice(username.as_bytes());
                material.push(0);
                material.extend_from_slice(password.as_bytes());
                format!("basic:{}", super::sha256_digest(&material))
            }
        }
    }

    /// `Basic <base64(user:pass)>`, or None for anonymous.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
        }
    }

    /// How to describe these credentials in an error, without the secret.
    pub(crate) fn describe(&self) -> String {
        match self {
            Credentials::Anonymous => "anonymous access".to_string(),
            Credentials::Basic { username, .. } => format!("credentials for user {username:?}"),
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Picks the challenge we can answer from all `WWW-Authenticate` header values; Bearer wins
/// over Basic because it does not send the password to the registry on every request.
pub(crate) fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for value in values {
        let (scheme, params) = split_scheme(value);
        if scheme.eq_ignore_ascii_case("bearer") {
            let params = parse_params(params);
            if let Some(realm) = params.get("realm") {
                return Some(Challenge::Bearer {
                    realm: realm.clone(),
                    service: params.get("service").cloned(),
                    scope: params.get("scope").cloned(),
                });
            }
        } else if scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    basic.then_some(Challenge::Basic)
}

/// The `error`/`error_description` of a Bearer challenge, for messages (RFC 6750 §3).
pub(crate) fn challenge_error<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    values.into_iter().find_map(|value| {
        let params = parse_params(split_scheme(value).1);
        let error = params.get("error")?;
        Some(match params.get("error_description") {
            Some(desc) => format!("{error}: {desc}"),
            None => error.clone(),
        })
    })
}

fn split_scheme(value: &str) -> (&str, &str) {
    let value = value.trim();
    match value.find(char::is_whitespace) {
        Some(i) => (&value[..i], value[i..].trim_start()),
        None => (value, ""),
    }
}

/// Parses `k=v, k="quoted, \"escaped\""` (RFC 7235 auth-params). Keys are lower-cased.
fn parse_params(input: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = input.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, after) = parse_value(rest[eq + 1..].trim_start());
        out.insert(key, value);
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// One token or quoted-string value; returns it and the remaining input.
fn parse_value(input: &str) -> (String, &str) {
    let Some(quoted) = input.strip_prefix('"') else {
        let end = input.find(',').unwrap_or(input.len());
        return (input[..end].trim().to_string(), &input[end..]);
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '"' => return (value, &quoted[i + 1..]),
            _ => value.push(c),
        }
    }
    (value, "")
}

/// A token endpoint answer (Docker token spec; OAuth2 servers use `access_token`).
#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// The default lifetime the token spec assumes when `expires_in` is absent.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// The longest a token is reused, whatever `expires_in` says. The value comes from the
/// registry, so it is capped before it meets `Instant` arithmetic (a `u64::MAX` there
/// overflowed and panicked); an hour is far above the 5 minutes registries commonly give.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Tokens are dropped this long before they expire, so a request never races the expiry.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

pub(crate) struct Token {
    pub value: String,
    pub lifetime: Duration,
}

/// Parses a token endpoint body; None when it holds no usable token.
pub(crate) fn parse_token_response(body: &[u8]) -> Option<Token> {
    let parsed: TokenResponse = serde_json::from_slice(body).ok()?;
    let usable = |t: &String| !t.is_empty() && is_token_text(t);
    let value = parsed.token.filter(usable).or(parsed.access_token.filter(usable))?;
    let lifetime = parsed
        .expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
        .min(MAX_TOKEN_LIFETIME);
    Some(Token { value, lifetime })
}

/// Whether a token can go into an `Authorization` header as it is: visible ASCII only.
/// Anything else (CR/LF, controls, non-ASCII) is refused when the token arrives; cached, it
/// would fail every later request to that registry without reaching it (found by fuzzing).
fn is_token_text(token: &str) -> bool {
    token.bytes().all(|b| b.is_ascii_graphic())
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub registry: String,
    pub scope: String,
    pub identity: String,
}

/// Bounded cache of bearer tokens; entries expire shortly before the token does.
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

/// Enough for many registries × repositories × pull secrets; beyond it we start over.
const MAX_TOKENS: usize = 4096;

impl TokenCache {
    pub fn new() -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &TokenKey) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, valid_until)| Instant::now() < *valid_until)
            .map(|(token, _)| token.clone())
    }

    pub fn insert(&self, key: TokenKey, token: &Token) {
        let Some(usable) = token.lifetime.checked_sub(EXPIRY_MARGIN) else {
            return; // too short-lived to be worth reusing
        };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_TOKENS {
            entries.retain(|_, (_, valid_until)| now < *valid_until);
            if entries.len() >= MAX_TOKENS {
                entries.clear();
            }
        }
        let Some(valid_until) = now.checked_add(usable) else {
            return; // unreachable with the capped lifetime; not cached rather than a panic
        };
        entries.insert(key, (token.value.clone(), valid_until));
    }

    pub fn remove(&self, key: &TokenKey) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_password() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("alice") && !shown.contains("s3cret"), "{shown}");
        assert!(!c.identity().contains("s3cret"));
        assert_ne!(c.identity(), Credentials::Anonymous.identity());
    }

    #[test]
    fn parses_docker_hub_bearer_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
        assert_eq!(
            parse_challenges([h]),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
    }

    #[test]
    fn parses_basic_and_prefers_bearer() {
        assert_eq!(
            parse_challenges([r#"Basic realm="test-realm""#]),
            Some(Challenge::Basic)
        );
        let both = [r#"Basic realm="x""#, r#"bearer realm=https://t/token, scope="a,b""#];
        assert_eq!(
            parse_challenges(both),
            Some(Challenge::Bearer {
                realm: "https://t/token".into(),
                service: None,
                scope: Some("a,b".into()),
            })
        );
        assert_eq!(parse_challenges(["Negotiate"]), None);
        assert_eq!(parse_challenges(["Bearer service=x"]), None);
    }

    #[test]
    fn parses_escapes_and_errors() {
        let h = r#"Bearer realm="r", error="insufficient_scope", error_description="say \"no\"""#;
        assert_eq!(challenge_error([h]).as_deref(), Some(r#"insufficient_scope: say "no""#));
    }

    #[test]
    fn token_response_forms() {
        let t = parse_token_response(br#"{"token":"abc","expires_in":300}"#);
        assert!(t.is_some_and(|t| t.value == "abc" && t.lifetime == Duration::from_secs(300)));
        for unusable in [
            r#"{"token":"a\r\nx-injected: 1"}"#,
            r#"{"token":"a b"}"#,
            r#"{"access_token":"é"}"#,
        ] {
            assert!(parse_token_response(unusable.as_bytes()).is_none(), "{unusable}");
        }
        // Seen from a hostile registry: u64::MAX seconds overflowed `Instant + Duration`.
        let huge = parse_token_response(br#"{"token":"abc","expires_in":18446744073709551615}"#);
        let huge = huge.expect("a token with a huge lifetime is still a token");
        assert_eq!(huge.lifetime, MAX_TOKEN_LIFETIME);
        let cache = TokenCache::new();
        let key = TokenKey {
            registry: "r".into(),
            scope: "s".into(),
            identity: "i".into(),
        };
        cache.insert(key.clone(), &huge);
        assert_eq!(cache.get(&key).as_deref(), Some("abc"));
        let t = parse_token_response(br#"{"access_token":"xyz"}"#);
        assert!(t.is_some_and(|t| t.value == "xyz" && t.lifetime == DEFAULT_TOKEN_LIFETIME));
        assert!(parse_token_response(br#"{"token":""}"#).is_none());
        assert!(parse_token_response(b"not json").is_none());
    }

    #[test]
    fn cache_respects_expiry_margin() {
        let cache = TokenCache::new();
        let key = TokenKey {
            registry: "r".into(),
            scope: "repository:a:pull".into(),
            identity: "anonymous".into(),
        };
        let short = Token {
            value: "t1".into(),
            lifetime: Duration::from_secs(5),
        };
        cache.insert(key.clone(), &short);
        assert_eq!(cache.get(&key), None);
        let long = Token {
            value: "t2".into(),
            lifetime: Duration::from_secs(300),
        };
        cache.insert(key.clone(), &long);
        assert_eq!(cache.get(&key).as_deref(), Some("t2"));
        cache.remove(&key);
        assert_eq!(cache.get(&key), None);
    }
}
