//! Rego policies (`type: rego`), evaluated as policy-controller evaluates them: the module
//! must be `package sigstore` and define `isCompliant`, queried as
//! `isCompliant = data.sigstore.isCompliant` in Rego v0 syntax (so `import rego.v1` or
//! `future.keywords` opt into the newer keywords, as with OPA in v0 mode).
//!
//! `isCompliant` is either a boolean, or a set (partial rule) of objects
//! `{"result": bool, "error": string, "warning": string}`: the policy passes when one object has
//! `result: true` (its `warning` is surfaced), and otherwise fails with the policy's own
//! `error` text. signet also accepts a single such object (a complete rule), which
//! policy-controller always treats as non-compliant.
//!
//! A policy is compiled once, when the ClusterImagePolicy loads, so syntax errors reject the
//! policy there; admission only evaluates.
//!
//! Limits, and why these: regorus offers a cooperative execution timer (checked between
//! evaluation steps) but its memory budget needs its own global allocator, which signet does
//! not want process-wide. So evaluation is bounded in layers:
//! - regorus's timer stops ordinary loops and huge comprehensions after [`Limits::steps_time`];
//! - each evaluation runs on its own thread (a big stack, so long rule chains cannot overflow
//!   the server's threads) and admission waits at most [`Limits::deadline`], then denies; a
//!   semaphore of [`Limits::concurrent`] caps how many such threads can exist at once, so a
//!   policy stuck inside one builtin call costs at most that many threads, never the server;
//! - `numbers.range`/`numbers.range_step`, the builtins that allocate a whole array in one
//!   step the timer cannot interrupt, are replaced by versions capped at [`Limits::range`];
//! - the answer is measured before it is read: an `isCompliant` whose JSON is larger than
//!   [`Limits::output_bytes`], or messages longer than [`Limits::message_bytes`], deny.
//!
//! Not bounded: memory grown by a policy that repeatedly doubles a string or array in
//! hand-written steps within the time limit. Writing ClusterImagePolicies is a cluster-admin
//! privilege; the limits above are against mistakes, not against a hostile cluster admin.

use std::fmt;
use std::io::Write;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, PolicyLengthConfig, Value};
use tokio::sync::Semaphore;

/// The rule policy-controller queries.
pub const RULE: &str = "data.sigstore.isCompliant";

/// How far one evaluation may go.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// regorus's cooperative timer: evaluation steps stop after this long.
    pub steps_time: Duration,
    /// Admission waits this long for an answer, then denies (the thread may run on).
    pub deadline: Duration,
    /// Evaluation threads that may exist at once.
    pub concurrent: usize,
    /// Most elements `numbers.range` and `numbers.range_step` may produce.
    pub range: u64,
    /// Most bytes of `isCompliant`'s JSON.
    pub output_bytes: usize,
    /// Most bytes of a policy's `error` or `warning` text.
    pub message_bytes: usize,
    /// Stack of an evaluation thread: deep rule chains recurse in the interpreter. Reserved,
    /// not committed: pages are touched only as deep as a policy recurses. The longest chain
    /// a policy may hold (4,990 rules) overflowed 64 MiB in a debug build, which aborts the
    /// whole process, so the reservation is 256 MiB.
    pub stack_bytes: usize,
    /// Most lines of a policy: this bounds how long a chain of rules can be.
    pub policy_lines: usize,
    /// Most bytes of a policy.
    pub policy_bytes: usize,
    /// Deepest nesting of `[` and `{`: regorus's parser backtracks at each level (array or
    /// comprehension?), so compile time grows about 2.3-fold per level.
    pub nesting: usize,
}

/// The limits every Rego evaluation runs under.
pub const LIMITS: Limits = Limits {
    steps_time: Duration::from_millis(500),
    deadline: Duration::from_millis(1000),
    concurrent: 4,
    range: 100_000,
    output_bytes: 64 * 1024,
    message_bytes: 4 * 1024,
    stack_bytes: 256 * 1024 * 1024,
    policy_lines: MAX_LINES,
    policy_bytes: 256 * 1024,
    nesting: 8,
};

