//! What the criterion benches share.

/// `spec` with `threads=N` added to every stage that takes it.
pub fn with_threads(spec: &str, threads: usize) -> String {
    let mut g: roibin_registry::Graph = spec.parse().unwrap();
    for s in &mut g.stages {
        if roibin_registry::lookup(&s.name)
            .unwrap()
            .options
            .iter()
            .any(|o| o.name == "threads")
        {
            s.args.push(roibin_registry::spec::Arg {
                name: Some("threads".into()),
                value: roibin_registry::spec::Value::Number(threads.to_string()),
            });
        }
    }
    g.to_string()
}
