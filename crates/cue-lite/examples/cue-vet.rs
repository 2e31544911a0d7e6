//! `cargo run -p cue-lite --example cue-vet -- POLICY.cue INPUT.json`: unifies a policy with an
//! input and prints the outcome, as `cue eval` would decide it. For policy authors trying the
//! evaluator by hand; signet's own command is `signet policy test`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [policy, input] = args.as_slice() else {
        eprintln!("usage: cue-vet POLICY.cue INPUT.json");
        return ExitCode::from(2);
    };
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let outcome = read(policy).and_then(|policy| {
        let input: serde_json::Value = serde_json::from_str(&read(input)?).map_err(|e| format!("{input}: {e}"))?;
        let policy = cue_lite::Policy::compile(&policy).map_err(|e| e.to_string())?;
        policy
            .evaluate(&input, cue_lite::Limits::default())
            .map_err(|e| e.to_string())
    });
    match outcome {
        Ok(Ok(())) => {
            println!("pass");
            ExitCode::SUCCESS
        }
        Ok(Err(violations)) => {
            println!("fail: {violations}");
            for fault in &violations.0 {
                println!("  {fault}");
            }
            ExitCode::from(1)
        }
        Err(error) => {
            println!("error: {error}");
            ExitCode::from(2)
        }
    }
}