const MAX_LINES: usize = 5000;

/// Evaluation steps between two reads of the clock.
const CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(16) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// Evaluation threads that may be alive at once (see [`Limits::concurrent`]).
static SLOTS: Semaphore = Semaphore::const_new(LIMITS.concurrent);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegoError {
    #[error("rego policy {policy:?} does not compile: {detail}")]
    Compile { policy: String, detail: String },
    #[error("rego policy {policy:?} must be `package sigstore`, found {found}")]
    Package { policy: String, found: String },
    #[error("rego policy {policy:?} defines no rule isCompliant (policy-controller queries data.sigstore.isCompliant)")]
    NoRule { policy: String },
}

/// policy-controller's denial for `isCompliant` false.
const NOT_COMPLIANT: &str = "policy is not compliant for query 'isCompliant = data.sigstore.isCompliant'";

/// What a policy said about one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow { warning: Option<String> },
    Deny { error: String, warning: Option<String> },
}

impl Verdict {
    pub fn deny(error: impl Into<String>) -> Self {
        Verdict::Deny {
            error: error.into(),
            warning: None,
        }
    }
}

/// A compiled Rego policy, cheap to clone and share between threads.
#[derive(Clone)]
pub struct RegoPolicy {
    name: Arc<str>,
    engine: Arc<Engine>,
}

impl fmt::Debug for RegoPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegoPolicy")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RegoPolicy {
    /// Parses and compiles `source`; `name` says which policy, for messages.
    pub fn compile(name: &str, source: &str) -> Result<Self, RegoError> {
        let compile_error = |e: anyhow::Error| RegoError::Compile {
            policy: name.to_string(),
            detail: e.to_string().trim().to_string(),
        };
        check_nesting(source, LIMITS.nesting).map_err(|detail| RegoError::Compile {
            policy: name.to_string(),
            detail,
        })?;
        let mut engine = Engine::new();
        // policy-controller (OPA) evaluates these in v0 syntax.
        engine.set_rego_v0(true);
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: LIMITS.steps_time,
            check_interval: CHECK_INTERVAL,
        });
        engine.set_policy_length_config(length_limits());
        add_bounded_builtins(&mut engine).map_err(compile_error)?;
        let path = format!("{name}.rego");
        let package = engine
            .add_policy(path.clone(), source.to_string())
            .map_err(compile_error)?;
        if package != "data.sigstore" {
            return Err(RegoError::Package {
                policy: name.to_string(),
                found: format!("`package {}`", package.trim_start_matches("data.")),
            });
        }
        if !engine
            .has_declared_rule_rooted_at(&path, "isCompliant")
            .map_err(compile_error)?
        {
            return Err(RegoError::NoRule {
                policy: name.to_string(),
            });
        }
        // Resolves references and checks rule safety now rather than at the first admission.
        engine.compile_with_entrypoint(&RULE.into()).map_err(compile_error)?;
        Ok(RegoPolicy {
            name: name.into(),
            engine: Arc::new(engine),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Evaluates on the calling thread, bounded only by regorus's step timer: for tests and
    /// for [`RegoPolicy::evaluate`], which adds the deadline and the thread bound.
    pub fn evaluate_blocking(&self, input: &serde_json::Value) -> Verdict {
        let mut engine = Engine::clone(&self.engine);
        engine.set_input(Value::from(input.clone()));
        match engine.eval_rule(RULE.to_string()) {
            Ok(value) => verdict(&value),
            // regorus points at the source over several lines; an admission message is one.
            Err(e) => {
                let error = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                Verdict::deny(format!("rego evaluation failed: {}", truncate(&error)))
            }
        }
    }

    /// Evaluates on a bounded evaluation thread; denies when no answer comes in time.
    pub async fn evaluate(&self, input: serde_json::Value) -> Verdict {
        let policy = self.clone();
        run_bounded("rego", &self.name, move || policy.evaluate_blocking(&input)).await
    }
}

/// Runs one policy evaluation (`engine` says which language, `name` which policy) on its
/// own thread under [`LIMITS`]: at most [`Limits::concurrent`] such threads at once, and
/// admission waits at most [`Limits::deadline`], then denies.
pub async fn run_bounded(engine: &'static str, name: &str, work: impl FnOnce() -> Verdict + Send + 'static) -> Verdict {
    let deadline = tokio::time::Instant::now() + LIMITS.deadline;
    let Ok(Ok(permit)) = tokio::time::timeout_at(deadline, SLOTS.acquire()).await else {
        tracing::warn!(policy = %name, engine, "every policy evaluation slot is busy");
        return Verdict::deny(format!(
            "{engine} evaluation denied: all {} evaluation slots are busy with earlier evaluations",
            LIMITS.concurrent
        ));
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("signet-{engine}"))
        .stack_size(LIMITS.stack_bytes)
        .spawn(move || {
            // Held until evaluation really ends, also after admission stopped waiting.
            let _permit = permit;
            let _ = sender.send(work());
        });
    if let Err(e) = spawned {
        return Verdict::deny(format!("{engine} evaluation could not start: {e}"));
    }
    match tokio::time::timeout_at(deadline, receiver).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(_)) => Verdict::deny(format!("{engine} evaluation stopped without an answer")),
        Err(_) => {
            tracing::warn!(policy = %name, engine, limit_ms = LIMITS.deadline.as_millis() as u64, "policy evaluation cut off");
            Verdict::deny(format!(
                "{engine} evaluation took longer than {} ms and was cut off",
                LIMITS.deadline.as_millis()
            ))
        }
    }
}

