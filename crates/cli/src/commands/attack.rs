use anyhow::{bail, Result};
use clap::Subcommand;
use opensoc_attack::{Catalog, TechniqueId};

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AttackCommand,
}

#[derive(Subcommand)]
enum AttackCommand {
    /// Show a technique: `T1190`, `t1059.001`, `Technique 1110`, `T1190 (name)`.
    Show {
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: Args) -> Result<Outcome> {
    match args.command {
        AttackCommand::Show { id, json } => show(&id, json),
    }
}

fn show(id: &str, json: bool) -> Result<Outcome> {
    let catalog = Catalog::enterprise();
    let tid: TechniqueId = id.parse()?;
    let Some(t) = catalog.get(&tid) else {
        bail!(
            "{tid} is not a technique of ATT&CK Enterprise {}",
            catalog.version()
        );
    };
    let tactics: Vec<&str> = t.tactics.iter().map(|t| t.name).collect();
    if json {
        let v = serde_json::json!({
            "id": t.id.to_string(),
            "name": t.name,
            "tactics": tactics,
            "parent": t.parent().map(|p| p.to_string()),
            "revoked": t.revoked,
            "deprecated": t.deprecated,
            "revoked_by": t.revoked_by.map(|p| p.to_string()),
            "attack_version": catalog.version(),
        });
        println!("{v}");
        return Ok(Outcome::Ok);
    }
    println!("{} {}", t.id, t.name);
    println!(
        "tactics: {}",
        if tactics.is_empty() {
            "-".into()
        } else {
            tactics.join(", ")
        }
    );
    if let Some(parent) = t.parent().and_then(|p| catalog.get(&p)) {
        println!("parent: {} {}", parent.id, parent.name);
    }
    let subs: Vec<String> = catalog
        .subtechniques(&t.id)
        .filter(|s| s.is_active())
        .map(|s| format!("{} {}", s.id, s.name))
        .collect();
    if !subs.is_empty() {
        println!("sub-techniques:\n  {}", subs.join("\n  "));
    }
    if t.revoked {
        match t.revoked_by {
            Some(by) => println!("status: revoked, replaced by {by}"),
            None => println!("status: revoked"),
        }
    } else if t.deprecated {
        println!("status: deprecated");
    }
    println!(
        "ATT&CK Enterprise {} (c) The MITRE Corporation",
        catalog.version()
    );
    Ok(Outcome::Ok)
}
