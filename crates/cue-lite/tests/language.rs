//! The supported language, construct by construct: each row is a policy, an input and what
//! validation must say: the beginning of the first error, as CUE v0.4's `cue eval` prints it
//! (the differential test against CUE itself is signet's `tests/it/cue_oracle.rs`). Then what is refused at compile
//! time, naming the construct and its line, and the limits.

use cue_lite::{CompileError, EvalError, Limits, Policy};
use serde_json::{Value, json};

enum Expect {
    Pass,
    /// The first error, as displayed.
    Fail(&'static str),
}
use Expect::*;

fn check(policy: &str, input: Value) -> Result<(), String> {
    let policy = Policy::compile(policy).map_err(|e| format!("compile: {e}"))?;
    match policy.evaluate(&input, Limits::default()) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(violations)) => Err(violations.0[0].to_string()),
        Err(e) => Err(format!("stopped: {e}")),
    }
}

#[test]
fn constructs_decide_as_cue_does() {
    let rows: &[(&str, Value, Expect)] = &[
        // Struct unification, nested shorthand, quoted labels.
        ("a: b: c: 3", json!({"a": {"b": {"c": 3}}}), Pass),
        (
            "a: b: c: 3",
            json!({"a": {"b": {"c": 4}}}),
            Fail("a.b.c: conflicting values 3 and 4"),
        ),
        (
            "config: \"linux/amd64\": User: \"1\"",
            json!({"config": {"linux/amd64": {"User": "2"}}}),
            Fail("config.\"linux/amd64\".User: conflicting values \"1\" and \"2\""),
        ),
        // A field the input lacks is not an error (validation without concreteness).
        ("spec: hostNetwork: false", json!({}), Pass),
        ("x: int", json!({}), Pass),
        // Types and bounds.
        (
            "x: int",
            json!({"x": 1.5}),
            Fail("x: conflicting values 1.5 and int (mismatched types float and int)"),
        ),
        (
            "x: string",
            json!({"x": 1}),
            Fail("x: conflicting values 1 and string (mismatched types int and string)"),
        ),
        ("x: <5", json!({"x": 5}), Fail("x: invalid value 5 (out of bound <5)")),
        ("x: >=5 & <=10", json!({"x": 10}), Pass),
        ("x: !=0", json!({"x": 0}), Fail("x: invalid value 0 (out of bound !=0)")),
        (
            "x: =~\"^ab+c$\"",
            json!({"x": "ac"}),
            Fail("x: invalid value \"ac\" (out of bound =~\"^ab+c$\")"),
        ),
        ("x: !~\"^sys\"", json!({"x": "user"}), Pass),
        ("x: null | string", json!({"x": null}), Pass),
        ("x: _|_", json!({}), Fail("x: explicit error (_|_ literal) in source")),
        // Definitions are closed; `...` opens them; optional fields.
        (
            "#D: {a: int, b?: string}\nx: #D",
            json!({"x": {"a": 1, "c": 2}}),
            Fail("x: field c not allowed"),
        ),
        ("#D: {a: int, ...}\nx: #D", json!({"x": {"a": 1, "c": 2}}), Pass),
        (
            "#D: {a: {b: int}}\nx: #D",
            json!({"x": {"a": {"b": 1, "c": 1}}}),
            Fail("x.a: field c not allowed"),
        ),
        (
            "x: close({a: 1})",
            json!({"x": {"a": 1, "b": 2}}),
            Fail("x: field b not allowed"),
        ),
        (
            "x?: int",
            json!({"x": "a"}),
            Fail("x: conflicting values \"a\" and int (mismatched types string and int)"),
        ),
        // Disjunctions and defaults.
        (
            "x: \"a\" | \"b\"",
            json!({"x": "c"}),
            Fail("x: 2 errors in empty disjunction:"),
        ),
        ("x: bool | *true\ny: x\ny: true", json!({}), Pass),
        ("x: bool | *true\ny: x\ny: true", json!({"x": false}), Fail("y: ")),
        // Lists.
        (
            "x: [...int]",
            json!({"x": [1, "a"]}),
            Fail("x.1: conflicting values \"a\" and int (mismatched types string and int)"),
        ),
        (
            "x: [1, 2]",
            json!({"x": [1]}),
            Fail("x: incompatible list lengths (1 and 2)"),
        ),
        ("x: [int, ...string]", json!({"x": [1, "a", "b"]}), Pass),
        // Comprehensions, references, lets, interpolation, +, indexing.
        (
            "s: [...{x: bool | *true, if x {y: 1}}]",
            json!({"s": [{"x": true, "y": 2}]}),
            Fail("s.0.y: conflicting values 1 and 2"),
        ),
        (
            "s: [...{x: bool | *true, if x {y: 1}}]",
            json!({"s": [{"x": false, "y": 2}]}),
            Pass,
        ),
        (
            "import \"list\"\nlet ok = [\"a\"]\nx: string\nif !list.Contains(ok, x) {\n  x: \"no\"\n}",
            json!({"x": "b"}),
            Fail("x: conflicting values \"no\" and \"b\""),
        ),
        (
            "name: string\nm: \"hi \\(name)\"\nm: \"hi bob\"",
            json!({"name": "bob"}),
            Pass,
        ),
        ("a: _\ns: a + \"!\"\ns: \"x!\"", json!({"a": "x"}), Pass),
        (
            "labels: {...}\nm: labels[\"app\"]\nm: \"web\"",
            json!({"labels": {"app": "db"}}),
            Fail("m: conflicting values \"web\" and \"db\""),
        ),
        (
            "labels: {...}\nm: labels[\"app\"]\nm: \"web\"",
            json!({"labels": {}}),
            Pass,
        ),
        (
            "a: _\nb: _\nif a == 1 && (b != 2 || false) {\n  bad: 1\n  bad: 2\n}",
            json!({"a": 1, "b": 3}),
            Fail("bad: conflicting values 2 and 1"),
        ),
        // Builtins.
        (
            "import \"list\"\nx: list.MinItems(2)",
            json!({"x": [1]}),
            Fail("x: invalid value [1] (does not satisfy list.MinItems(2)): len(list) < MinItems(2) (1 < 2)"),
        ),
        (
            "import \"list\"\nx: list.MaxItems(1)",
            json!({"x": [1, 2]}),
            Fail("x: invalid value [1,2] (does not satisfy list.MaxItems(1)): len(list) > MaxItems(1) (2 > 1)"),
        ),
        (
            "import \"struct\"\nx: struct.MaxFields(1)",
            json!({"x": {"a": 1, "b": 2}}),
            Fail(
                "x: invalid value {a:1,b:2} (does not satisfy struct.MaxFields(1)): len(fields) > MaxFields(1) (2 > 1)",
            ),
        ),
        ("import \"struct\"\nx: struct.MinFields(1)", json!({"x": {}}), Pass),
        (
            "import \"strings\"\nx: string\nok: strings.HasPrefix(x, \"a\") & true",
            json!({"x": "ba"}),
            Fail("ok: conflicting values true and false"),
        ),
        (
            "l: _\nn: len(l)\nn: <3",
            json!({"l": [1, 2, 3]}),
            Fail("n: invalid value 3 (out of bound <3)"),
        ),
        (
            "import \"time\"\nt: <time.Parse(time.RFC3339, \"2022-01-01T00:00:00Z\")",
            json!({"t": "2021-12-31T23:59:59Z"}),
            Pass,
        ),
        (
            "import \"time\"\nt: time.Parse(time.RFC3339, \"2022-03-09T17:10:27.500+01:00\")\nt: \"2022-03-09T16:10:27.5Z\"",
            json!({}),
            Pass,
        ),
        (
            "import \"time\"\nt: time.Format(time.RFC3339)",
            json!({"t": "yesterday"}),
            Fail(
                "t: invalid value \"yesterday\" (does not satisfy time.Format(\"2006-01-02T15:04:05Z07:00\")): error in call to time.Format: invalid time \"yesterday\"",
            ),
        ),
        // Self references and reference cycles add nothing.
        ("x: [...{name: name}]", json!({"x": [{"name": "a"}]}), Pass),
        ("a: b\nb: a", json!({"a": 1}), Pass),
    ];
    let mut wrong = Vec::new();
    for (policy, input, expect) in rows {
        let got = check(policy, input.clone());
        let ok = match (expect, &got) {
            (Pass, Ok(())) => true,
            (Fail(message), Err(first)) => first.starts_with(message),
            _ => false,
        };
        if !ok {
            wrong.push(format!("{policy:?} with {input}: got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows wrong:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}

#[test]
fn unsupported_constructs_are_refused_naming_the_construct_and_line() {
    let rows: &[(&str, &str)] = &[
        (
            "a: 1\nx: [for v in y {v}]",
            "line 2: unsupported CUE construct: for comprehensions",
        ),
        (
            "a: 1\n[string]: int",
            "line 2: unsupported CUE construct: pattern constraints ([…]: T)",
        ),
        (
            "x: {...int}",
            "line 1: unsupported CUE construct: pattern constraints (...T in a struct)",
        ),
        (
            "_hidden: 1",
            "line 1: unsupported CUE construct: hidden fields (_hidden)",
        ),
        ("a: 1 @tag(x)", "line 1: unsupported CUE construct: attributes (@…)"),
        (
            "import \"regexp\"",
            "line 1: unsupported CUE construct: import \"regexp\" (supported: \"list\", \"strings\", \"struct\", \"time\")",
        ),
        (
            "import \"time\"\nx: time.Now()",
            "line 2: unsupported CUE construct: time.Now",
        ),
        (
            "import \"strings\"\nx: strings.ToUpper(\"a\")",
            "line 2: unsupported CUE construct: strings.ToUpper",
        ),
        (
            "a: 1\nb: a - 1",
            "line 2: unsupported CUE construct: arithmetic with '-'",
        ),
        (
            "a: 1\nb: a * 2",
            "line 2: unsupported CUE construct: arithmetic with '*'",
        ),
        ("a: 4 / 2", "line 1: unsupported CUE construct: arithmetic with '/'"),
        (
            "a!: int",
            "line 1: unsupported CUE construct: required fields (label!: …)",
        ),
        (
            "(\"a\" + \"b\"): 1",
            "line 1: unsupported CUE construct: dynamic labels ((…): T)",
        ),
        ("X=a: 1", "line 1: unsupported CUE construct: aliases (X=…)"),
        (
            "a: \"\"\"\n  x\n  \"\"\"",
            "line 1: unsupported CUE construct: multi-line strings (\"\"\")",
        ),
        (
            "a: #\"raw\"#",
            "line 1: unsupported CUE construct: raw strings (#\"…\"#)",
        ),
        ("a: 'bytes'", "line 1: unsupported CUE construct: byte literals ('…')"),
        (
            "a: 0x10",
            "line 1: unsupported CUE construct: non-decimal number literals",
        ),
        (
            "a: 1Ki",
            "line 1: unsupported CUE construct: number multipliers (K, Mi, …)",
        ),
        (
            "l: [1]\na: and(l)",
            "line 2: unsupported CUE construct: the builtin and",
        ),
        (
            "l: [1, 2]\na: l[0:1]",
            "line 2: unsupported CUE construct: slices (x[a:b])",
        ),
        ("{\"wontgo", "line 1: string literal not terminated"),
        ("a: b", "line 1: reference \"b\" not found"),
        ("a: {", "line 1: expected '}', found end of file"),
    ];
    let mut wrong = Vec::new();
    for (policy, message) in rows {
        match Policy::compile(policy) {
            Err(e) if e.to_string() == *message => {}
            other => wrong.push(format!(
                "{policy:?}: expected {message:?}, got {:?}",
                other.map(|_| ()).map_err(|e| e.to_string())
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(Policy::compile("for: 1").is_ok(), "keywords are labels before ':'");
    assert!(matches!(
        Policy::compile("_x: 1"),
        Err(CompileError::Unsupported { .. })
    ));
}

#[test]
fn limits_stop_evaluation_with_the_reason() {
    let stopped =
        |policy: &str, input: Value, limits: Limits| match Policy::compile(policy).unwrap().evaluate(&input, limits) {
            Err(EvalError::Limit(why)) => why,
            other => panic!("{policy}: not stopped: {other:?}"),
        };
    let many = json!({"x": vec![json!({"a": 1}); 1000]});
    let steps = stopped(
        "x: [...{a: int}]",
        many.clone(),
        Limits {
            steps: 500,
            ..Limits::default()
        },
    );
    assert_eq!(steps, "more than 500 evaluation steps");
    let values = stopped(
        "x: [...{a: int}]",
        many,
        Limits {
            vertices: 300,
            ..Limits::default()
        },
    );
    assert_eq!(values, "more than 300 values");
    // A chain of 1,000 references is deeper than evaluation may recurse.
    let chain: String = (0..1000).map(|i| format!("a{i}: a{}\n", i + 1)).collect::<String>() + "a1000: 1";
    let depth = stopped(&chain, json!({}), Limits::default());
    assert!(depth.contains("nested deeper than"), "{depth}");
    // 4 fields of 8 alternatives unified into one: 4,096 combinations.
    let combos = "x: (1|2|3|4|5|6|7|8) & (1|2|3|4|5|6|7|8) & (1|2|3|4|5|6|7|8) & (1|2|3|4|5|6|7|8)";
    let disjuncts = stopped(combos, json!({}), Limits::default());
    assert_eq!(disjuncts, "more than 1024 combinations of disjunctions");
}
