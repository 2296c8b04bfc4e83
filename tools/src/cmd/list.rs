use anyhow::Result;
use roibin_registry::codecs;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    // Referencing the crate links its registrations in.
    let _ = roibin_compressors::codec_names();
    if a.json {
        let v: Vec<_> = codecs()
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name, "version": c.version, "doc": c.doc, "thread_safe": c.thread_safe,
                    "options": c.options.iter().map(|o| serde_json::json!({
                        "name": o.name, "type": o.ty.to_string(), "default": o.default, "doc": o.doc,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for c in codecs() {
        println!(
            "{} (v{}){}\n    {}",
            c.name,
            c.version,
            if c.thread_safe {
                ""
            } else {
                " [not thread-safe]"
            },
            c.doc
        );
        let dtypes = if c.accepts.dtypes.is_empty() {
            "any dtype".to_string()
        } else {
            c.accepts
                .dtypes
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "    accepts: {dtypes}, rank {}–{}{}",
            c.accepts.ranks.0,
            c.accepts.ranks.1,
            if c.accepts.bytes { ", or bytes" } else { "" }
        );
        for o in c.options {
            let def = if o.default.is_empty() {
                "unset".to_string()
            } else {
                o.default.to_string()
            };
            println!(
                "    {}:{:<10} {} (default {def})\n        {}",
                c.name, o.name, o.ty, o.doc
            );
        }
        println!();
    }
    Ok(())
}