/// Maps `isCompliant` to a verdict, as policy-controller reads it.
fn verdict(value: &Value) -> Verdict {
    if let Some(size) = json_size_over(value, LIMITS.output_bytes) {
        return Verdict::deny(format!(
            "rego policy output is too large (over {size} bytes of isCompliant; the limit is {})",
            LIMITS.output_bytes
        ));
    }
    let results: Vec<&Value> = match value {
        Value::Bool(true) => return Verdict::Allow { warning: None },
        // policy-controller's own words, so messages read the same after a migration.
        Value::Bool(false) => return Verdict::deny(NOT_COMPLIANT),
        Value::Undefined => return Verdict::deny("rego policy is not compliant: isCompliant is undefined"),
        Value::Set(set) => set.iter().collect(),
        Value::Array(array) => array.iter().collect(),
        Value::Object(_) => vec![value],
        other => {
            return Verdict::deny(format!(
                "rego policy is not compliant: isCompliant is {}, expected a boolean or {{result, error, warning}} objects",
                kind(other)
            ));
        }
    };
    read_results(&results)
}

/// One passing object is enough; otherwise the last object's error and warning are reported.
fn read_results(results: &[&Value]) -> Verdict {
    let mut denied = Verdict::deny("rego policy is not compliant: isCompliant is empty");
    for item in results {
        let Value::Object(object) = item else {
            return Verdict::deny(format!(
                "rego policy is not compliant: isCompliant holds {}, expected {{result, error, warning}} objects",
                kind(item)
            ));
        };
        let field = |name: &str| object.get(&Value::from(name)).cloned().unwrap_or(Value::Undefined);
        let (warning, error) = match (message(&field("warning")), message(&field("error"))) {
            (Ok(warning), Ok(error)) => (warning, error),
            (Err(too_long), _) | (_, Err(too_long)) => return Verdict::deny(too_long),
        };
        if field("result") == Value::Bool(true) {
            return Verdict::Allow { warning };
        }
        let error = error.unwrap_or_else(|| "result is not true".to_string());
        denied = Verdict::Deny {
            error: format!("rego policy is not compliant: {error}"),
            warning,
        };
    }
    denied
}

/// A non-empty string field; `Err` when it is longer than the limit.
fn message(value: &Value) -> Result<Option<String>, String> {
    let Value::String(text) = value else {
        return Ok(None);
    };
    if text.len() > LIMITS.message_bytes {
        return Err(format!(
            "rego policy output is too large ({} bytes of error or warning text; the limit is {})",
            text.len(),
            LIMITS.message_bytes
        ));
    }
    Ok(Some(text.to_string()).filter(|t| !t.is_empty()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Set(_) => "a set",
        Value::Object(_) => "an object",
        Value::Undefined => "undefined",
    }
}

/// `Some(limit)` when `value`'s JSON is longer than `limit` bytes; stops writing at the limit.
pub fn json_size_over(value: &impl serde::Serialize, limit: usize) -> Option<usize> {
    struct Capped(usize);
    impl Write for Capped {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.checked_sub(buf.len()).ok_or(std::io::ErrorKind::FileTooLarge)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Capped(limit), value).is_err().then_some(limit)
}

/// Error messages from regorus quote source lines; keep a denial readable.
fn truncate(text: &str) -> String {
    let limit = LIMITS.message_bytes;
    if text.len() <= limit {
        return text.to_string();
    }
    let cut = (0..=limit).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    format!("{}…", &text[..cut])
}

/// Rejects `[`/`{` nested deeper than `limit` outside strings and comments.
fn check_nesting(source: &str, limit: usize) -> Result<(), String> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' => {
                chars.by_ref().find(|c| *c == '\n');
                line += 1;
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '`' => line += chars.by_ref().take_while(|c| *c != '`').filter(|c| *c == '\n').count(),
            '[' | '{' => {
                depth += 1;
                if depth > limit {
                    return Err(format!(
                        "line {line}: brackets and braces nest deeper than signet allows ({limit} levels)"
                    ));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn length_limits() -> PolicyLengthConfig {
    let defaults = PolicyLengthConfig::default();
    PolicyLengthConfig {
        max_lines: NonZeroUsize::new(LIMITS.policy_lines).unwrap_or(defaults.max_lines),
        max_file_bytes: NonZeroUsize::new(LIMITS.policy_bytes).unwrap_or(defaults.max_file_bytes),
        ..defaults
    }
}

/// Replaces the builtins that allocate a whole array in one uninterruptible step.
fn add_bounded_builtins(engine: &mut Engine) -> anyhow::Result<()> {
    engine.add_extension(
        "numbers.range".into(),
        2,
        Box::new(|args: Vec<Value>| match args.as_slice() {
            [from, to] => bounded_range(from.as_i64()?, to.as_i64()?, 1),
            _ => anyhow::bail!("numbers.range takes 2 arguments"),
        }),
    )?;
    engine.add_extension(
        "numbers.range_step".into(),
        3,
        Box::new(|args: Vec<Value>| match args.as_slice() {
            [from, to, step] => {
                let step = step.as_i64()?;
                anyhow::ensure!(step > 0, "numbers.range_step: step must be a positive integer");
                bounded_range(from.as_i64()?, to.as_i64()?, step)
            }
            _ => anyhow::bail!("numbers.range_step takes 3 arguments"),
        }),
    )?;
    Ok(())
}

/// OPA's `numbers.range_step`: from `from` towards `to` by `step`, `to` included when reached.
fn bounded_range(from: i64, to: i64, step: i64) -> anyhow::Result<Value> {
    let count = from.abs_diff(to) / step.unsigned_abs() + 1;
    anyhow::ensure!(
        count <= LIMITS.range,
        "numbers.range: {count} elements is more than signet allows ({})",
        LIMITS.range
    );
    let step = if to < from { -step } else { step };
    let values = (0..count as i64)
        .map(|i| Value::from(from + i * step))
        .collect::<Vec<_>>();
    Ok(Value::from(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(source: &str) -> RegoPolicy {
        RegoPolicy::compile("test", source).unwrap()
    }

    fn allow(warning: Option<&str>) -> Verdict {
        Verdict::Allow {
            warning: warning.map(str::to_string),
        }
    }

    fn deny(error: &str, warning: Option<&str>) -> Verdict {
        Verdict::Deny {
            error: error.to_string(),
            warning: warning.map(str::to_string),
        }
    }

    #[test]
    fn results_map_to_allow_or_deny() {
        let rows: Vec<(&str, &str, serde_json::Value, Verdict)> = vec![
            ("true", "isCompliant = true", json!({}), allow(None)),
            ("false", "isCompliant = false", json!({}), deny(NOT_COMPLIANT, None)),
            (
                "default false",
                "default isCompliant = false\nisCompliant { input.ok == true }",
                json!({"ok": false}),
                deny(NOT_COMPLIANT, None),
            ),
            (
                "undefined",
                "isCompliant { input.ok == true }",
                json!({}),
                deny("rego policy is not compliant: isCompliant is undefined", None),
            ),
            (
                "rule body holds",
                "isCompliant { input.ok == true }",
                json!({"ok": true}),
                allow(None),
            ),
            (
                "set: result true with warning",
                "isCompliant[r] { r := {\"result\": true, \"warning\": \"old base image\"} }",
                json!({}),
                allow(Some("old base image")),
            ),
            (
                "set: result false with the policy's error",
                "isCompliant[r] { r := {\"result\": false, \"error\": \"no SBOM\", \"warning\": \"w\"} }",
                json!({}),
                deny("rego policy is not compliant: no SBOM", Some("w")),
            ),
            (
                "set: no error text",
                "isCompliant[r] { r := {\"result\": false} }",
                json!({}),
                deny("rego policy is not compliant: result is not true", None),
            ),
            (
                "set: one passing object is enough",
                "isCompliant[r] { r := {\"result\": false, \"error\": \"a\"} }\nisCompliant[r] { r := {\"result\": true} }",
                json!({}),
                allow(None),
            ),
            (
                "empty set",
                "isCompliant[r] { r := {\"result\": input.never} }",
                json!({}),
                deny("rego policy is not compliant: isCompliant is empty", None),
            ),
            (
                "object (signet extension)",
                "isCompliant := {\"result\": false, \"error\": sprintf(\"%d signatures\", [count(input.s)])}",
                json!({"s": [1, 2]}),
                deny("rego policy is not compliant: 2 signatures", None),
            ),
            (
                "number",
                "isCompliant = 1",
                json!({}),
                deny(
                    "rego policy is not compliant: isCompliant is a number, expected a boolean or {result, error, warning} objects",
                    None,
                ),
            ),
            (
                "set of strings",
                "isCompliant[\"x\"] { true }",
                json!({}),
                deny(
                    "rego policy is not compliant: isCompliant holds a string, expected {result, error, warning} objects",
                    None,
                ),
            ),
            (
                "v1 keywords with import",
                "import rego.v1\nisCompliant if { every s in input.s { s > 0 } }",
                json!({"s": [1, 2]}),
                allow(None),
            ),
            (
                "bounded range keeps OPA semantics",
                "isCompliant { numbers.range(3, 1) == [3, 2, 1]; numbers.range_step(0, 10, 4) == [0, 4, 8] }",
                json!({}),
                allow(None),
            ),
        ];
        for (name, body, input, want) in rows {
            let policy = compile(&format!("package sigstore\n{body}\n"));
            assert_eq!(policy.evaluate_blocking(&input), want, "{name}");
        }
    }

    #[test]
    fn bad_policies_are_rejected_at_compile_time() {
        let rows = [
            ("syntax", "package sigstore\nisCompliant {", "does not compile"),
            (
                "package",
                "package other\nisCompliant = true",
                "must be `package sigstore`, found `package other`",
            ),
            ("rule", "package sigstore\nallow = true", "defines no rule isCompliant"),
            (
                "unsafe variable",
                "package sigstore\nisCompliant { x > 1 }",
                "does not compile",
            ),
            (
                "nesting",
                "package sigstore\n# [[[[[[[[[[ in a comment is fine\nisCompliant { \"[[[[[[[[[[\" != `{{{{{{{{{{`; [[[[[[[[1]]]]]]]] != 1 }",
                "line 3: brackets and braces nest deeper than signet allows (8 levels)",
            ),
        ];
        for (name, source, want) in rows {
            let err = RegoPolicy::compile("p", source).unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
            assert!(err.contains("\"p\""), "{name}: names the policy: {err}");
        }
    }

    #[test]
    fn pathological_policies_are_cut_off() {
        let rows = [
            (
                "huge comprehension",
                "isCompliant { count([x | some i, j, k; numbers.range(1, 1000)[i]; numbers.range(1, 1000)[j]; numbers.range(1, 1000)[k]; x := i]) > 0 }".to_string(),
                "rego evaluation failed",
            ),
            (
                "huge range",
                "isCompliant { count(numbers.range(1, 1000000000000)) > 0 }".to_string(),
                "more than signet allows",
            ),
            (
                "huge output",
                "isCompliant := {\"result\": false, \"error\": concat(\"\", [\"xxxxxxxxxx\" | numbers.range(1, 10000)[_]])}".to_string(),
                "rego policy output is too large",
            ),
        ];
        for (name, body, want) in rows {
            let policy = compile(&format!("package sigstore\n{body}\n"));
            let started = std::time::Instant::now();
            let verdict = policy.evaluate_blocking(&json!({}));
            let took = started.elapsed();
            eprintln!("{name}: {took:?}: {verdict:?}");
            assert!(took < Duration::from_secs(5), "{name}: took {took:?}");
            match verdict {
                Verdict::Deny { error, .. } => assert!(error.contains(want), "{name}: {error}"),
                Verdict::Allow { .. } => assert!(want.is_empty(), "{name}: allowed"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn evaluation_is_bounded_by_the_deadline_and_the_server_keeps_serving() {
        let slow = compile(
            "package sigstore\nisCompliant { count([x | some i, j, k; numbers.range(1, 1000)[i]; numbers.range(1, 1000)[j]; numbers.range(1, 1000)[k]; x := i]) > 0 }\n",
        );
        let quick = compile("package sigstore\nisCompliant = true\n");
        let started = std::time::Instant::now();
        let (slow_verdict, quick_verdict) = tokio::join!(slow.evaluate(json!({})), quick.evaluate(json!({})));
        let took = started.elapsed();
        eprintln!("cut off after {took:?}: {slow_verdict:?}");
        assert!(matches!(slow_verdict, Verdict::Deny { .. }), "{slow_verdict:?}");
        assert_eq!(quick_verdict, allow(None));
        assert!(took <= LIMITS.deadline + Duration::from_millis(500), "{took:?}");
    }

    /// The longest rule chain a policy can hold (one rule a line), each rule nesting
    /// expressions as deep as the parser allows: the evaluation thread's stack holds it.
    #[tokio::test]
    async fn deep_rule_chains_fit_the_evaluation_stack() {
        let depth = MAX_LINES - 10;
        let chain: String = (0..depth).map(|i| format!("r{i} = r{} + 1\n", i + 1)).collect();
        let source = format!("package sigstore\nisCompliant {{ r0 > 0 }}\n{chain}r{depth} = 1\n");
        let started = std::time::Instant::now();
        let policy = compile(&source);
        let compiled = started.elapsed();
        let verdict = policy.evaluate(json!({})).await;
        let evaluated = started.elapsed() - compiled;
        eprintln!("chain of {depth}: compiled in {compiled:?}, evaluated in {evaluated:?}: {verdict:?}");
        assert!(compiled < Duration::from_secs(10), "{compiled:?}");
        assert!(matches!(verdict, Verdict::Allow { .. }) || evaluated <= LIMITS.deadline + Duration::from_millis(500));
    }

    #[test]
    fn large_but_bounded_outputs_are_measured_without_serialising_everything() {
        assert_eq!(json_size_over(&Value::from("x".repeat(10)), 5), Some(5));
        assert_eq!(json_size_over(&Value::from("x".repeat(10)), 100), None);
        assert_eq!(truncate(&"é".repeat(5000)).chars().count(), 2049);
    }
}
